-- An invoice run writes tens of thousands of drafts at once, and the
-- foreign key invoices.customer_id -> customers(id) checked each of them
-- with a query that also locked the customer's row: a fifth of
-- PostgreSQL's work in a run (docs/BILLING.md, "Run speed"). Runs only
-- write invoices of customers they have just read from customers, so the
-- insert side of the key guarded nothing; what it did guard, that a
-- customer with invoices can be neither deleted nor renamed, is kept by
-- the trigger below, which costs nothing when invoices are written.
--
-- A customer's first invoice is only ever written by an invoice run, which
-- holds the advisory lock ("pstg", 7) in shared mode from before it reads
-- the customers until its drafts are committed (billing/run.go:
-- lockCustomers). The trigger takes the same lock exclusively, so a delete
-- waits for the runs in progress and then sees their invoices, and a run
-- that starts meanwhile waits for the delete and no longer sees the
-- customer. (Reissues and adjustments write invoices of customers that
-- already have one, which the trigger sees.) Seeing invoices committed
-- while the delete waited needs a fresh snapshot, so the trigger refuses
-- to run in a REPEATABLE READ or SERIALIZABLE transaction.
ALTER TABLE invoices DROP CONSTRAINT invoices_customer_id_fkey;

CREATE FUNCTION customers_keep_invoiced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF NEW.id = OLD.id THEN
            RETURN NEW;
        END IF;
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deleting or renaming customer % needs a READ COMMITTED transaction', OLD.id
            USING ERRCODE = 'feature_not_supported';
    END IF;
    PERFORM pg_advisory_xact_lock(1886614631, 7); -- 0x70737467 ("pstg"), 7
    IF EXISTS (SELECT 1 FROM invoices WHERE customer_id = OLD.id) THEN
        RAISE EXCEPTION 'customer % has invoices: it cannot be deleted or change its id', OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_keep_invoiced BEFORE DELETE OR UPDATE OF id ON customers
    FOR EACH ROW EXECUTE FUNCTION customers_keep_invoiced();
