package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"postage"
)

func TestClassifyInsert(t *testing.T) {
	ex := func(code int32, msg string) error {
		return fmt.Errorf("send batch: %w", &clickhouse.Exception{Code: code, Message: msg})
	}
	bad := errors.New("expected 8 arguments, got 7")
	tests := []struct {
		name string
		err  error
		want error // ErrNotWritten, ErrUnknownStatus, or nil for "left as it is"
	}{
		{"too few live replicas", ex(285, "Number of alive replicas (1) is less than requested quorum (2)."), ErrNotWritten},
		{"previous quorum not satisfied", ex(286, "Quorum for previous write has not been satisfied yet"), ErrNotWritten},
		{"read-only table", ex(242, "Table is in readonly mode"), ErrNotWritten},
		{"session expired", ex(225, "ZooKeeper session has been expired."), ErrNotWritten},
		{"block number", ex(999, "Cannot allocate block number in ZooKeeper: Connection loss"), ErrNotWritten},
		{"too many parts", ex(252, "Too many parts (300)"), ErrNotWritten},
		{"replica not active", ex(164, "Replica is not active right now"), ErrNotWritten},
		{"quorum timeout", ex(319, "Unknown status, client must retry. Reason: Timeout while waiting for quorum"), ErrUnknownStatus},
		{"network failure at commit", ex(244, "Unrecoverable network error while adding block"), ErrUnknownStatus},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, ErrNotWritten},
		{"connection reset mid-insert", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, ErrUnknownStatus},
		{"server closed the connection", fmt.Errorf("read: %w", io.EOF), ErrUnknownStatus},
		{"deadline", context.DeadlineExceeded, ErrUnknownStatus},
		{"read-only user", ex(164, "Cannot execute query in readonly mode"), nil},
		{"bad data", bad, nil},
		{"syntax", ex(62, "Syntax error"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ClassifyInsert(tt.err)
			if tt.want == nil {
				if got != tt.err {
					t.Errorf("got %v, want the error as it is", got)
				}
				return
			}
			if !errors.Is(got, tt.want) || !errors.Is(got, tt.err) || postage.ErrorCode(got) != postage.EUNAVAILABLE {
				t.Errorf("got %v (code %s), want %v wrapping the cause with code %s", got, postage.ErrorCode(got), tt.want, postage.EUNAVAILABLE)
			}
		})
	}
	if ClassifyInsert(nil) != nil {
		t.Error("nil classified as a failure")
	}
}

func TestQuorumSettings(t *testing.T) {
	if s := (Quorum{Replicas: 1}).Settings(); s != nil {
		t.Errorf("quorum 1: %v, want no settings", s)
	}
	got := Quorum{Replicas: 2}.Settings()
	if got["insert_quorum"] != 2 || got["insert_quorum_timeout"] != int(DefaultQuorumTimeout.Milliseconds()) {
		t.Errorf("quorum 2: %v", got)
	}
	if got := (Quorum{Replicas: 3, Timeout: 5 * time.Second}).Settings(); got["insert_quorum_timeout"] != 5000 {
		t.Errorf("timeout 5s: %v", got)
	}
}
