package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"postage"
	"postage/internal/cache"
	"postage/internal/db"
)

// Cached authenticates through a cache of verified keys, keyed by the
// SHA-256 of the whole token (the token itself is never kept), so a request
// costs PostgreSQL nothing while its key's answer is fresh, and ingest keeps
// going while PostgreSQL is down:
//
//   - a verified key is served from memory for at most Refresh (10 s by
//     default); every cached key is re-verified in one query every Refresh
//     (Run), and a key whose answer is older than that is re-checked before
//     it is served;
//   - a refusal (unknown, revoked, malformed) is never cached;
//   - while PostgreSQL is unreachable, stalled or restarting, the last
//     verified answer is served (a key never seen before answers 503);
//   - so a key revoked at time R is refused from R + Refresh on, by every
//     process, as long as PostgreSQL answered at some moment after R (a
//     revocation itself needs PostgreSQL, so during an outage nothing can
//     be revoked); a key revoked through this process's API is refused at
//     once (Forget).
type Cached struct {
	Store *Store
	c     *cache.Cache[Principal]
}

// NewCached returns a cache on s that refreshes every refresh (0: 10 s),
// using now as its clock (nil: time.Now). Start Run to re-verify keys in
// the background.
func NewCached(s *Store, refresh time.Duration, now func() time.Time, log *slog.Logger) *Cached {
	k := &Cached{Store: s}
	k.c = cache.New(cache.Options[Principal]{
		Refresh:    refresh,
		MaxEntries: 10_000,
		Verify:     k.verify,
		IsOutage:   db.IsOutage,
		Now:        now,
		Log:        log,
	})
	return k
}

// Refresh is the bound on how long a revocation made elsewhere goes unseen
// while PostgreSQL answers.
func (k *Cached) Refresh() time.Duration { return k.c.Refresh() }

// Authenticate checks a bearer token (see Cached).
func (k *Cached) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !keyPattern.MatchString(token) {
		return Principal{}, postage.Errorf(postage.EUNAUTHORIZED, "malformed API key")
	}
	h := sha256.Sum256([]byte(token))
	return k.c.Get(ctx, string(h[:]), func(ctx context.Context) (Principal, error) {
		return k.Store.Authenticate(ctx, token)
	})
}

// Forget drops the cached answers of key id at once (after a revocation).
func (k *Cached) Forget(id string) {
	k.c.Drop(func(p Principal) bool { return p.KeyID == id })
}

// VerifyAll re-verifies every cached key now (Run does it every Refresh).
func (k *Cached) VerifyAll(ctx context.Context) error { return k.c.VerifyAll(ctx) }

// Run re-verifies the cached keys every Refresh until ctx ends.
func (k *Cached) Run(ctx context.Context) { k.c.Run(ctx) }

// Stats returns the cache's counters.
func (k *Cached) Stats() cache.Stats { return k.c.Stats() }

// verify re-reads the cached keys in one query: a key that is gone or
// revoked is dropped; the others get their current name and role. It also
// records the use of keys used since their last use was recorded (at most
// once a minute, as Authenticate does).
func (k *Cached) verify(ctx context.Context, items []cache.Item[Principal]) (map[string]Principal, error) {
	ids := make([]string, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.Value.KeyID)
	}
	q, args := activeKeysQuery(ids)
	rows, err := k.Store.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("verify cached keys: %w", err)
	}
	byID := map[string]Principal{}
	var p Principal
	var cust *string
	_, err = pgx.ForEachRow(rows, []any{&p.KeyID, &p.Name, &p.Role, &cust}, func() error {
		p.CustomerID = ""
		if cust != nil {
			p.CustomerID = *cust
		}
		byID[p.KeyID] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify cached keys: %w", err)
	}
	out := make(map[string]Principal, len(items))
	var used []string
	now := k.Store.Now().UTC()
	for _, it := range items {
		if p, ok := byID[it.Value.KeyID]; ok {
			out[it.Key] = p
			if !it.Used.IsZero() && now.Sub(it.Used) < k.c.Refresh() {
				used = append(used, p.KeyID)
			}
		}
	}
	if len(used) > 0 {
		// Best effort: a failed update must not fail the verification.
		q, args := touchKeysQuery(used, now)
		_, _ = k.Store.DB.Exec(ctx, q, args...)
	}
	return out, nil
}

// activeKeysQuery selects the keys of ids that exist and are not revoked.
func activeKeysQuery(ids []string) (string, []any) {
	return `SELECT id, name, role, customer_id FROM api_keys WHERE id = ANY($1) AND revoked_at IS NULL`, []any{ids}
}

// touchKeysQuery records that keys ids were used at now, for keys whose
// recorded use is more than a minute older.
func touchKeysQuery(ids []string, now time.Time) (string, []any) {
	return `UPDATE api_keys SET last_used_at = $2 WHERE id = ANY($1) AND (last_used_at IS NULL OR last_used_at < $2 - interval '1 minute')`, []any{ids, now}
}
