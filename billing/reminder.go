package billing

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"postage"
)

// PaymentReminder is what invoice.payment_reminder says: the invoice's
// balance as of the reminder, and which reminder it is (days relative to
// the due date: negative before it, positive after).
type PaymentReminder struct {
	OffsetDays int `json:"reminder_offset_days"`
	Receivable
}

var reminderPattern = regexp.MustCompile(`^([+-]?)([0-9]{1,3})d$`)

// MaxReminders bounds billing.reminders.
const MaxReminders = 10

// ParseReminderOffsets reads reminder offsets such as "-3d", "+7d" or
// "14d" (days relative to the due date) into sorted days. Duplicates,
// more than MaxReminders, and offsets beyond a year either way are
// refused.
func ParseReminderOffsets(in []string) ([]int, error) {
	if len(in) > MaxReminders {
		return nil, postage.Errorf(postage.EINVALID, "reminders: at most %d", MaxReminders)
	}
	out := make([]int, 0, len(in))
	for _, s := range in {
		m := reminderPattern.FindStringSubmatch(s)
		if m == nil {
			return nil, postage.Errorf(postage.EINVALID, "reminder %q: days relative to the due date, such as \"-3d\" or \"+7d\"", s)
		}
		n, _ := strconv.Atoi(m[2])
		if m[1] == "-" {
			n = -n
		}
		if n < -365 || n > 365 {
			return nil, postage.Errorf(postage.EINVALID, "reminder %q: at most 365 days from the due date", s)
		}
		if slices.Contains(out, n) {
			return nil, postage.Errorf(postage.EINVALID, "reminder %q: given twice", s)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// FormatReminderOffset writes an offset as ParseReminderOffsets reads it.
func FormatReminderOffset(days int) string {
	if days < 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("+%dd", days)
}
