// Package signature signs and verifies postage's outbound webhooks: an
// HMAC-SHA256, with the endpoint's secret, of "<unix time>.<body>", sent as
// "Postage-Signature: t=<unix time>,v1=<hex>" (Stripe's scheme). It uses
// only the standard library, so a receiver written in Go can import it or
// copy this one file.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the HTTP header that carries the signature.
const Header = "Postage-Signature"

// DefaultTolerance is how far the signed time may be from the receiver's
// clock, in either direction, before Verify refuses a request: five
// minutes, as Stripe recommends. It bounds how long a captured request can
// be replayed; receivers should also drop event ids they have seen.
const DefaultTolerance = 5 * time.Minute

// Errors of Verify. They say why a request is refused; a receiver answers
// 400 to all of them.
var (
	ErrNoHeader      = errors.New("no " + Header + " header")
	ErrBadHeader     = errors.New("malformed " + Header + " header: want t=<unix time>,v1=<hex>")
	ErrTooOld        = errors.New("signed time outside the tolerance (replayed or clock skew)")
	ErrNoValidSig    = errors.New("no v1 signature matches the body and secret")
	ErrEmptySecret   = errors.New("empty secret")
	errNoV1Signature = errors.New("malformed " + Header + " header: no v1 signature")
)

// Compute returns the hex HMAC-SHA256 of "<t>.<body>" keyed with secret
// (the whole secret string, its "whsec_" prefix included).
func Compute(secret string, t time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(t.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// Sign returns the header value for body signed at t with each secret:
// "t=<unix>,v1=<hex>[,v1=<hex>...]". Several secrets are sent while an
// endpoint's rotated secret is still valid, so a receiver that knows
// either verifies the request.
func Sign(t time.Time, body []byte, secrets ...string) string {
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(strconv.FormatInt(t.Unix(), 10))
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(Compute(s, t, body))
	}
	return b.String()
}

// Parse splits a header value into its time and v1 signatures; other
// schemes (a future v2) are ignored.
func Parse(header string) (t time.Time, v1 []string, err error) {
	if header == "" {
		return time.Time{}, nil, ErrNoHeader
	}
	seenT := false
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return time.Time{}, nil, ErrBadHeader
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || seenT {
				return time.Time{}, nil, ErrBadHeader
			}
			t, seenT = time.Unix(n, 0).UTC(), true
		case "v1":
			v1 = append(v1, v)
		}
	}
	if !seenT {
		return time.Time{}, nil, ErrBadHeader
	}
	if len(v1) == 0 {
		return time.Time{}, nil, errNoV1Signature
	}
	return t, v1, nil
}

// Verify checks a request: header is its Postage-Signature, body its raw
// bytes (before any JSON decoding), secret the endpoint's signing secret.
// It refuses a signed time further than tolerance from now (0 means
// DefaultTolerance) and accepts the request when any v1 signature matches
// (compared in constant time).
func Verify(body []byte, header, secret string, tolerance time.Duration, now time.Time) error {
	if secret == "" {
		return ErrEmptySecret
	}
	t, sigs, err := Parse(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return ErrTooOld
	}
	want := []byte(Compute(secret, t, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrNoValidSig
}
