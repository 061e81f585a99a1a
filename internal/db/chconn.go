package db

import (
	"context"
	"net"
	"sync"
	"time"
)

// DefaultClickHouseWriteTimeout bounds a write to ClickHouse that the
// driver started without a deadline (see boundedWriteConn).
const DefaultClickHouseWriteTimeout = 30 * time.Second

// boundedWriteConn is a connection to ClickHouse on which no write waits
// forever. clickhouse-go puts the context's deadline on the connection for
// queries and for a batch's Send, but not while a batch's Flush sends a
// block (metering inserts large batches block by block), so a server that
// stops reading would hold that write until TCP gives up, many minutes
// later, and the ingest pipeline with it. A write made while the driver has
// no deadline set gets one of timeout; deadlines the driver sets are kept
// as they are.
type boundedWriteConn struct {
	net.Conn
	timeout time.Duration

	mu       sync.Mutex
	deadline bool // the driver has a write deadline set
}

func dialBoundedWrites(timeout, dialTimeout time.Duration) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &boundedWriteConn{Conn: c, timeout: timeout}, nil
	}
}

func (c *boundedWriteConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	set := c.deadline
	c.mu.Unlock()
	if !set {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
			return 0, err
		}
		defer c.Conn.SetWriteDeadline(time.Time{})
	}
	return c.Conn.Write(b)
}

func (c *boundedWriteConn) SetDeadline(t time.Time) error {
	c.mark(t)
	return c.Conn.SetDeadline(t)
}

func (c *boundedWriteConn) SetWriteDeadline(t time.Time) error {
	c.mark(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *boundedWriteConn) mark(t time.Time) {
	c.mu.Lock()
	c.deadline = !t.IsZero()
	c.mu.Unlock()
}
