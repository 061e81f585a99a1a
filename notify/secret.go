package notify

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"postage"
)

// Endpoint secrets must sign every request, so they cannot be stored
// hashed like API keys. They are stored sealed: AES-256-GCM with a key
// from the configuration (notify.secret_key), the endpoint's id as
// additional data (a sealed secret copied to another row does not open),
// and the key's id next to it so that keys can be rotated
// (notify.previous_secret_keys still open what they sealed). A copy of
// the database alone does not reveal them.

// SecretPrefix starts every endpoint secret (as Stripe's whsec_).
const SecretPrefix = "whsec_"

// NewSecret returns a new endpoint secret: SecretPrefix and 32 random
// bytes in unpadded base64url (43 characters).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return SecretPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// Sealed is an endpoint secret as stored: the id of the key that sealed
// it and nonce‖ciphertext‖tag.
type Sealed struct {
	KeyID string
	Box   []byte
}

// Keyring seals endpoint secrets with its current key and opens them with
// any of its keys.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// NewKeyring builds a keyring from base64 keys of 32 bytes: current seals
// and opens, previous only open (key rotation). An empty current is an
// error: without a key no endpoint can be created.
func NewKeyring(current string, previous []string) (*Keyring, error) {
	if current == "" {
		return nil, fmt.Errorf("notify.secret_key is empty")
	}
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for i, s := range append([]string{current}, previous...) {
		id, aead, err := parseKey(s)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("notify.secret_key: %w", err)
			}
			return nil, fmt.Errorf("notify.previous_secret_keys[%d]: %w", i-1, err)
		}
		if i == 0 {
			k.current = id
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// NewKey returns a new random key for notify.secret_key.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func parseKey(s string) (string, cipher.AEAD, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(raw) != 32 {
		return "", nil, fmt.Errorf("want 32 bytes in base64 (e.g. `openssl rand -base64 32`)")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return "", nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return "", nil, err
	}
	sum := sha256.Sum256(append([]byte("postage webhook secret key\x00"), raw...))
	return hex.EncodeToString(sum[:6]), aead, nil
}

// Seal seals an endpoint's secret with the current key.
func (k *Keyring) Seal(endpointID, secret string) Sealed {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return Sealed{KeyID: k.current, Box: aead.Seal(nonce, nonce, []byte(secret), []byte(endpointID))}
}

// Open returns the secret sealed for an endpoint.
func (k *Keyring) Open(endpointID string, s Sealed) (string, error) {
	aead, ok := k.aeads[s.KeyID]
	if !ok {
		return "", postage.Errorf(postage.EINTERNAL, "the secret of endpoint %s was sealed with key %s, which is neither notify.secret_key nor in notify.previous_secret_keys", endpointID, s.KeyID)
	}
	n := aead.NonceSize()
	if len(s.Box) < n {
		return "", fmt.Errorf("the sealed secret of endpoint %s is truncated", endpointID)
	}
	b, err := aead.Open(nil, s.Box[:n], s.Box[n:], []byte(endpointID))
	if err != nil {
		return "", fmt.Errorf("open the secret of endpoint %s: %w", endpointID, err)
	}
	return string(b), nil
}
