-- Metering: the recorded seals of the usage rollups. A row is written only
-- after the rollup rows of its window are in; reads count a window's
-- rollup rows only under its least recorded seal id. first_event and
-- last_event bound the event times of the window's events (both zero and
-- events = 0 for an empty window), so a read skips the windows that hold
-- nothing of its event range. About 9,200 rows a year (hours, days,
-- months).
CREATE TABLE IF NOT EXISTS usage_seals (
    tier         UInt8,
    ingest_start DateTime('UTC'),
    seal_id      UInt64,
    first_event  DateTime('UTC'),
    last_event   DateTime('UTC'),
    events       UInt64,
    sealed_at    DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree
ORDER BY (tier, ingest_start);
