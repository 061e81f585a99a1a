-- Metering: tier 1 of the exact usage rollups (docs/METERING.md, "Usage
-- queries"). One row per (ingest hour, seal, event hour, dimensions) with
-- the sum of quantities, the number of events and the latest ingestion
-- stamp, built from the raw events of an ingest hour once no insert
-- stamped inside it can still land. Rows count only under the recorded
-- seal of their hour (usage_seals), so a seal that crashed half-way or ran
-- twice never counts twice.
--
-- Partitioned by ingest day: building a day of tier 2 reads one partition,
-- and the recent hours that reads take from this tier are in today's.
-- Sorted by customer, then event hour: one customer's hours of a range are
-- one range of each partition read (hourly usage, the month-to-date bill).
CREATE TABLE IF NOT EXISTS usage_hourly (
    ingest_hour   DateTime('UTC'),
    seal_id       UInt64,
    event_hour    DateTime('UTC'),
    customer_id   String,
    country       FixedString(2),
    category      String,
    pricing_type  String,
    pricing_model String,
    quantity      UInt64,
    events        UInt64,
    last_ingested DateTime('UTC')
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(ingest_hour)
ORDER BY (customer_id, event_hour, country, category, pricing_type, pricing_model)
SETTINGS index_granularity = 1024;
