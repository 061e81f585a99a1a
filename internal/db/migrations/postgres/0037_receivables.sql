-- Accounts receivable (docs/BILLING.md, "Payments and receivables").
--
-- One receivable per finalized invoice, written in the transaction that
-- finalizes it: what it owes (its total, tax included), what was paid and
-- credited, its issue and due dates. The frozen invoice never changes; its
-- balance and payment status are derived from this row, which payments and
-- credit notes update under its row lock (SELECT ... FOR UPDATE), so two
-- payments or credit notes at once never take more than is left.
CREATE TABLE receivables (
    invoice_id           text PRIMARY KEY REFERENCES invoices(id),
    customer_id          text NOT NULL,
    customer_name        text NOT NULL,
    number               text NOT NULL,
    period               text NOT NULL,
    currency             char(3) NOT NULL,
    total                numeric NOT NULL,
    paid                 numeric NOT NULL DEFAULT 0 CHECK (paid >= 0),
    credited             numeric NOT NULL DEFAULT 0 CHECK (credited >= 0),
    balance              numeric GENERATED ALWAYS AS (total - paid - credited) STORED,
    issue_date           date NOT NULL,
    due_date             date NOT NULL,
    settled_on           date,                -- the day the balance reached zero or less
    uncollectible_at     timestamptz,
    uncollectible_reason text NOT NULL DEFAULT '',
    overdue_reported_at  timestamptz,         -- invoice.overdue was emitted
    -- Payments never exceed the total: each is at most the balance then.
    CHECK (paid <= greatest(total, 0)),
    -- Credit notes never credit more than the total.
    CHECK (credited <= greatest(total, 0))
);
-- What is still owed, by due date: the aging report and the overdue sweep
-- read only these, whatever the history.
CREATE INDEX receivables_outstanding ON receivables (due_date, customer_id) WHERE balance > 0;
CREATE INDEX receivables_customer ON receivables (customer_id, issue_date DESC, invoice_id);
CREATE INDEX receivables_issued ON receivables (issue_date DESC, invoice_id);

-- Invoices finalized before this migration: due 30 days after their
-- finalization (they were issued without terms).
INSERT INTO receivables (invoice_id, customer_id, customer_name, number, period, currency, total, issue_date, due_date, settled_on)
SELECT i.id, i.customer_id, coalesce(i.customer->>'name', ''), i.number, i.period, i.currency,
       i.total, (i.finalized_at AT TIME ZONE 'UTC')::date, (i.finalized_at AT TIME ZONE 'UTC')::date + i.payment_terms_days,
       CASE WHEN i.total <= 0 THEN (i.finalized_at AT TIME ZONE 'UTC')::date END
FROM invoices i WHERE i.status = 'finalized';

-- Payments: money received against a finalized invoice. Recorded once,
-- never changed or deleted.
CREATE TABLE payments (
    id               text PRIMARY KEY,
    invoice_id       text NOT NULL REFERENCES receivables(invoice_id),
    invoice_number   text NOT NULL,
    customer_id      text NOT NULL,
    amount           numeric NOT NULL CHECK (amount > 0),
    currency         char(3) NOT NULL,
    paid_on          date NOT NULL,
    method           text NOT NULL CHECK (method IN ('bank_transfer','card','direct_debit','cash','check','other')),
    reference        text NOT NULL DEFAULT '',
    idempotency_key  text UNIQUE,
    created_at       timestamptz NOT NULL
);
CREATE INDEX payments_invoice ON payments (invoice_id, created_at DESC, id);
CREATE INDEX payments_customer ON payments (customer_id, created_at DESC, id);
CREATE INDEX payments_created ON payments (created_at DESC, id);

CREATE FUNCTION ledger_rows_never_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% % is recorded: it never changes', TG_TABLE_NAME, OLD.id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER payments_never_change BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION ledger_rows_never_change();
