-- Two unique indexes on (customer_id, period, …) become one. Every draft an
-- invoice run writes (50,000 at once) paid for both; this one keeps both
-- guarantees and still serves a customer's list of invoices:
--   * at most one live (draft or finalized) invoice per customer and
--     period: every live invoice of (customer, period) has the key 0;
--   * a voided invoice keeps its own key, its seq (seq is unique per
--     customer and period anyway: the id, the primary key, is derived
--     from (customer, period, seq)).
CREATE UNIQUE INDEX invoices_customer ON invoices (customer_id, period, (CASE WHEN status = 'void' THEN seq ELSE 0 END));
DROP INDEX invoices_live;
ALTER TABLE invoices DROP CONSTRAINT invoices_customer_id_period_seq_key;
