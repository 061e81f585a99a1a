package localdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseOptions configures StartClickHouse.
type ClickHouseOptions struct {
	// Dir holds everything of this server: config.xml, users.xml, data/,
	// tmp/, user_files/, format_schemas/ and log/. It is created if missing
	// and reused as is afterwards.
	Dir string
	// TCPPort is the native protocol port on 127.0.0.1; 0 picks a free one
	// (reusing the previous run's port when it is still free).
	TCPPort int
	// HTTPPort is the HTTP interface port on 127.0.0.1 (for curl and
	// tools; clickhouse-go uses the native port); 0 picks a free one, -1
	// disables HTTP.
	HTTPPort int
	// Member makes the server one replica of a replicated cluster; nil
	// for a single server. StartCluster fills it in.
	Member *ClusterMember
	// Logger receives one line when the server starts and stops; nil
	// discards.
	Logger *slog.Logger
}

// ClusterMember is what a server of a cluster knows about the cluster: the
// servers of every shard (remote_servers, with internal_replication: a
// Replicated table replicates by itself), its own place (the {shard} and
// {replica} macros), ZooKeeper, and the port its replicas fetch parts from.
type ClusterMember struct {
	Cluster string     // the cluster's name in remote_servers and ON CLUSTER
	Shards  [][]string // native host:port of each replica of each shard
	Shard   int        // 1-based shard of this server: macro {shard}
	Replica int        // 1-based replica within the shard
	// InterserverPort is where the other replicas fetch this server's
	// parts (HTTP on 127.0.0.1); required.
	InterserverPort int
	ZooKeeper       []string // host:port of each ZooKeeper server
	// SessionTimeout is the server's ZooKeeper session timeout: how long
	// a killed server still counts as an active replica. 0 means 30 s.
	SessionTimeout time.Duration
}

// ReplicaName is the {replica} macro of this server, unique in the whole
// cluster ("s2r1": shard 2, replica 1), as a host name would be, so a
// table replicated on every server (not per shard) can use it.
func (m *ClusterMember) ReplicaName() string { return ReplicaName(m.Shard, m.Replica) }

// ReplicaName is the {replica} macro of replica r of shard s.
func ReplicaName(shard, replica int) string { return fmt.Sprintf("s%dr%d", shard, replica) }

// ClickHouse is a running private ClickHouse server started by
// StartClickHouse.
type ClickHouse struct {
	dir      string
	tcpPort  int
	httpPort int
	member   *ClusterMember
	proc     *process
	logger   *slog.Logger

	stopOnce sync.Once
	stopErr  error
}

// StartClickHouse writes a minimal configuration into opts.Dir, starts
// clickhouse-server with it and returns once the native protocol answers a
// ping. The server listens on 127.0.0.1 only and keeps its caches small.
// The data in opts.Dir survives restarts.
func StartClickHouse(ctx context.Context, opts ClickHouseOptions) (*ClickHouse, error) {
	if opts.Dir == "" {
		return nil, errors.New("start ClickHouse: no directory given")
	}
	if m := opts.Member; m != nil && (m.Cluster == "" || m.InterserverPort <= 0 || len(m.ZooKeeper) == 0 ||
		m.Shard < 1 || m.Shard > len(m.Shards) || m.Replica < 1 || m.Replica > len(m.Shards[m.Shard-1])) {
		return nil, fmt.Errorf("start ClickHouse: incomplete cluster membership %+v", *m)
	}
	if err := supported(); err != nil {
		return nil, fmt.Errorf("start ClickHouse: %w", err)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("start ClickHouse: %w", err)
	}
	logger := orDiscard(opts.Logger)
	begin := time.Now()

	argv, err := clickhouseServerCommand()
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("start ClickHouse: %w", err)
		}
	}

	for attempt := 0; ; attempt++ {
		ch := &ClickHouse{dir: dir, tcpPort: opts.TCPPort, httpPort: opts.HTTPPort, member: opts.Member, logger: logger}
		if ch.tcpPort == 0 {
			if ch.tcpPort, err = rememberedPort(filepath.Join(dir, "tcp_port"), attempt > 0); err != nil {
				return nil, fmt.Errorf("start ClickHouse: %w", err)
			}
		}
		if ch.httpPort == 0 {
			if ch.httpPort, err = rememberedPort(filepath.Join(dir, "http_port"), attempt > 0); err != nil {
				return nil, fmt.Errorf("start ClickHouse: %w", err)
			}
		}
		err := ch.start(ctx, argv)
		if errors.Is(err, errAddrInUse) && (opts.TCPPort == 0 || opts.HTTPPort == 0) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		logger.Info("ClickHouse started", "addr", ch.Addr(), "dir", dir, "took", time.Since(begin).Round(time.Millisecond))
		return ch, nil
	}
}

func (ch *ClickHouse) start(ctx context.Context, argv []string) error {
	configPath := filepath.Join(ch.dir, "config.xml")
	if err := ch.writeConfig(configPath); err != nil {
		return err
	}
	logPath := filepath.Join(ch.dir, "log", "clickhouse-server.log")
	errLogPath := filepath.Join(ch.dir, "log", "clickhouse-server.err.log")
	stderrPath := filepath.Join(ch.dir, "log", "stderr.log")
	stderrFile, err := os.OpenFile(stderrPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start ClickHouse: open log: %w", err)
	}
	defer stderrFile.Close() // the child has its own descriptor
	errOffset, stderrOffset := fileSize(errLogPath), fileSize(stderrPath)

	cmd := exec.Command(argv[0], append(argv[1:], "--config-file="+configPath)...)
	cmd.Dir = ch.dir
	cmd.Stdout, cmd.Stderr = stderrFile, stderrFile
	proc, err := startProcess("ClickHouse", cmd, syscall.SIGKILL, nil)
	if err != nil {
		return err
	}
	ch.proc = proc

	fail := func(cause string) error {
		ch.proc.stop(syscall.SIGKILL, 0)
		tail := logTail(errLogPath, errOffset, 10)
		path := errLogPath
		if tail == "" {
			tail, path = logTail(stderrPath, stderrOffset, 10), stderrPath
		}
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("start ClickHouse on %s: %w", ch.Addr(), errAddrInUse)
		}
		if tail == "" {
			return fmt.Errorf("start ClickHouse in %s: %s; see %s", ch.dir, cause, logPath)
		}
		return fmt.Errorf("start ClickHouse in %s: %s; last lines of %s:%s", ch.dir, cause, path, tail)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{ch.Addr()},
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		return fail(fmt.Sprintf("open client: %v", err))
	}
	defer conn.Close()
	for {
		if ch.proc.exited() {
			return fail(fmt.Sprintf("server exited (%v)", ch.proc.err))
		}
		pctx, cancel := ch.proc.probeContext(ctx, 2*time.Second)
		err := conn.Ping(pctx)
		cancel()
		if err == nil && ch.member != nil {
			if err := ch.waitDistributedDDL(ctx); err != nil {
				return fail(err.Error())
			}
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Sprintf("not answering on %s: %v (last error: %v)", ch.Addr(), ctx.Err(), err))
		case <-ch.proc.done:
		case <-time.After(pollInterval):
		}
	}
}

// Addr returns host:port of the native protocol on the loopback interface.
func (ch *ClickHouse) Addr() string { return "127.0.0.1:" + strconv.Itoa(ch.tcpPort) }

// HTTPAddr returns host:port of the HTTP interface, "" if it is disabled.
func (ch *ClickHouse) HTTPAddr() string {
	if ch.httpPort <= 0 {
		return ""
	}
	return "127.0.0.1:" + strconv.Itoa(ch.httpPort)
}

// Dir returns the directory given in ClickHouseOptions.Dir, made absolute.
func (ch *ClickHouse) Dir() string { return ch.dir }

// Stop shuts the server down (SIGTERM), waits for it to exit, and kills it
// if it has not exited after 30 seconds. It is safe to call more than once.
func (ch *ClickHouse) Stop() error {
	return ch.stop(30 * time.Second)
}

// Kill stops the server at once (SIGKILL), for throwaway data such as a test
// environment's, where a graceful shutdown only costs time. It is safe to
// call more than once, also after Stop.
func (ch *ClickHouse) Kill() error {
	return ch.stop(0)
}

func (ch *ClickHouse) stop(grace time.Duration) error {
	ch.stopOnce.Do(func() {
		begin := time.Now()
		if grace == 0 {
			ch.proc.stop(syscall.SIGKILL, 0)
		} else if ch.proc.stop(syscall.SIGTERM, grace) {
			ch.stopErr = fmt.Errorf("stop ClickHouse in %s: did not shut down within %v, killed", ch.dir, grace)
			return
		}
		ch.logger.Info("ClickHouse stopped", "addr", ch.Addr(), "took", time.Since(begin).Round(time.Millisecond))
	})
	return ch.stopErr
}

// clickhouseServerCommand finds the server: Debian's clickhouse-server
// (in /usr/sbin, which is not on every PATH), else the single clickhouse
// binary of upstream packages ("clickhouse server").
func clickhouseServerCommand() ([]string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"} {
		if _, err := os.Stat(p); err == nil {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, errors.New(`clickhouse-server not found: run "make deps" (installs Debian package clickhouse-server)`)
}

// hostPort is a host:port split for the configuration.
type hostPort struct {
	Host string
	Port string
}

func splitHostPorts(addrs []string) []hostPort {
	out := make([]hostPort, len(addrs))
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			host, port = a, ""
		}
		out[i] = hostPort{host, port}
	}
	return out
}

// configData is what configTemplate reads.
type configData struct {
	Dir               string
	TCPPort, HTTPPort int
	Member            *ClusterMember
	Shards            [][]hostPort
	ZooKeeper         []hostPort
	ReplicaName       string
	SessionTimeoutMS  int64
	DDLQueuePath      string
}

func (ch *ClickHouse) writeConfig(configPath string) error {
	data := configData{Dir: ch.dir, TCPPort: ch.tcpPort, HTTPPort: ch.httpPort, Member: ch.member, DDLQueuePath: ddlQueuePath}
	if m := ch.member; m != nil {
		for _, shard := range m.Shards {
			data.Shards = append(data.Shards, splitHostPorts(shard))
		}
		data.ZooKeeper = splitHostPorts(m.ZooKeeper)
		data.ReplicaName = m.ReplicaName()
		data.SessionTimeoutMS = cmp.Or(m.SessionTimeout, 30*time.Second).Milliseconds()
	}
	var b strings.Builder
	if err := configTemplate.Execute(&b, data); err != nil {
		return fmt.Errorf("start ClickHouse: write config: %w", err)
	}
	if err := os.WriteFile(configPath, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("start ClickHouse: write config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(ch.dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return fmt.Errorf("start ClickHouse: write users: %w", err)
	}
	return nil
}

// configTemplate is a minimal server configuration that works on 18.16 and
// current releases: every path under Dir, loopback only, no MySQL port, no
// system log tables, small caches for a small RSS. A cluster member also
// gets the interserver port, ZooKeeper, its macros, the cluster's servers
// and distributed DDL.
var configTemplate = template.Must(template.New("config.xml").Parse(`<?xml version="1.0"?>
<!-- Written by postage (internal/localdb) on every start; edits are lost. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{{.Dir | html}}/log/clickhouse-server.log</log>
        <errorlog>{{.Dir | html}}/log/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{{.TCPPort}}</tcp_port>
{{- if gt .HTTPPort 0}}
    <http_port>{{.HTTPPort}}</http_port>
{{- end}}
    <path>{{.Dir | html}}/data/</path>
    <tmp_path>{{.Dir | html}}/tmp/</tmp_path>
    <user_files_path>{{.Dir | html}}/user_files/</user_files_path>
    <format_schema_path>{{.Dir | html}}/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>67108864</mark_cache_size>
    <uncompressed_cache_size>67108864</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mlock_executable>false</mlock_executable>
{{- with .Member}}
    <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper>
{{- range $.ZooKeeper}}
        <node><host>{{.Host | html}}</host><port>{{.Port}}</port></node>
{{- end}}
        <session_timeout_ms>{{$.SessionTimeoutMS}}</session_timeout_ms>
        <operation_timeout_ms>10000</operation_timeout_ms>
    </zookeeper>
    <macros>
        <shard>{{.Shard}}</shard>
        <replica>{{$.ReplicaName}}</replica>
    </macros>
    <remote_servers>
        <{{.Cluster}}>
{{- range $.Shards}}
            <shard>
                <internal_replication>true</internal_replication>
{{- range .}}
                <replica><host>{{.Host | html}}</host><port>{{.Port}}</port></replica>
{{- end}}
            </shard>
{{- end}}
        </{{.Cluster}}>
    </remote_servers>
    <distributed_ddl>
        <path>{{$.DDLQueuePath}}</path>
    </distributed_ddl>
{{- end}}
</yandex>
`))

const usersXML = `<?xml version="1.0"?>
<!-- Written by postage (internal/localdb) on every start; edits are lost. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`

// TCPPort returns the native protocol port.
func (ch *ClickHouse) TCPPort() int { return ch.tcpPort }

// HTTPPort returns the HTTP port, or -1 if HTTP is disabled.
func (ch *ClickHouse) HTTPPort() int { return ch.httpPort }

// PID is the server's process id (for benchmarks that account its CPU time).
func (ch *ClickHouse) PID() int { return ch.proc.cmd.Process.Pid }
