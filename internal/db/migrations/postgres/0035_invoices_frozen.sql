-- A finalized invoice never changes (docs/BILLING.md, "A finalized invoice
-- never changes").
--
-- document: the invoice as finalized (or voided), JSON, with everything it
-- shows: every line's description, the issuer of the day, the customer
-- snapshot, totals and the currency's decimals. A finalized or void
-- invoice is read from it (billing.DecodeDocument) and marshals to exactly
-- these bytes, so neither a release that describes lines differently nor a
-- new issuer address changes it. NULL for drafts (and for invoices
-- finalized before this migration: those are read from their columns).
ALTER TABLE invoices ADD COLUMN document text;

-- The rendered CSV and PDF of finalized and void invoices: drawn from the
-- frozen document the first time each is asked for, then served from here
-- byte for byte (the first rendering stored wins: ON CONFLICT DO NOTHING),
-- whatever later releases do to how documents look.
CREATE TABLE invoice_documents (
    invoice_id  text NOT NULL,
    status      text NOT NULL CHECK (status IN ('finalized','void')),
    format      text NOT NULL CHECK (format IN ('csv','pdf')),
    body        bytea NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, status, format)
);

CREATE FUNCTION invoice_documents_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % document of invoice % never changes', OLD.format, OLD.invoice_id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER invoice_documents_never_change BEFORE UPDATE OR DELETE ON invoice_documents
    FOR EACH ROW EXECUTE FUNCTION invoice_documents_never_change();

-- The database itself keeps finalized and void invoices as they are: what
-- an invoice bills never changes once it is finalized; the only changes
-- are finalized -> void (with the void's date, reason and replacement, its
-- finalized document giving way to a void one) and writing the frozen
-- document where there is none.
CREATE FUNCTION invoices_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.customer_id, NEW.period, NEW.seq, NEW.number, NEW.number_year, NEW.number_seq, NEW.customer,
        NEW.currency, NEW.card_id, NEW.card_version, NEW.lines, NEW.subtotal, NEW.adjustments, NEW.total,
        NEW.usage_cutoff, NEW.finalize_after, NEW.created_at, NEW.finalized_at, NEW.replaces, NEW.adjusts)
       IS DISTINCT FROM
       (OLD.id, OLD.customer_id, OLD.period, OLD.seq, OLD.number, OLD.number_year, OLD.number_seq, OLD.customer,
        OLD.currency, OLD.card_id, OLD.card_version, OLD.lines, OLD.subtotal, OLD.adjustments, OLD.total,
        OLD.usage_cutoff, OLD.finalize_after, OLD.created_at, OLD.finalized_at, OLD.replaces, OLD.adjusts)
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

CREATE TRIGGER invoices_never_change BEFORE UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.status <> 'draft') EXECUTE FUNCTION invoices_never_change();

-- A customer is billed in its own currency, by rate cards of that currency
-- (issue: a JPY customer on a USD card was invoiced in USD while its
-- snapshot said JPY). Assigning a card of another currency is refused, and
-- so is changing a customer's currency while it has an assignment or a
-- live invoice in the old one. A customer without an assignment whose
-- currency differs from the default card's is not billed by it either:
-- the rating pipeline lists its usage as unbilled (currency_mismatch).
-- Both triggers lock the customer's row, so a concurrent assignment and
-- currency change cannot both pass. SQLSTATE PC409 (billing/pgstore,
-- pricing/pgstore answer it as a conflict).
CREATE FUNCTION customer_rate_cards_same_currency() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    customer_currency text;
    card_currency text;
BEGIN
    SELECT currency INTO customer_currency FROM customers WHERE id = NEW.customer_id FOR SHARE;
    SELECT currency INTO card_currency FROM rate_cards WHERE id = NEW.card_id;
    IF customer_currency IS DISTINCT FROM card_currency AND customer_currency IS NOT NULL AND card_currency IS NOT NULL THEN
        RAISE EXCEPTION 'rate card % bills in %, but customer % is billed in %: assign a card in %', NEW.card_id, card_currency, NEW.customer_id, customer_currency, customer_currency
            USING ERRCODE = 'PC409';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customer_rate_cards_same_currency BEFORE INSERT OR UPDATE ON customer_rate_cards
    FOR EACH ROW EXECUTE FUNCTION customer_rate_cards_same_currency();

CREATE FUNCTION customers_currency_kept() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    other text;
BEGIN
    SELECT a.card_id INTO other FROM customer_rate_cards a JOIN rate_cards c ON c.id = a.card_id
    WHERE a.customer_id = NEW.id AND c.currency <> NEW.currency LIMIT 1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'customer % has rate card % in %: its currency cannot become %', NEW.id, other, OLD.currency, NEW.currency
            USING ERRCODE = 'PC409';
    END IF;
    SELECT i.id INTO other FROM invoices i WHERE i.customer_id = NEW.id AND i.status <> 'void' AND i.currency <> NEW.currency LIMIT 1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'customer % has invoice % in %: its currency cannot become % (void its invoices first)', NEW.id, other, OLD.currency, NEW.currency
            USING ERRCODE = 'PC409';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_currency_kept BEFORE UPDATE OF currency ON customers
    FOR EACH ROW WHEN (OLD.currency IS DISTINCT FROM NEW.currency) EXECUTE FUNCTION customers_currency_kept();
