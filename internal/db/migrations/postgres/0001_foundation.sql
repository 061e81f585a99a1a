-- Foundation: customers, their WhatsApp phone-number ids, API keys.

CREATE TABLE customers (
    id          text PRIMARY KEY,            -- the business's own external id (e.g. WABA id)
    name        text NOT NULL,
    currency    char(3) NOT NULL DEFAULT 'USD',
    country     char(2),                     -- where the business is registered (authentication_international)
    email       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phone_numbers (
    phone_number_id text PRIMARY KEY,        -- WhatsApp Cloud API metadata.phone_number_id
    customer_id     text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX phone_numbers_customer ON phone_numbers(customer_id);

CREATE TABLE api_keys (
    id            text PRIMARY KEY,          -- public part of the key, shown in lists
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin','finance','sales','ingest','customer')),
    customer_id   text REFERENCES customers(id) ON DELETE CASCADE,
    secret_sha256 bytea NOT NULL,            -- SHA-256 of the secret part; the secret is never stored
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);
