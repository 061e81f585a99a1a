package notify

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"postage"
)

func TestTargetPolicy(t *testing.T) {
	resolve := map[string][]netip.Addr{
		"hooks.example.com":  {netip.MustParseAddr("93.184.216.34")},
		"rebind.example.com": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.5")},
		"localhost":          {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"metadata.internal":  {netip.MustParseAddr("169.254.169.254")},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := resolve[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	strict := &TargetPolicy{LookupHost: lookup}
	loopback := &TargetPolicy{LookupHost: lookup, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	private := &TargetPolicy{LookupHost: lookup, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	tests := []struct {
		policy *TargetPolicy
		url    string
		want   string // "" = allowed, else part of the error
	}{
		{strict, "https://hooks.example.com/postage", ""},
		{strict, "https://93.184.216.34:8443/x", ""},
		{strict, "http://hooks.example.com/postage", "only for loopback"},
		{strict, "https://localhost/x", "not public"},
		{strict, "https://127.0.0.1/x", "not public"},
		{strict, "https://[::1]/x", "not public"},
		{strict, "https://10.1.2.3/x", "not public"},
		{strict, "https://172.16.0.1/x", "not public"},
		{strict, "https://192.168.1.1/x", "not public"},
		{strict, "https://169.254.169.254/latest/meta-data", "not public"},
		{strict, "https://metadata.internal/x", "not public"},
		{strict, "https://100.64.0.1/x", "not public"},
		{strict, "https://0.0.0.0/x", "not public"},
		{strict, "https://[fe80::1]/x", "not public"},
		{strict, "https://[fd00::1]/x", "not public"},
		{strict, "https://[::ffff:10.0.0.1]/x", "not public"},
		{strict, "https://[64:ff9b::a00:1]/x", "not public"},
		{strict, "https://rebind.example.com/x", "not public"},
		{strict, "https://nowhere.example.com/x", "does not resolve"},
		{strict, "ftp://hooks.example.com/x", "want https://"},
		{strict, "https://user:pw@hooks.example.com/x", "credentials"},
		{strict, "https://hooks.example.com/x#frag", "fragment"},
		{strict, "hooks.example.com/x", "want https://"},
		{strict, "", "required"},
		{loopback, "http://127.0.0.1:8080/hook", ""},
		{loopback, "http://localhost:8080/hook", ""},
		{loopback, "https://localhost/hook", ""},
		{loopback, "https://10.1.2.3/x", "not public"},
		{private, "https://10.1.2.3/x", ""},
		{private, "http://10.1.2.3/x", "only for loopback"},
		{private, "https://rebind.example.com/x", ""},
	}
	for _, tt := range tests {
		err := tt.policy.CheckURL(context.Background(), tt.url)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error with %q", tt.url, err, tt.want)
		case err != nil && postage.ErrorCode(err) != postage.EINVALID:
			t.Errorf("%s: code %s, want invalid", tt.url, postage.ErrorCode(err))
		}
	}
}
