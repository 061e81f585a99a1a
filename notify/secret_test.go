package notify

import (
	"strings"
	"testing"
)

func TestKeyring(t *testing.T) {
	old, cur := NewKey(), NewKey()
	k1, err := NewKeyring(old, nil)
	if err != nil {
		t.Fatal(err)
	}
	secret := NewSecret()
	if !strings.HasPrefix(secret, SecretPrefix) || len(secret) != len(SecretPrefix)+43 {
		t.Fatalf("secret %q", secret)
	}
	sealed := k1.Seal("we_1", secret)
	if strings.Contains(string(sealed.Box), secret[len(SecretPrefix):]) {
		t.Fatal("the sealed secret holds the secret in clear")
	}
	if got, err := k1.Open("we_1", sealed); err != nil || got != secret {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k1.Open("we_2", sealed); err == nil {
		t.Error("a secret sealed for we_1 opened for we_2")
	}
	// Rotated: the old key still opens, the new one seals.
	k2, err := NewKeyring(cur, []string{old})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k2.Open("we_1", sealed); err != nil || got != secret {
		t.Fatalf("open with the previous key: %q %v", got, err)
	}
	if s2 := k2.Seal("we_1", secret); s2.KeyID == sealed.KeyID {
		t.Error("the new keyring seals with the old key")
	}
	k3, _ := NewKeyring(cur, nil)
	if _, err := k3.Open("we_1", sealed); err == nil || !strings.Contains(err.Error(), "previous_secret_keys") {
		t.Errorf("open with a keyring that lost the key: %v", err)
	}
	for _, bad := range []string{"", "short", "bm90IDMyIGJ5dGVz"} {
		if _, err := NewKeyring(bad, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if _, err := NewKeyring(cur, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "previous_secret_keys[0]") {
		t.Errorf("bad previous key: %v", err)
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	a := NewID("evt_")
	if len(a) != len("evt_")+26 {
		t.Fatalf("id %q", a)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := NewID("evt_")
		if seen[id] {
			t.Fatal("duplicate id")
		}
		seen[id] = true
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ok", "ok"},
		{"a\x00b", "ab"},
		{"\xff\xfe", "\uFFFD"},
		{"héllo", "h"}, // cut at 2 bytes never splits é
	}
	for _, tt := range tests {
		n := 100
		if tt.in == "héllo" {
			n = 2
		}
		if got := sanitize(tt.in, n); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
