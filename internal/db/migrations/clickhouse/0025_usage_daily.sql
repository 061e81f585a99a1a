-- Metering: tier 2 of the exact usage rollups. One row per (ingest day,
-- seal, event day, dimensions), built from the tier 1 rows of the day's 24
-- sealed hours. Partitioned by ingest month (building a month of tier 3
-- reads one partition), sorted by customer then event day (one customer's
-- days are one range per partition read).
CREATE TABLE IF NOT EXISTS usage_daily (
    ingest_day    DateTime('UTC'),
    seal_id       UInt64,
    event_day     DateTime('UTC'),
    customer_id   String,
    country       FixedString(2),
    category      String,
    pricing_type  String,
    pricing_model String,
    quantity      UInt64,
    events        UInt64,
    last_ingested DateTime('UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ingest_day)
ORDER BY (customer_id, event_day, country, category, pricing_type, pricing_model)
SETTINGS index_granularity = 1024;
