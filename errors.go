// Package postage holds what every part of the service shares: the one error
// type with its small set of stable codes, mapped to HTTP status in one place
// (internal/httpapi) and to one-line CLI messages in cmd/postage.
package postage

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes. They are part of the API contract: the HTTP problem+json body
// carries them as "code", so clients can branch on them. Never rename one.
const (
	EINVALID      = "invalid"                // the input is wrong; the message says how
	ENOTFOUND     = "not_found"              // the thing does not exist (or the caller may not see it)
	ECONFLICT     = "conflict"               // the request contradicts the current state
	EUNAUTHORIZED = "unauthorized"           // no or bad credentials
	EFORBIDDEN    = "forbidden"              // credentials valid but the role may not do this
	EUNAVAILABLE  = "unavailable"            // a dependency (database) is down; retry later
	ENOTOWNER     = "shard_not_owned"        // this API process does not own the writes of the customer's shard (HTTP 503): retry, on another process
	EOVERLOADED   = "overloaded"             // back-pressure: retry after a pause
	ETOOLARGE     = "too_large"              // body or batch over its limit
	EUNSUPPORTED  = "unsupported_media_type" // wrong Content-Type
	EINTERNAL     = "internal"               // a bug or unexpected failure; details are logged, never shown
	ERENDERER     = "renderer_unavailable"   // PDF documents cannot be drawn (no browser, or it failed); JSON and CSV still can

	// Finance refusals: specific conflicts of payments, credit notes and
	// tax rates (HTTP 409), so clients can tell them apart.
	EOVERPAYMENT      = "overpayment"              // a payment larger than the invoice's balance
	ECURRENCYMISMATCH = "currency_mismatch"        // a payment in another currency than the invoice's
	ENOTFINALIZED     = "invoice_not_finalized"    // a payment or credit note on a draft or void invoice
	EOVERCREDIT       = "credit_exceeds_remaining" // a credit note for more than is left to credit
	ETAXOVERLAP       = "tax_rate_overlap"         // a tax rate overlapping another of its jurisdiction
	EOVERREFUND       = "refund_exceeds_owed"      // a refund (or a credit note's void) leaving refunds above what the customer is owed
)

// Conflict reports whether code is a conflict with the current state:
// ECONFLICT or one of the specific finance refusals.
func Conflict(code string) bool {
	switch code {
	case ECONFLICT, EOVERPAYMENT, ECURRENCYMISMATCH, ENOTFINALIZED, EOVERCREDIT, ETAXOVERLAP, EOVERREFUND:
		return true
	}
	return false
}

// Error is an application error with a stable code and a message that is safe
// to show to the caller. Detail optionally carries structured problems (for
// example per-row CSV errors) that the HTTP layer puts in the problem body.
type Error struct {
	Code    string
	Message string
	Detail  any
}

// Error implements the error interface.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return "" // before the declaration below, which escapes: no allocation for nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the first *Error in err's
// chain, or a generic text for internal errors (whose details must not
// leak, even when an *Error with code EINTERNAL carries a message).
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "internal error"
}

// ErrorDetail returns the structured detail of the first *Error in err's
// chain, or nil.
func ErrorDetail(err error) any {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Detail
	}
	return nil
}

// JoinInvalid folds the problems a Validate method found into one EINVALID
// *Error whose message lists them all ("; "-separated) and whose Detail is
// the list, so an API answer shows every problem, not only the first. It
// returns nil for no problems and a single problem unchanged.
func JoinInvalid(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = ErrorMessage(e)
	}
	return &Error{Code: EINVALID, Message: strings.Join(msgs, "; "), Detail: msgs}
}
