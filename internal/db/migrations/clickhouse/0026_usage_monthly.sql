-- Metering: tier 3 of the exact usage rollups. One row per (ingest month,
-- seal, event month as YYYYMM, dimensions), built from the tier 2 rows of
-- the month's sealed days. Sorted by event month then customer, so an
-- invoice run's month and one customer's month are both ranges of each
-- partition read; partitioned by ingest month (a month's events are
-- ingested in that month and, late, in the next one or two).
CREATE TABLE IF NOT EXISTS usage_monthly (
    ingest_month  DateTime('UTC'),
    seal_id       UInt64,
    event_month   UInt32,
    customer_id   String,
    country       FixedString(2),
    category      String,
    pricing_type  String,
    pricing_model String,
    quantity      UInt64,
    events        UInt64,
    last_ingested DateTime('UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ingest_month)
ORDER BY (event_month, customer_id, country, category, pricing_type, pricing_model)
SETTINGS index_granularity = 1024;
