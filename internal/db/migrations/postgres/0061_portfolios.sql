-- Portfolios (docs/PRICING.md, "Portfolios"; docs/BILLING.md): a
-- customer's parent account from a month on, and whether a parent receives
-- one consolidated invoice for its members. Keyed by (customer, month) like
-- card assignments: the row in effect in a month is the latest one
-- effective on or before it. A NULL parent ends a membership.
CREATE TABLE customer_portfolios (
    customer_id     text NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    effective_from  text NOT NULL CHECK (effective_from ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    parent_id       text REFERENCES customers(id),
    consolidated    boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, effective_from),
    CHECK (parent_id IS DISTINCT FROM customer_id),
    CHECK (NOT (consolidated AND parent_id IS NOT NULL))
);
-- A parent's members (the shard key a cluster would inherit, and the
-- one-level check).
CREATE INDEX customer_portfolios_parent ON customer_portfolios (parent_id) WHERE parent_id IS NOT NULL;

-- Members share tier counts and a consolidated invoice, so a customer and
-- its parent bill in one currency: a currency change that would split a
-- portfolio is refused (the check of a new membership is in the store,
-- which locks both customers).
CREATE FUNCTION customers_portfolio_currency() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    other text;
BEGIN
    SELECT c.id INTO other FROM customer_portfolios p JOIN customers c ON c.id = p.parent_id
    WHERE p.customer_id = NEW.id AND c.currency <> NEW.currency LIMIT 1;
    IF other IS NULL THEN
        SELECT c.id INTO other FROM customer_portfolios p JOIN customers c ON c.id = p.customer_id
        WHERE p.parent_id = NEW.id AND c.currency <> NEW.currency LIMIT 1;
    END IF;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'customer % shares a portfolio with % billed in another currency: its currency cannot become %', NEW.id, other, NEW.currency
            USING ERRCODE = 'PC409';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_portfolio_currency BEFORE UPDATE OF currency ON customers
    FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency) EXECUTE FUNCTION customers_portfolio_currency();

-- An invoice's details beyond its lines (billing.Invoice): the sections of
-- a consolidated invoice, the usage it does not bill and why, the cost card
-- and exchange rates cost-plus lines used. JSON written and read only by
-- postage; '' when there are none.
ALTER TABLE invoices ADD COLUMN details text NOT NULL DEFAULT '';

-- Finalized invoices never change: the details are part of what they bill.
CREATE OR REPLACE FUNCTION invoices_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.customer_id, NEW.period, NEW.seq, NEW.number, NEW.number_year, NEW.number_seq, NEW.customer,
        NEW.currency, NEW.card_id, NEW.card_version, NEW.lines, NEW.subtotal, NEW.adjustments, NEW.total,
        NEW.usage_cutoff, NEW.finalize_after, NEW.created_at, NEW.finalized_at, NEW.replaces, NEW.adjusts, NEW.details)
       IS DISTINCT FROM
       (OLD.id, OLD.customer_id, OLD.period, OLD.seq, OLD.number, OLD.number_year, OLD.number_seq, OLD.customer,
        OLD.currency, OLD.card_id, OLD.card_version, OLD.lines, OLD.subtotal, OLD.adjustments, OLD.total,
        OLD.usage_cutoff, OLD.finalize_after, OLD.created_at, OLD.finalized_at, OLD.replaces, OLD.adjusts, OLD.details)
    THEN
        RAISE EXCEPTION 'invoice % is %: what it bills never changes (void it and reissue)', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NOT (NEW.status = OLD.status OR (OLD.status = 'finalized' AND NEW.status = 'void')) THEN
        RAISE EXCEPTION 'invoice % is %: it cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.status = OLD.status AND (NEW.voided_at, NEW.void_reason) IS DISTINCT FROM (OLD.voided_at, OLD.void_reason) THEN
        RAISE EXCEPTION 'invoice % is %: its void never changes', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.replaced_by IS NOT NULL AND NEW.replaced_by IS DISTINCT FROM OLD.replaced_by THEN
        RAISE EXCEPTION 'invoice % is replaced by %: that never changes', OLD.id, OLD.replaced_by
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.document IS NOT NULL AND NEW.document IS DISTINCT FROM OLD.document
       AND NOT (NEW.document IS NULL AND OLD.status = 'finalized' AND NEW.status = 'void') THEN
        RAISE EXCEPTION 'invoice % is %: its frozen document never changes', OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
