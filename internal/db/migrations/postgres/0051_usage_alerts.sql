-- Usage alerts (package notify): a threshold on a customer's
-- month-to-date messages or bill that fires usage.threshold_reached once
-- per calendar month.

CREATE TABLE usage_alerts (
    id           text PRIMARY KEY,                     -- al_...
    customer_id  text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    metric       text NOT NULL CHECK (metric IN ('messages', 'amount')),
    threshold    numeric NOT NULL CHECK (threshold > 0),
    currency     char(3),                              -- the customer's, for amount alerts
    fired_period text,                                 -- YYYY-MM of the last month it fired
    fired_at     timestamptz,
    created_at   timestamptz NOT NULL,
    CHECK ((metric = 'amount') = (currency IS NOT NULL))
);
-- The alert job reads the alerts not fired this month, by customer.
CREATE INDEX usage_alerts_customer ON usage_alerts (customer_id, id);
