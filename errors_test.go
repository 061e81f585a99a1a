package postage

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorAccessors(t *testing.T) {
	invalid := &Error{Code: EINVALID, Message: "name: required", Detail: []string{"name: required"}}
	tests := []struct {
		name          string
		err           error
		code, message string
		detailNil     bool
	}{
		{"nil", nil, "", "", true},
		{"plain", errors.New("dial tcp 10.0.0.1:5432: refused"), EINTERNAL, "internal error", true},
		{"wrapped invalid", fmt.Errorf("create: %w", invalid), EINVALID, "name: required", false},
		{"internal with a message never shows it", &Error{Code: EINTERNAL, Message: "card launch has no price for DE", Detail: "x"}, EINTERNAL, "internal error", true},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.code {
			t.Errorf("%s: code %q, want %q", tt.name, got, tt.code)
		}
		if got := ErrorMessage(tt.err); got != tt.message {
			t.Errorf("%s: message %q, want %q", tt.name, got, tt.message)
		}
		if got := ErrorDetail(tt.err); (got == nil) != tt.detailNil {
			t.Errorf("%s: detail %v", tt.name, got)
		}
	}
}

func TestJoinInvalid(t *testing.T) {
	if JoinInvalid(nil) != nil {
		t.Error("no problems must be nil")
	}
	one := Errorf(EINVALID, "a")
	if JoinInvalid([]error{one}) != one {
		t.Error("one problem must be returned as is")
	}
	err := JoinInvalid([]error{Errorf(EINVALID, "a"), Errorf(EINVALID, "b")})
	if ErrorCode(err) != EINVALID || ErrorMessage(err) != "a; b" || len(ErrorDetail(err).([]string)) != 2 {
		t.Errorf("got %v %v", err, ErrorDetail(err))
	}
}
