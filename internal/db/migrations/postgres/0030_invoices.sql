-- Billing: invoices, gapless yearly numbering, invoice runs, billed periods.

-- One row per invoice. A (customer, period) has invoices numbered seq 1, 2, …
-- (a reissue after a void takes the next seq); at most one of them is not
-- void. The id is derived from (customer, period, seq), so every replica and
-- every re-run computes the same id for the same invoice.
CREATE TABLE invoices (
    id              text PRIMARY KEY,
    customer_id     text NOT NULL REFERENCES customers(id),
    period          text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    seq             int  NOT NULL CHECK (seq >= 1),
    status          text NOT NULL CHECK (status IN ('draft','finalized','void')),
    number          text,                     -- assigned at finalization, never reused
    number_year     int,
    number_seq      bigint,
    customer        jsonb NOT NULL,           -- snapshot of the customer when last computed
    currency        char(3) NOT NULL,
    card_id         text NOT NULL DEFAULT '',
    card_version    int  NOT NULL DEFAULT 0,
    lines           jsonb NOT NULL,           -- []billing.Line, frozen at finalization
    subtotal        numeric NOT NULL,         -- sum of usage lines
    adjustments     numeric NOT NULL,         -- sum of adjustment lines
    total           numeric NOT NULL,         -- sum of all (rounded) lines
    usage_cutoff    timestamptz NOT NULL,     -- events ingested up to here are counted
    content_hash    bytea NOT NULL DEFAULT '\x'::bytea, -- of what a refresh can change: unchanged drafts are not rewritten
    finalize_after  timestamptz NOT NULL,     -- end of the grace period
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    finalized_at    timestamptz,
    voided_at       timestamptz,
    void_reason     text NOT NULL DEFAULT '',
    replaces        text REFERENCES invoices(id),
    replaced_by     text REFERENCES invoices(id),
    UNIQUE (customer_id, period, seq),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK ((status = 'void') = (voided_at IS NOT NULL))
) WITH (toast_tuple_target = 8160); -- keep typical lines (a few KB of JSON) inline and uncompressed: runs write 50k at once
-- Numbers are unique, and so are (year, sequence); drafts have neither and
-- stay out of these indexes (runs write tens of thousands of drafts).
CREATE UNIQUE INDEX invoices_number ON invoices (number) WHERE number IS NOT NULL;
CREATE UNIQUE INDEX invoices_number_seq ON invoices (number_year, number_seq) WHERE number IS NOT NULL;
-- At most one live (draft or finalized) invoice per customer and period.
CREATE UNIQUE INDEX invoices_live ON invoices (customer_id, period) WHERE status <> 'void';
-- The finance list order (period DESC, customer, seq); the customer's list
-- uses UNIQUE (customer_id, period, seq).
CREATE INDEX invoices_period ON invoices (period, customer_id, seq);
CREATE INDEX invoices_due ON invoices (finalize_after) WHERE status = 'draft';

-- The last number handed out per year. Finalization locks the year's row
-- (SELECT … FOR UPDATE) and bumps it in the same transaction that stamps
-- the invoice, so a number is used exactly when its invoice commits: no
-- gaps, no duplicates, whatever the concurrency.
CREATE TABLE invoice_number_counters (
    year  int PRIMARY KEY,
    last  bigint NOT NULL CHECK (last >= 0)
);

-- One row per invoice run (scheduled, manual, finalize sweep).
CREATE TABLE invoice_runs (
    id           bigserial PRIMARY KEY,
    period       text NOT NULL,
    trigger      text NOT NULL,               -- schedule, manual, sweep, api
    status       text NOT NULL CHECK (status IN ('running','succeeded','failed','skipped')),
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    usage_cutoff timestamptz,
    customers    int NOT NULL DEFAULT 0,
    created      int NOT NULL DEFAULT 0,
    refreshed    int NOT NULL DEFAULT 0,
    finalized    int NOT NULL DEFAULT 0,
    unchanged    int NOT NULL DEFAULT 0,
    unbilled     int NOT NULL DEFAULT 0,      -- usage rows that could not be billed
    errors       int NOT NULL DEFAULT 0,
    error        text NOT NULL DEFAULT ''
);
CREATE INDEX invoice_runs_period ON invoice_runs (period, id DESC);

-- Per period, the cut-off of the last complete run: every customer with
-- usage ingested up to it has an invoice (or is in the unbilled report).
-- Later-ingested usage of a closed month becomes adjustment lines.
CREATE TABLE billing_periods (
    period        text PRIMARY KEY,
    run_cutoff    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Usage that could not be billed at the last run of its period: unknown
-- customers and customers without a rate card (replaced on every run).
CREATE TABLE unbilled_usage (
    period       text NOT NULL,
    customer_id  text NOT NULL,
    reason       text NOT NULL,               -- unknown_customer, no_rate_card, rating_error
    detail       text NOT NULL DEFAULT '',
    country      text NOT NULL,
    category     text NOT NULL,
    quantity     bigint NOT NULL,
    usage_cutoff timestamptz NOT NULL,
    PRIMARY KEY (period, customer_id, country, category)
);
