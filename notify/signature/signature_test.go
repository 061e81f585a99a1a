package signature_test

import (
	"errors"
	"testing"
	"time"

	"postage/notify/signature"
)

// The vector was computed with the recipe of docs/NOTIFICATIONS.md:
//
//	printf '%s' '1767225600.{"id":"evt_1","type":"invoice.finalized"}' | openssl dgst -sha256 -hmac 'whsec_test'
func TestComputeAgreesWithOpenSSL(t *testing.T) {
	got := signature.Compute("whsec_test", time.Unix(1767225600, 0), []byte(`{"id":"evt_1","type":"invoice.finalized"}`))
	if want := "f948532672c2b922bc4fb91de02b74371fb3dce140554c42b05f170137eeb66c"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	at := time.Unix(1767225600, 0)
	body := []byte(`{"id":"evt_1"}`)
	good := signature.Sign(at, body, "whsec_a")
	rotated := signature.Sign(at, body, "whsec_new", "whsec_a")
	tests := []struct {
		name   string
		body   string
		header string
		secret string
		now    time.Time
		want   error
	}{
		{"valid", string(body), good, "whsec_a", at, nil},
		{"valid within tolerance after", string(body), good, "whsec_a", at.Add(5 * time.Minute), nil},
		{"valid within tolerance before", string(body), good, "whsec_a", at.Add(-5 * time.Minute), nil},
		{"rotation: old secret", string(body), rotated, "whsec_a", at, nil},
		{"rotation: new secret", string(body), rotated, "whsec_new", at, nil},
		{"too old", string(body), good, "whsec_a", at.Add(5*time.Minute + time.Second), signature.ErrTooOld},
		{"from the future", string(body), good, "whsec_a", at.Add(-6 * time.Minute), signature.ErrTooOld},
		{"body changed", `{"id":"evt_2"}`, good, "whsec_a", at, signature.ErrNoValidSig},
		{"wrong secret", string(body), good, "whsec_b", at, signature.ErrNoValidSig},
		{"time changed", string(body), "t=1767225601," + good[len("t=1767225600,"):], "whsec_a", at, signature.ErrNoValidSig},
		{"no header", string(body), "", "whsec_a", at, signature.ErrNoHeader},
		{"no time", string(body), good[len("t=1767225600,"):], "whsec_a", at, signature.ErrBadHeader},
		{"garbage", string(body), "hello", "whsec_a", at, signature.ErrBadHeader},
		{"two times", string(body), "t=1,t=2,v1=00", "whsec_a", at, signature.ErrBadHeader},
		{"empty secret", string(body), good, "", at, signature.ErrEmptySecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := signature.Verify([]byte(tt.body), tt.header, tt.secret, 0, tt.now)
			if tt.want == nil && got != nil || tt.want != nil && !errors.Is(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	if err := signature.Verify(body, "t=1767225600,v1=ab", "whsec_a", 0, at); err == nil {
		t.Fatal("a short signature verified")
	}
	if err := signature.Verify(body, "t=1767225600,v2=x", "whsec_a", 0, at); err == nil {
		t.Fatal("no v1 signature verified")
	}
}
