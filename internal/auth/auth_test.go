package auth

import (
	"strings"
	"testing"

	"postage"
)

func TestNewKeyValidate(t *testing.T) {
	tests := []struct {
		name string
		in   NewKey
		want []string // substrings of the message; none = valid
	}{
		{"admin", NewKey{Name: "ops", Role: RoleAdmin}, nil},
		{"customer", NewKey{Name: "dash", Role: RoleCustomer, CustomerID: "acme"}, nil},
		{"everything wrong", NewKey{Role: "wizard", CustomerID: ""}, []string{"name: required", `unknown role "wizard"`}},
		{"customer without customer", NewKey{Name: "x", Role: RoleCustomer}, []string{"customer_id: required"}},
		{"staff bound to a customer", NewKey{Name: "x", Role: RoleFinance, CustomerID: "acme"}, []string{"only customer keys"}},
		{"long name", NewKey{Name: strings.Repeat("n", 201), Role: RoleSales}, []string{"at most 200"}},
	}
	for _, tt := range tests {
		err := tt.in.Validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if postage.ErrorCode(err) != postage.EINVALID {
			t.Errorf("%s: got %v, want invalid", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(postage.ErrorMessage(err), w) {
				t.Errorf("%s: %q lacks %q", tt.name, postage.ErrorMessage(err), w)
			}
		}
	}
}

func TestCanSeeCustomer(t *testing.T) {
	tests := []struct {
		p    Principal
		id   string
		want bool
	}{
		{Principal{Role: RoleCustomer, CustomerID: "a"}, "a", true},
		{Principal{Role: RoleCustomer, CustomerID: "a"}, "b", false},
		{Principal{Role: RoleCustomer, CustomerID: "a"}, "", false},
		{Principal{Role: RoleFinance}, "b", true},
		{Principal{Role: RoleAdmin}, "b", true},
	}
	for _, tt := range tests {
		if got := tt.p.CanSeeCustomer(tt.id); got != tt.want {
			t.Errorf("%+v sees %q: got %v, want %v", tt.p, tt.id, got, tt.want)
		}
	}
}

func TestKeyFormat(t *testing.T) {
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{"pst_abcdefghij12_" + strings.Repeat("A", 43), true},
		{"pst_abcdefghij12_" + strings.Repeat("A", 42), false},
		{"pst_ABCDEFGHIJ12_" + strings.Repeat("A", 43), false},
		{"Bearer pst_abcdefghij12_" + strings.Repeat("A", 43), false},
		{"", false},
	} {
		if got := keyPattern.MatchString(tc.token); got != tc.ok {
			t.Errorf("%q: got %v, want %v", tc.token, got, tc.ok)
		}
	}
	a, b := hashSecret("s1"), hashSecret("s2")
	if len(a) != 32 || string(a) == string(b) {
		t.Error("secret hash is not SHA-256")
	}
}
