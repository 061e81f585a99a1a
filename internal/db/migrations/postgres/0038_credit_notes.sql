-- Credit notes (docs/BILLING.md, "Credit notes").
--
-- A credit note corrects part of a finalized invoice. It is numbered from
-- its own gapless yearly counter (CN-2026-000001) in the transaction that
-- issues it, frozen at once (document: its JSON, with everything it
-- shows), and never changes: no update, no delete.
CREATE TABLE credit_notes (
    id               text PRIMARY KEY,
    number           text NOT NULL UNIQUE,
    number_year      int NOT NULL,
    number_seq       bigint NOT NULL,
    invoice_id       text NOT NULL REFERENCES receivables(invoice_id),
    customer_id      text NOT NULL,
    currency         char(3) NOT NULL,
    subtotal         numeric NOT NULL CHECK (subtotal > 0),
    tax              numeric NOT NULL,
    total            numeric NOT NULL,
    issued_at        timestamptz NOT NULL,
    idempotency_key  text UNIQUE,
    request_hash     bytea,
    document         text NOT NULL,
    UNIQUE (number_year, number_seq)
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, issued_at);
CREATE INDEX credit_notes_customer ON credit_notes (customer_id, issued_at DESC, id);
CREATE INDEX credit_notes_issued ON credit_notes (issued_at DESC, id);

CREATE TRIGGER credit_notes_never_change BEFORE UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_never_change();

-- The last credit note number handed out per year (as invoice numbers:
-- locked, bumped and used in one transaction, so no gaps).
CREATE TABLE credit_note_number_counters (
    year  int PRIMARY KEY,
    last  bigint NOT NULL CHECK (last >= 0)
);

-- The rendered CSV and PDF of credit notes, drawn once from the frozen
-- document and served byte for byte ever after (first writer wins).
CREATE TABLE credit_note_documents (
    credit_note_id  text NOT NULL REFERENCES credit_notes(id),
    format          text NOT NULL CHECK (format IN ('csv','pdf')),
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (credit_note_id, format)
);

CREATE FUNCTION credit_note_documents_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the % document of credit note % never changes', OLD.format, OLD.credit_note_id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER credit_note_documents_never_change BEFORE UPDATE OR DELETE ON credit_note_documents
    FOR EACH ROW EXECUTE FUNCTION credit_note_documents_never_change();
