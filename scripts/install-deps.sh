#!/usr/bin/env bash
# install-deps.sh — install the Debian packages postage needs, if missing.
#
#   clickhouse-server, clickhouse-client  the event store (Debian ships 18.16)
#   postgresql                            the ledger (initdb/postgres in /usr/lib/postgresql/*/bin)
#   zookeeper                             the coordinator of a ClickHouse cluster (tests of
#                                         cluster mode; /usr/share/java/zookeeper.jar, run
#                                         with java; the package starts no service)
#   chromium                              browser tests of the dashboard
#   poppler-utils                         pdftotext and pdftoppm, to check invoice PDFs in tests
#   mupdf-tools                           mutool, whose trace shows a glyph drawn missing (glyph 0)
#   fonts-noto-core                       the fonts PDFs are drawn with: Latin, Cyrillic, Greek,
#                                         Arabic, Devanagari, Thai and most other scripts
#   fonts-noto-cjk                        Chinese, Japanese and Korean for the same PDFs
#
# Idempotent and quiet when everything is present. postage runs its own
# private servers on free loopback ports (internal/localdb), so the packages'
# system services are kept from starting: a policy-rc.d denies service starts
# during the install, and any service that starts anyway is stopped.
set -u

missing=()
# have CMD: CMD is on PATH or in /usr/sbin, /usr/bin (not on every PATH).
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
have_postgres() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
	done
	return 1
}

# have_zookeeper: the jars internal/localdb runs ZooKeeper from, and java.
have_zookeeper() {
	[ -r /usr/share/java/zookeeper.jar ] && [ -r /usr/share/java/slf4j-simple.jar ] && have java
}

# have_font FILE...: the font files a package installs (Chromium finds them
# through fontconfig, which reads these directories).
have_font() {
	local f
	for f in "$@"; do
		[ -r "$f" ] || return 1
	done
}
noto_core=(/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf /usr/share/fonts/truetype/noto/NotoSansArabic-Regular.ttf
	/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf /usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf)
noto_cjk=(/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc)

have clickhouse-server || have clickhouse || missing+=(clickhouse-server)
have clickhouse-client || have clickhouse || missing+=(clickhouse-client)
have_postgres || missing+=(postgresql)
have_zookeeper || missing+=(zookeeper)
have chromium || have chromium-browser || have google-chrome || missing+=(chromium)
have pdftotext || missing+=(poppler-utils)
have mutool || missing+=(mupdf-tools)
have_font "${noto_core[@]}" || missing+=(fonts-noto-core)
have_font "${noto_cjk[@]}" || missing+=(fonts-noto-cjk)

[ ${#missing[@]} -eq 0 ] && exit 0

fail() { # fail REASON: one line per package, then exit 1
	local p
	for p in "${missing[@]}"; do
		echo "cannot install $p: $1; install it with apt-get install $p" >&2
	done
	exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (not a Debian system)"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "not root and sudo not found"
	sudo=(sudo -n)
	"${sudo[@]}" true 2>/dev/null || fail "not root and sudo needs a password (run: sudo make deps)"
fi

echo "installing ${missing[*]} ..." >&2

# Keep the packages' postinst scripts from starting system services: our
# servers are private. Leave an existing policy-rc.d alone.
policy=/usr/sbin/policy-rc.d
added_policy=
if [ ! -e "$policy" ]; then
	if printf '#!/bin/sh\n# temporary, from postage scripts/install-deps.sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null &&
		"${sudo[@]}" chmod 755 "$policy"; then
		added_policy=1
	fi
fi
cleanup() { [ -n "$added_policy" ] && "${sudo[@]}" rm -f "$policy"; }
trap cleanup EXIT

log=$(mktemp)
trap 'cleanup; rm -f "$log"' EXIT
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
	fail "apt-get update failed: $(grep -m1 -E '^(E|Err):' "$log" || tail -n1 "$log")"
fi
if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >"$log" 2>&1; then
	fail "apt-get install failed: $(grep -m1 -E '^E:' "$log" || tail -n1 "$log")"
fi

# If a service of a package we just installed started regardless, stop it
# and keep it from starting at boot, so it does not hold 5432, 8123, 9000.
for svc in clickhouse-server postgresql; do
	[[ " ${missing[*]} " == *" $svc "* ]] || continue
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		"${sudo[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
	elif command -v service >/dev/null 2>&1; then
		"${sudo[@]}" service "$svc" stop >/dev/null 2>&1 || true
	fi
done

# Check again: a package may install but not provide the command.
still=()
have clickhouse-server || have clickhouse || still+=(clickhouse-server)
have_postgres || still+=(postgresql)
have_zookeeper || still+=(zookeeper)
have pdftotext || still+=(poppler-utils)
have mutool || still+=(mupdf-tools)
have_font "${noto_core[@]}" || still+=(fonts-noto-core)
have_font "${noto_cjk[@]}" || still+=(fonts-noto-cjk)
if [ ${#still[@]} -gt 0 ]; then
	missing=("${still[@]}")
	fail "the package installed but its commands are missing"
fi
echo "installed ${missing[*]}" >&2
