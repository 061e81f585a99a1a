-- Taxes and payment terms (docs/BILLING.md, "Taxes", "Payment terms").

-- A customer's tax details, postal address and payment terms. NULL terms
-- take billing.payment_terms_days (30 unless configured).
ALTER TABLE customers
    ADD COLUMN tax_id             text NOT NULL DEFAULT '',
    ADD COLUMN tax_status         text NOT NULL DEFAULT 'taxable' CHECK (tax_status IN ('taxable','exempt','reverse_charge')),
    ADD COLUMN tax_country        char(2) CHECK (tax_country ~ '^[A-Z]{2}$'),
    ADD COLUMN tax_region         text CHECK (tax_region ~ '^[A-Z]{2}-[A-Z0-9]{1,3}$'),
    ADD COLUMN address            jsonb,
    ADD COLUMN payment_terms_days int CHECK (payment_terms_days BETWEEN 0 AND 365);

-- Tax rates by jurisdiction (ISO 3166-1 country or 3166-2 subdivision)
-- over [effective_from, effective_to) days. Two rates of one jurisdiction
-- never overlap: the exclusion constraint refuses it whatever the
-- concurrency (SQLSTATE 23P01, answered as tax_rate_overlap).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE tax_rates (
    id              text PRIMARY KEY,
    jurisdiction    text NOT NULL CHECK (jurisdiction ~ '^[A-Z]{2}(-[A-Z0-9]{1,3})?$'),
    name            text NOT NULL,
    rate            numeric NOT NULL CHECK (rate >= 0 AND rate <= 100),
    effective_from  date NOT NULL,
    effective_to    date CHECK (effective_to > effective_from),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT tax_rates_no_overlap EXCLUDE USING gist (jurisdiction WITH =, daterange(effective_from, effective_to) WITH &&)
);

-- What an invoice's taxes and terms are: drafts keep them in columns, a
-- finalized invoice in its frozen document as well. Drafts written before
-- this migration get 30 days and no tax until the next run recomputes them.
ALTER TABLE invoices
    ADD COLUMN tax                numeric NOT NULL DEFAULT 0,
    ADD COLUMN tax_lines          text NOT NULL DEFAULT '[]',
    ADD COLUMN tax_note           text NOT NULL DEFAULT '',
    ADD COLUMN payment_terms_days int NOT NULL DEFAULT 30;

-- A finalized invoice never changes: the taxes and terms join what the
-- database refuses to change (migration 0035).
CREATE OR REPLACE FUNCTION invoices_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.customer_id, NEW.period, NEW.seq, NEW.number, NEW.number_year, NEW.number_seq, NEW.customer,
        NEW.currency, NEW.card_id, NEW.card_version, NEW.lines, NEW.subtotal, NEW.adjustments, NEW.total,
        NEW.usage_cutoff, NEW.finalize_after, NEW.created_at, NEW.finalized_at, NEW.replaces, NEW.adjusts,
        NEW.tax, NEW.tax_lines, NEW.tax_note, NEW.payment_terms_days)
       IS DISTINCT FROM
       (OLD.id, OLD.customer_id, OLD.period, OLD.seq, OLD.number, OLD.number_year, OLD.number_seq, OLD.customer,
        OLD.currency, OLD.card_id, OLD.card_version, OLD.lines, OLD.subtotal, OLD.adjustments, OLD.total,
        OLD.usage_cutoff, OLD.finalize_after, OLD.created_at, OLD.finalized_at, OLD.replaces, OLD.adjusts,
        OLD.tax, OLD.tax_lines, OLD.tax_note, OLD.payment_terms_days)
    THEN
        RAISE EXCEPTION 'invoice % is %: what it bills never changes (void it and reissue, or issue a credit note)', OLD.id, OLD.status
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
