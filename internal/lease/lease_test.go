package lease_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/internal/lease"
	"postage/internal/localdb"
	"postage/internal/testenv"
)

// helperEnv makes the test binary a lease holder (see holderMain) instead
// of running the tests: a process the tests can kill -9.
const helperEnv = "LEASE_TEST_HOLDER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		holderMain(spec)
		return
	}
	testenv.Main(m)
}

// holderMain acquires the lease "shard1" (spec is zk:<addr> or
// local:<dir>), prints its token and waits to be killed.
func holderMain(spec string) {
	kind, arg, _ := strings.Cut(spec, ":")
	var m lease.Manager
	var err error
	if kind == "zk" {
		m, err = lease.NewZooKeeper(lease.ZooKeeperOptions{Servers: []string{arg}, SessionTimeout: 2 * time.Second})
	} else {
		m, err = lease.NewLocal(arg)
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	l, err := m.Acquire(context.Background(), "shard1")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("token", l.Token())
	select {}
}

// startHolder runs holderMain in a child process and returns it with its
// token once it holds the lease.
func startHolder(t *testing.T, spec string) (*exec.Cmd, int64) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+spec)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("holder: %v", err)
	}
	text, ok := strings.CutPrefix(strings.TrimSpace(line), "token ")
	token, err := strconv.ParseInt(text, 10, 64)
	if !ok || err != nil {
		t.Fatalf("holder said %q", line)
	}
	return cmd, token
}

func newZK(t *testing.T, addr string, timeout time.Duration) *lease.ZooKeeper {
	t.Helper()
	m, err := lease.NewZooKeeper(lease.ZooKeeperOptions{Servers: []string{addr}, SessionTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// managers returns a fresh pair of managers of each kind, as two
// processes would have.
func managers(t *testing.T) map[string][2]lease.Manager {
	t.Helper()
	zk := testenv.StartZooKeeper(t)
	dir := t.TempDir()
	local := func() lease.Manager {
		m, err := lease.NewLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	return map[string][2]lease.Manager{
		"zookeeper": {newZK(t, zk.Addr(), 4*time.Second), newZK(t, zk.Addr(), 4*time.Second)},
		"local":     {local(), local()},
	}
}

// Two contenders at once: exactly one wins; the other gets the lease when
// it is released, with a greater token.
func TestOneHolderAtATime(t *testing.T) {
	for kind, ms := range managers(t) {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			var wg sync.WaitGroup
			got := make([]lease.Lease, 2)
			errs := make([]error, 2)
			for i, m := range ms {
				wg.Go(func() { got[i], errs[i] = m.TryAcquire(ctx, "shard1") })
			}
			wg.Wait()
			winner := -1
			for i := range ms {
				switch {
				case errs[i] == nil && winner < 0:
					winner = i
				case errs[i] == nil:
					t.Fatal("both contenders hold the lease")
				case !errors.Is(errs[i], lease.ErrHeld):
					t.Fatalf("contender %d: %v, want ErrHeld", i, errs[i])
				}
			}
			if winner < 0 {
				t.Fatalf("nobody won: %v", errs)
			}
			first := got[winner]
			if err := first.Check(); err != nil {
				t.Fatalf("the winner's Check: %v", err)
			}
			loser := ms[1-winner]
			type result struct {
				l   lease.Lease
				err error
			}
			second := make(chan result, 1)
			go func() {
				l, err := loser.Acquire(ctx, "shard1")
				second <- result{l, err}
			}()
			if err := first.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := first.Check(); !errors.Is(err, lease.ErrLost) {
				t.Errorf("Check after Release: %v, want ErrLost", err)
			}
			r := <-second
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.l.Token() <= first.Token() {
				t.Errorf("tokens %d then %d, want the second greater", first.Token(), r.l.Token())
			}
			if err := r.l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A holder killed with kill -9 hands the lease over: at once for a file
// lock, once its session expires for ZooKeeper.
func TestKilledHolderHandsOver(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	dir := t.TempDir()
	local, err := lease.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind, spec string
		m          lease.Manager
	}{
		{"zookeeper", "zk:" + zk.Addr(), newZK(t, zk.Addr(), 4*time.Second)},
		{"local", "local:" + dir, local},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			ctx := context.Background()
			holder, token := startHolder(t, tt.spec)
			if _, err := tt.m.TryAcquire(ctx, "shard1"); !errors.Is(err, lease.ErrHeld) {
				t.Fatalf("while the holder lives: %v, want ErrHeld", err)
			}
			if err := holder.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			l, err := tt.m.Acquire(actx, "shard1")
			if err != nil {
				t.Fatalf("after the holder was killed: %v", err)
			}
			defer l.Release(ctx)
			if l.Token() <= token {
				t.Errorf("token %d after the killed holder's %d, want greater", l.Token(), token)
			}
		})
	}
}

// ZooKeeper down: the holder stops at once (Check fails) and loses the
// lease once its session may have expired; when ZooKeeper is back another
// process gets the lease, and only after the first lost it.
func TestZooKeeperDownFailsClosed(t *testing.T) {
	ctx := context.Background()
	zk := testenv.StartZooKeeper(t)
	const timeout = 3 * time.Second
	a, b := newZK(t, zk.Addr(), timeout), newZK(t, zk.Addr(), timeout)
	held, err := a.Acquire(ctx, "shard1")
	if err != nil {
		t.Fatal(err)
	}
	if err := zk.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Check to fail without ZooKeeper", func() bool { return held.Check() != nil })
	select {
	case <-held.Done():
	case <-time.After(time.Minute):
		t.Fatal("the lease was not lost without ZooKeeper")
	}
	if err := held.Check(); !errors.Is(err, lease.ErrLost) {
		t.Errorf("Check after the loss: %v, want ErrLost", err)
	}

	zk2, err := localdb.StartZooKeeper(ctx, localdb.ZooKeeperOptions{Dir: zk.Dir(), Port: zk.Port(), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	defer zk2.Kill()
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	next, err := b.Acquire(actx, "shard1")
	if err != nil {
		t.Fatal(err)
	}
	if next.Token() <= held.Token() {
		t.Errorf("tokens %d then %d, want the second greater", held.Token(), next.Token())
	}
	if err := next.Check(); err != nil {
		t.Errorf("the new holder's Check: %v", err)
	}
}

// A frozen ZooKeeper (a hung server) suspends the holder; once it thaws
// within the session timeout, the same lease is usable again.
func TestFrozenZooKeeperSuspends(t *testing.T) {
	ctx := context.Background()
	zk := testenv.StartZooKeeper(t)
	m := newZK(t, zk.Addr(), 6*time.Second)
	held, err := m.Acquire(ctx, "shard1")
	if err != nil {
		t.Fatal(err)
	}
	if err := zk.Freeze(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Check to fail while ZooKeeper is frozen", func() bool { return errors.Is(held.Check(), lease.ErrSuspended) })
	if err := zk.Thaw(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Check to pass again", func() bool { return held.Check() == nil || errors.Is(held.Check(), lease.ErrLost) })
	if err := held.Check(); err != nil {
		t.Logf("the session did not survive the freeze on this machine: %v", err)
	}
}

func TestBadName(t *testing.T) {
	m, err := lease.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 201)} {
		if _, err := m.TryAcquire(context.Background(), name); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

// waitFor polls cond until it holds, failing after a minute (a bound
// against hanging, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The lease's node names its holder and the address it gave: another
// process reads them (Holder), and after a hand-over reads the new
// holder's; nobody holds a lease never taken.
func TestHolderTellsTheAddress(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	ctx := context.Background()
	open := func(owner, addr string) *lease.ZooKeeper {
		m, err := lease.NewZooKeeper(lease.ZooKeeperOptions{Servers: []string{zk.Addr()}, SessionTimeout: 4 * time.Second, Owner: owner, Address: addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	a, b, reader := open("a:1", "http://10.0.0.1:8080"), open("b:2", "http://10.0.0.2:8080"), open("r:3", "")
	if _, err := reader.Holder(ctx, "shard1"); !errors.Is(err, lease.ErrNoHolder) {
		t.Fatalf("holder of a lease never taken: %v, want ErrNoHolder", err)
	}
	la, err := a.TryAcquire(ctx, "shard1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.TryAcquire(ctx, "shard1"); !errors.Is(err, lease.ErrHeld) {
		t.Fatalf("second contender: %v, want ErrHeld", err)
	}
	got, err := reader.Holder(ctx, "shard1")
	if want := (lease.Holder{Owner: "a:1", Address: "http://10.0.0.1:8080"}); err != nil || got != want {
		t.Fatalf("holder %+v, %v; want %+v", got, err, want)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Holder(ctx, "shard1"); !errors.Is(err, lease.ErrNoHolder) {
		t.Fatalf("holder of a released lease: %v, want ErrNoHolder", err)
	}
	if _, err := b.TryAcquire(ctx, "shard1"); err != nil {
		t.Fatal(err)
	}
	got, err = reader.Holder(ctx, "shard1")
	if want := (lease.Holder{Owner: "b:2", Address: "http://10.0.0.2:8080"}); err != nil || got != want {
		t.Fatalf("holder after the hand-over %+v, %v; want %+v", got, err, want)
	}
}
