package notify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"syscall"
	"time"

	"postage"
)

// TargetPolicy decides which addresses endpoints may reach, so that a
// registered URL cannot make postage call into its own network (SSRF):
//
//   - https:// to public addresses;
//   - no loopback, private (RFC 1918, fc00::/7), link-local (169.254/16,
//     the cloud metadata address among them; fe80::/10), shared
//     (100.64/10), unspecified, multicast, broadcast or reserved address,
//     unless it is inside one of Allow (notify.allow_networks);
//   - http:// only to loopback addresses (so also only when Allow lets
//     them in): plain HTTP across a network would show every event to
//     whoever is on the path.
//
// CheckURL checks a URL when it is registered; the client's dialer checks
// the address it actually connects to, so a name that resolves somewhere
// else later (DNS rebinding) is refused too. Redirects are not followed.
type TargetPolicy struct {
	// Allow lists networks endpoints may reach although they are not
	// public (e.g. 127.0.0.0/8 for local receivers, 10.1.2.0/24).
	Allow []netip.Prefix
	// LookupHost resolves a host name (net.DefaultResolver when nil).
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParseNetworks reads CIDR prefixes (notify.allow_networks).
func ParseNetworks(cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("notify.allow_networks: %q is not a CIDR prefix (e.g. 127.0.0.0/8)", c)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// notPublic are the ranges, beyond what netip classifies, that are not
// reachable public unicast addresses.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds an IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("2001::/32"),       // Teredo
	netip.MustParsePrefix("100::/64"),        // discard
}

// public reports whether a is a public unicast address.
func public(a netip.Addr) bool {
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return false
	}
	return !slices.ContainsFunc(notPublic, func(p netip.Prefix) bool { return p.Contains(a) })
}

// CheckAddr says whether an endpoint may connect to a (for scheme).
func (p *TargetPolicy) CheckAddr(a netip.Addr, scheme string) error {
	a = a.Unmap()
	allowed := public(a) || slices.ContainsFunc(p.Allow, func(n netip.Prefix) bool { return n.Contains(a) })
	if !allowed {
		return postage.Errorf(postage.EINVALID, "address %s is not public (loopback, private, link-local or reserved): refused unless notify.allow_networks lists it", a)
	}
	if scheme == "http" && !a.IsLoopback() {
		return postage.Errorf(postage.EINVALID, "http:// is only for loopback addresses (%s is not): use https://", a)
	}
	return nil
}

// CheckURL checks a URL's host: every address it resolves to must be
// allowed. A host that does not resolve is refused.
func (p *TargetPolicy) CheckURL(ctx context.Context, raw string) error {
	if err := validURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		lookup := p.LookupHost
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, err = lookup(ctx, host)
		if err != nil || len(addrs) == 0 {
			return postage.Errorf(postage.EINVALID, "url: host %q does not resolve", host)
		}
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a, u.Scheme); err != nil {
			return postage.Errorf(postage.EINVALID, "url %q: %s", raw, postage.ErrorMessage(err))
		}
	}
	return nil
}

// schemeKey carries a request's URL scheme to the dialer (withScheme).
type schemeKey struct{}

// withScheme tells the policy's dialer the scheme of the request made
// with ctx: the dialer, which sees only addresses, checks http:// against
// the loopback rule at every connection.
func withScheme(ctx context.Context, scheme string) context.Context {
	return context.WithValue(ctx, schemeKey{}, scheme)
}

// Client returns the HTTP client deliveries use: each request times out
// after timeout, connections go only to addresses the policy allows,
// redirects are answered as they are (never followed), no proxy from the
// environment is used.
func (p *TargetPolicy) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{
		Timeout: min(timeout, 10*time.Second),
		ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, err)
			}
			scheme, _ := ctx.Value(schemeKey{}).(string)
			if scheme == "" {
				scheme = "http" // unknown: the strictest rule
			}
			return p.CheckAddr(ap.Addr(), scheme)
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
