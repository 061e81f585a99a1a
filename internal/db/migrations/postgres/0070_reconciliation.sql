-- Reconciliation with the upstream's usage-and-cost report
-- (docs/RECONCILIATION.md): imported reports and their rows, each
-- report's latest comparison with its differences, and finance's
-- acceptances of a difference (append-only: who, when, why).

CREATE TABLE upstream_reports (
    id          bigserial PRIMARY KEY,
    month       char(7) NOT NULL,                 -- YYYY-MM
    source      text NOT NULL,                    -- the file's name
    format      text NOT NULL CHECK (format IN ('csv', 'json')),
    granularity text NOT NULL,
    currency    char(3) NOT NULL,
    data_points integer NOT NULL,
    row_count   integer NOT NULL,
    volume      bigint NOT NULL,
    cost        numeric NOT NULL,
    imported_at timestamptz NOT NULL,
    imported_by text NOT NULL
);
CREATE INDEX upstream_reports_month ON upstream_reports (month, id);

-- The report's data points added per phone number, day, country,
-- category and pricing type.
CREATE TABLE upstream_usage (
    report_id       bigint NOT NULL REFERENCES upstream_reports (id) ON DELETE CASCADE,
    phone_number_id text NOT NULL,
    day             date NOT NULL,
    country         char(2) NOT NULL,
    category        text NOT NULL,
    pricing_type    text NOT NULL,
    volume          bigint NOT NULL,
    cost            numeric NOT NULL
);
CREATE INDEX upstream_usage_report ON upstream_usage (report_id, phone_number_id);

-- A report's latest comparison: its totals (reconcile.Result as JSON) and
-- its differences in order.
CREATE TABLE reconciliations (
    report_id   bigint PRIMARY KEY REFERENCES upstream_reports (id) ON DELETE CASCADE,
    compared_at timestamptz NOT NULL,
    result      jsonb NOT NULL
);

CREATE TABLE reconciliation_differences (
    report_id         bigint NOT NULL REFERENCES reconciliations (report_id) ON DELETE CASCADE,
    seq               integer NOT NULL,
    customer_id       text NOT NULL,
    day               date NOT NULL,
    market            text NOT NULL,
    category          text NOT NULL,
    cause             text NOT NULL,
    postage_messages  bigint NOT NULL,
    upstream_messages bigint NOT NULL,
    postage_cost      numeric NOT NULL,
    upstream_cost     numeric NOT NULL,
    detail            text NOT NULL,
    PRIMARY KEY (report_id, seq)
);

CREATE TABLE reconciliation_acceptances (
    id             bigserial PRIMARY KEY,
    report_id      bigint NOT NULL REFERENCES upstream_reports (id) ON DELETE CASCADE,
    accepted_by    text NOT NULL,
    accepted_at    timestamptz NOT NULL,
    reason         text NOT NULL,
    gross_messages bigint NOT NULL,
    gross_amount   numeric NOT NULL
);
CREATE INDEX reconciliation_acceptances_report ON reconciliation_acceptances (report_id, id);

-- Acceptances are a record: never changed, never deleted on their own.
CREATE FUNCTION reconciliation_acceptances_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation acceptances are never changed';
END $$;
CREATE TRIGGER reconciliation_acceptances_frozen BEFORE UPDATE ON reconciliation_acceptances
    FOR EACH ROW EXECUTE FUNCTION reconciliation_acceptances_frozen();
