package localdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// ddlQueuePath is the distributed DDL queue of a cluster's servers (the
// configuration's distributed_ddl path).
const ddlQueuePath = "/clickhouse/task_queue/ddl"

// waitDistributedDDL returns once the server's distributed DDL worker has
// run a task. ClickHouse 18.16 answers queries before that worker has its
// ZooKeeper session, and an ON CLUSTER query it takes meanwhile crashes the
// server (the worker's session is still null). So a member is ready only
// once it has run a no-op task (CREATE DATABASE IF NOT EXISTS default)
// queued for it alone: its status appears under the task's finished/.
func (ch *ClickHouse) waitDistributedDDL(ctx context.Context) error {
	conn, events, err := zk.Connect(ch.member.ZooKeeper, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(zkQuiet{}))
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		for range events { // drained until Close closes it
		}
	}()
	var task string
	for {
		if task == "" {
			task, err = enqueueProbeTask(conn, ch.member.Cluster, ch.Addr())
		}
		if err == nil {
			var done []string
			if done, _, err = conn.Children(task + "/finished"); err == nil && len(done) > 0 {
				return nil
			}
			if errors.Is(err, zk.ErrNoNode) {
				err = nil // the worker makes it
			}
		}
		if ch.proc.exited() {
			return fmt.Errorf("server exited (%v)", ch.proc.err)
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("it has not run its first task")
			}
			return fmt.Errorf("distributed DDL not ready: %w", err)
		case <-time.After(pollInterval):
		}
	}
}

// enqueueProbeTask queues a task for the server at addr alone and returns
// its path. The format is the one ClickHouse's DDLWorker writes (version
// 1), the host as escapeForFileName(host):port.
func enqueueProbeTask(conn *zk.Conn, cluster, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	acl := zk.WorldACL(zk.PermAll)
	path := ""
	for _, part := range strings.Split(strings.Trim(ddlQueuePath, "/"), "/") {
		path += "/" + part
		if _, err := conn.Create(path, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return "", err
		}
	}
	entry := fmt.Sprintf("version: 1\nquery: CREATE DATABASE IF NOT EXISTS default ON CLUSTER %s\nhosts: ['%s:%s']\ninitiator: \n",
		cluster, escapeForFileName(host), port)
	return conn.Create(ddlQueuePath+"/query-", []byte(entry), zk.FlagSequence, acl)
}

// escapeForFileName is ClickHouse's: every byte but [A-Za-z0-9_] as %XX.
func escapeForFileName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// zkQuiet discards the ZooKeeper client's log.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}
