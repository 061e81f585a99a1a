-- Metering: the event stream, one row per (customer_id, id).
--
-- ReplacingMergeTree whose sorting key is exactly (customer_id, id): rows of
-- the same event (a retry after a crash mid-insert, two replicas racing) are
-- collapsed by background merges, keeping the row with the greatest
-- payload_hash, and every usage query reads with FINAL so the answer is the
-- same before and after merges. The sorting key leads with customer_id, so a
-- customer-month is one small contiguous range of one monthly partition.
-- The pre-insert look-up of a batch's ids is a primary-key range read.
-- index_granularity 1024 (not 8192) keeps that look-up and one small
-- customer's FINAL read to few rows.
-- DateTime('UTC') makes toStartOfHour/Day/Month and toYYYYMM UTC whatever the
-- server's time zone. Works on ClickHouse 18.16 and current releases.
CREATE TABLE IF NOT EXISTS events (
    customer_id  String,
    id           String,
    time         DateTime('UTC'),
    country      FixedString(2),
    category     String,
    quantity     UInt64,
    payload_hash UInt64,
    ingested_at  DateTime('UTC')
) ENGINE = ReplacingMergeTree(payload_hash)
PARTITION BY toYYYYMM(time)
ORDER BY (customer_id, id)
SETTINGS index_granularity = 1024;
