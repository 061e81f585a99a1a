-- Refunds and void credit notes (docs/BILLING.md, "Refunds", "Voiding a
-- credit note"; docs/FINANCE.md).
--
-- A refund is money finance paid back outside postage (bank, processor)
-- against an invoice whose balance is negative: what the customer is
-- owed after a credit note came after payment. The receivable keeps the
-- refunded sum; its balance is total - paid - credited + refunded, and
-- refunds never bring it above zero (a CHECK behind the row lock).
ALTER TABLE receivables ADD COLUMN refunded numeric NOT NULL DEFAULT 0 CHECK (refunded >= 0);
-- The balance is generated: PostgreSQL 15 cannot change its expression,
-- so it is dropped (with the partial index on it) and added again.
ALTER TABLE receivables DROP COLUMN balance;
ALTER TABLE receivables ADD COLUMN balance numeric GENERATED ALWAYS AS (total - paid - credited + refunded) STORED;
CREATE INDEX receivables_outstanding ON receivables (due_date, customer_id) WHERE balance > 0;
-- Refunds give back at most what the customer is owed.
ALTER TABLE receivables ADD CONSTRAINT receivables_refunds_within_owed
    CHECK (refunded <= greatest(paid + credited - total, 0));

-- Refunds: recorded once, never changed or deleted (like payments).
CREATE TABLE refunds (
    id               text PRIMARY KEY,
    invoice_id       text NOT NULL REFERENCES receivables(invoice_id),
    invoice_number   text NOT NULL,
    customer_id      text NOT NULL,
    amount           numeric NOT NULL CHECK (amount > 0),
    currency         char(3) NOT NULL,
    refunded_on      date NOT NULL,
    method           text NOT NULL CHECK (method IN ('bank_transfer','card','direct_debit','cash','check','other')),
    reference        text NOT NULL DEFAULT '',
    idempotency_key  text UNIQUE,
    created_at       timestamptz NOT NULL
);
CREATE INDEX refunds_invoice ON refunds (invoice_id, created_at DESC, id);
CREATE INDEX refunds_customer ON refunds (customer_id, created_at DESC, id);
CREATE INDEX refunds_created ON refunds (created_at DESC, id);

CREATE TRIGGER refunds_never_change BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_never_change();

-- Void credit notes. The credit note row and its number stay (the
-- numbering stays gapless, the row never changes); the void is a row of
-- its own, written once, in the transaction that takes the credit note's
-- total off the receivable's credited sum. document is the credit note
-- frozen again as void (its voided_at and void_reason set): what it reads
-- as from then on.
CREATE TABLE credit_note_voids (
    credit_note_id  text PRIMARY KEY REFERENCES credit_notes(id),
    reason          text NOT NULL,
    voided_at       timestamptz NOT NULL,
    document        text NOT NULL
);

CREATE FUNCTION credit_note_voids_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit note % is void: the void never changes', OLD.credit_note_id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER credit_note_voids_never_change BEFORE UPDATE OR DELETE ON credit_note_voids
    FOR EACH ROW EXECUTE FUNCTION credit_note_voids_never_change();

-- A void credit note's CSV and PDF say VOID: drawn once from the void
-- document and kept beside the issued ones (which stay as they were).
ALTER TABLE credit_note_documents ADD COLUMN void boolean NOT NULL DEFAULT false;
ALTER TABLE credit_note_documents DROP CONSTRAINT credit_note_documents_pkey;
ALTER TABLE credit_note_documents ADD PRIMARY KEY (credit_note_id, format, void);

-- Payment reminders (dunning; docs/BILLING.md, "Payment reminders"): one
-- row per invoice and reminder offset (days relative to the due date,
-- billing.reminders) once invoice.payment_reminder was emitted for it, in
-- the same transaction: each reminder of an invoice is sent once. The
-- marks go with the receivable of an invoice voided and reissued.
CREATE TABLE payment_reminders (
    invoice_id   text NOT NULL REFERENCES receivables(invoice_id) ON DELETE CASCADE,
    offset_days  int NOT NULL,
    sent_at      timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, offset_days)
);
