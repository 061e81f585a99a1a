package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"postage"
	"postage/billing"
	"postage/notify"
)

// scanCreditNote reads creditNoteColumns (and extra columns after them).
func scanCreditNote(r pgx.Row, extra ...any) (billing.CreditNote, error) {
	var id, doc string
	if err := r.Scan(append([]any{&id, &doc}, extra...)...); err != nil {
		return billing.CreditNote{}, err
	}
	cn, err := billing.DecodeCreditNote([]byte(doc))
	if err != nil {
		return billing.CreditNote{}, fmt.Errorf("credit note %s: %w", id, err)
	}
	return cn, nil
}

// IssueCreditNote locks the invoice's receivable, plans the credit note
// from the invoice and its earlier credit notes, numbers it from the
// year's counter, freezes and stores it and credits the receivable, in
// one transaction: a number exists exactly when its credit note does, and
// two credit notes at once never credit more than is left.
func (s *ReceivableStore) IssueCreditNote(ctx context.Context, invoiceID string, key billing.CreditKey,
	plan func(billing.Invoice, []billing.CreditNote) (*billing.CreditNote, error)) (billing.CreditNote, bool, error) {
	var out billing.CreditNote
	existing := false
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		before, err := receivable(ctx, tx, invoiceID, true)
		if err != nil {
			return err
		}
		if key.Key != "" {
			var inv string
			var hash []byte
			q, args := creditNoteByKeySQL(key.Key)
			prev, err := scanCreditNote(tx.QueryRow(ctx, q, args...), &inv, &hash)
			switch {
			case err == nil:
				if inv != invoiceID || !bytes.Equal(hash, key.Hash) {
					return postage.Errorf(postage.ECONFLICT, "idempotency key %q issued another credit note (%s)", key.Key, prev.Number)
				}
				out, existing = prev, true
				return nil
			case !errors.Is(err, pgx.ErrNoRows):
				return fmt.Errorf("read credit note: %w", err)
			}
		}
		inv, err := getInvoice(ctx, tx, invoiceID, false)
		if err != nil {
			return err
		}
		q, args := creditNotesOfInvoiceSQL(invoiceID)
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("read credit notes: %w", err)
		}
		prior, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.CreditNote, error) { return scanCreditNote(r) })
		if err != nil {
			return fmt.Errorf("read credit notes: %w", err)
		}
		cn, err := plan(inv, prior)
		if err != nil {
			return err
		}
		now := s.now().Truncate(time.Microsecond) // as the database keeps it
		year := now.Year()
		seq, err := s.nextCreditNumber(ctx, tx, year)
		if err != nil {
			return err
		}
		cn.ID, cn.Number, cn.IssuedAt, cn.IssueDate = billing.NewID("cn_"), s.CreditNumbers.Format(year, seq), now, billing.DateOf(now)
		if err := billing.FreezeCreditNote(cn); err != nil {
			return err
		}
		q, args = insertCreditNoteSQL(*cn, year, seq, key)
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			if pgCode(err) == uniqueViolation && key.Key != "" {
				return postage.Errorf(postage.ECONFLICT, "idempotency key %q issued another credit note", key.Key)
			}
			return fmt.Errorf("issue credit note: %w", err)
		}
		q, args = addCreditedSQL(invoiceID, cn.Total.String(), cn.IssueDate)
		after, err := scanReceivable(tx.QueryRow(ctx, q, args...))
		if err != nil {
			return fmt.Errorf("credit receivable: %w", err)
		}
		if err := emit(ctx, s.Notify, tx, notify.Event{Type: notify.CreditNoteCreated, CustomerID: cn.CustomerID, Object: cn, Key: cn.ID, Created: now}); err != nil {
			return err
		}
		if err := s.emitIfPaid(ctx, tx, before, after, now); err != nil {
			return err
		}
		out = *cn
		return nil
	})
	if err != nil {
		return billing.CreditNote{}, false, err
	}
	return out, existing, nil
}

// nextCreditNumber takes the year's next credit note number in tx (the
// counter row stays locked until tx ends).
func (s *ReceivableStore) nextCreditNumber(ctx context.Context, tx pgx.Tx, year int) (int64, error) {
	q, args := ensureCreditCounterSQL(year)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return 0, fmt.Errorf("credit note counter: %w", err)
	}
	var last int64
	q, args = lockCreditCounterSQL(year)
	if err := tx.QueryRow(ctx, q, args...).Scan(&last); err != nil {
		return 0, fmt.Errorf("credit note counter: %w", err)
	}
	q, args = bumpCreditCounterSQL(year, last+1)
	if _, err := tx.Exec(ctx, q, args...); err != nil {
		return 0, fmt.Errorf("credit note counter: %w", err)
	}
	return last + 1, nil
}

// CreditNote returns one credit note, by id or number.
func (s *ReceivableStore) CreditNote(ctx context.Context, id string) (billing.CreditNote, error) {
	q, args := getCreditNoteSQL(id)
	cn, err := scanCreditNote(s.DB.QueryRow(ctx, q, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return billing.CreditNote{}, postage.Errorf(postage.ENOTFOUND, "credit note %q not found", id)
	} else if err != nil {
		return billing.CreditNote{}, fmt.Errorf("get credit note: %w", err)
	}
	return cn, nil
}

// CreditNotes lists credit notes matching f, newest first.
func (s *ReceivableStore) CreditNotes(ctx context.Context, f billing.CreditNoteFilter, p billing.Page) ([]billing.CreditNote, string, error) {
	p = p.Norm()
	cur, err := decodeKeyCursor(p.Cursor)
	if err != nil {
		return nil, "", err
	}
	if cur != nil {
		if _, err := strconv.ParseInt(cur.ID, 10, 64); err != nil {
			return nil, "", postage.Errorf(postage.EINVALID, "cursor: not a next_cursor from this list")
		}
	}
	q, args := listCreditNotesSQL(f, cur, p.Limit+1)
	rows, err := s.DB.Query(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list credit notes: %w", err)
	}
	var issued []time.Time
	var seqs []int64
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (billing.CreditNote, error) {
		var at time.Time
		var seq int64
		cn, err := scanCreditNote(r, &at, &seq)
		issued, seqs = append(issued, at), append(seqs, seq)
		return cn, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list credit notes: %w", err)
	}
	next := ""
	if len(list) > p.Limit {
		list = list[:p.Limit]
		next = keyCursor{At: issued[p.Limit-1].UTC().Format(time.RFC3339Nano), ID: strconv.FormatInt(seqs[p.Limit-1], 10)}.encode()
	}
	if list == nil {
		list = []billing.CreditNote{}
	}
	return list, next, nil
}

// CreditNoteDocument returns the stored rendering of a credit note, as
// issued or (void) as voided.
func (s *ReceivableStore) CreditNoteDocument(ctx context.Context, id string, f billing.Format, void bool) ([]byte, bool, error) {
	var body []byte
	q, args := creditNoteDocumentSQL(id, f, void)
	err := s.DB.QueryRow(ctx, q, args...).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("credit note document: %w", err)
	}
	return body, true, nil
}

// PutCreditNoteDocument stores a rendering unless one is stored already,
// and returns the stored one.
func (s *ReceivableStore) PutCreditNoteDocument(ctx context.Context, id string, f billing.Format, void bool, body []byte) ([]byte, error) {
	q, args := putCreditNoteDocumentSQL(id, f, void, body, s.now())
	if _, err := s.DB.Exec(ctx, q, args...); err != nil {
		return nil, fmt.Errorf("store credit note document: %w", err)
	}
	stored, ok, err := s.CreditNoteDocument(ctx, id, f, void)
	if err == nil && !ok {
		err = fmt.Errorf("store credit note document %s %s: not found after insert", id, f)
	}
	return stored, err
}

// VoidCreditNote voids a credit note under its invoice's receivable lock:
// the credit note is read again once the lock is held, so two voids at
// once void it once, and a refund being recorded is checked before or
// after it, never beside it.
func (s *ReceivableStore) VoidCreditNote(ctx context.Context, id, reason string, check func(billing.Receivable, billing.CreditNote) error) (billing.CreditNote, billing.Receivable, error) {
	var out billing.CreditNote
	var rec billing.Receivable
	err := pgx.BeginFunc(ctx, s.DB, func(tx pgx.Tx) error {
		read := func() (billing.CreditNote, error) {
			q, args := getCreditNoteSQL(id)
			cn, err := scanCreditNote(tx.QueryRow(ctx, q, args...))
			if errors.Is(err, pgx.ErrNoRows) {
				return cn, postage.Errorf(postage.ENOTFOUND, "credit note %q not found", id)
			} else if err != nil {
				return cn, fmt.Errorf("read credit note: %w", err)
			}
			return cn, nil
		}
		cn, err := read()
		if err != nil {
			return err
		}
		r, err := receivable(ctx, tx, cn.InvoiceID, true)
		if err != nil {
			return err
		}
		if cn, err = read(); err != nil {
			return err
		}
		if err := check(r, cn); err != nil {
			return err
		}
		now := s.now().Truncate(time.Microsecond)
		cn.VoidedAt, cn.VoidReason = &now, reason
		if err := billing.FreezeCreditNote(&cn); err != nil {
			return err
		}
		q, args := voidCreditNoteSQL(cn.ID, reason, now, cn.Document())
		if _, err := tx.Exec(ctx, q, args...); err != nil {
			if pgCode(err) == uniqueViolation {
				return postage.Errorf(postage.ECONFLICT, "credit note %s is void already", cn.Number)
			}
			return fmt.Errorf("void credit note: %w", err)
		}
		q, args = uncreditSQL(cn.InvoiceID, cn.Total.String())
		if rec, err = scanReceivable(tx.QueryRow(ctx, q, args...)); err != nil {
			if pgCode(err) == checkViolation {
				return postage.Errorf(postage.EOVERREFUND, "voiding credit note %s would leave more refunded than the customer is owed", cn.Number)
			}
			return fmt.Errorf("void credit note: %w", err)
		}
		if err := emit(ctx, s.Notify, tx, notify.Event{Type: notify.CreditNoteVoided, CustomerID: cn.CustomerID, Object: cn, Key: cn.ID, Created: now}); err != nil {
			return err
		}
		out = cn
		return nil
	})
	if err != nil {
		return billing.CreditNote{}, billing.Receivable{}, err
	}
	return out, rec, nil
}
