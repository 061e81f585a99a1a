-- Outbound webhooks (package notify, docs/NOTIFICATIONS.md): endpoints,
-- the outbox (events and one delivery per subscribed endpoint, written in
-- the transaction of the change that causes them), and the delivery log.

CREATE TABLE webhook_endpoints (
    id                         text PRIMARY KEY,       -- we_...
    customer_id                text REFERENCES customers(id) ON DELETE CASCADE, -- NULL: every customer's events
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    event_types                text[] NOT NULL,        -- '*' = every type
    enabled                    boolean NOT NULL DEFAULT true,
    -- The signing secret, sealed with AES-256-GCM (notify.Keyring): it
    -- must sign every request, so it cannot be hashed.
    secret_key_id              text NOT NULL,
    secret                     bytea NOT NULL,
    previous_secret_key_id     text,
    previous_secret            bytea,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL,
    updated_at                 timestamptz NOT NULL,
    CHECK (cardinality(event_types) > 0)
);
CREATE INDEX webhook_endpoints_customer ON webhook_endpoints (customer_id, id);

CREATE TABLE webhook_events (
    id          text PRIMARY KEY,                      -- evt_...
    type        text NOT NULL,
    customer_id text NOT NULL,                         -- no key: an event outlives nothing it names
    dedup_key   text,                                  -- Event.Key: at most one event per (type, key)
    payload     text NOT NULL,                         -- the exact body posted (and signed)
    created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX webhook_events_dedup ON webhook_events (type, dedup_key) WHERE dedup_key IS NOT NULL;
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         text NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'paused')),
    attempts         integer NOT NULL DEFAULT 0,       -- counted when claimed
    next_attempt_at  timestamptz NOT NULL,             -- due (pending), or the claim's lease end
    retry_from       timestamptz NOT NULL,             -- start of the retry window (created, or resent)
    claim            text,                             -- token of the dispatcher holding the lease
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
-- Dispatchers claim due deliveries in this order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- An endpoint's delivery list, newest first.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
-- Pausing and resuming an endpoint's open deliveries; pruning.
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (endpoint_id) WHERE status IN ('pending', 'paused');

CREATE TABLE webhook_attempts (
    delivery_id bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    at          timestamptz NOT NULL,
    status_code integer,
    duration_ms bigint NOT NULL,
    error       text NOT NULL DEFAULT '',
    response    text NOT NULL DEFAULT '',              -- the start of the answer, at most 2 KiB
    PRIMARY KEY (delivery_id, attempt)
);
