package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"postage/billing"
	"postage/internal/app"
	"postage/internal/apptest"
	"postage/internal/auth"
	"postage/internal/testenv"
	"postage/metering"
	"postage/pricing"
)

// clusterPair is the same postage on one server and on the cluster, with
// one clock, the same customers and an admin key each.
type clusterPair struct {
	one, cl       *app.App
	env           *testenv.Env // the cluster's
	oneURL, clURL string
	oneKey, clKey string
	mu            sync.Mutex
	now           time.Time
}

func (p *clusterPair) clock() time.Time { p.mu.Lock(); defer p.mu.Unlock(); return p.now }
func (p *clusterPair) advance(d time.Duration) {
	p.mu.Lock()
	p.now = p.now.Add(d)
	p.mu.Unlock()
}

func openClusterPair(t *testing.T, customers []string) *clusterPair {
	t.Helper()
	ctx := context.Background()
	p := &clusterPair{now: time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC)}
	p.one = apptest.Open(t, nil)
	p.cl, p.env = apptest.OpenCluster(t, nil)
	for _, a := range []*app.App{p.one, p.cl} {
		a.Now = p.clock
		a.Customers.Now = p.clock
		a.Billing.CutoffLag = time.Minute
		for i, c := range customers {
			cu := billing.Customer{ID: c, Name: "Customer " + c, Currency: "USD", Country: []string{"DE", "IN", "US"}[i%3]}
			// Portfolios: c00 consolidates c01-c05, c10 shares its tiers
			// with c11-c13 (members on both shards).
			switch {
			case i == 0:
				cu.Consolidated = true
			case i >= 1 && i <= 5:
				cu.ParentID = customers[0]
			case i >= 11 && i <= 13:
				cu.ParentID = customers[10]
			}
			if _, err := a.Customers.Create(ctx, cu); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.oneURL, p.clURL = apptest.Serve(t, p.one), apptest.Serve(t, p.cl)
	p.oneKey, p.clKey = apptest.Keys(t, p.one, "")[auth.RoleAdmin], apptest.Keys(t, p.cl, "")[auth.RoleAdmin]
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.cl.Ingester.WaitReady(wctx); err != nil {
		t.Fatalf("cluster ingest not ready: %v", err)
	}
	return p
}

// get sends an admin request to base and returns the body of a 200.
func get(t *testing.T, base, key, method, path, body string) []byte {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b
}

// same asks both servers and fails unless they answer the same bytes.
func (p *clusterPair) same(t *testing.T, what, method, path, body string) {
	t.Helper()
	one := timing.ReplaceAll(get(t, p.oneURL, p.oneKey, method, path, body), nil)
	cl := timing.ReplaceAll(get(t, p.clURL, p.clKey, method, path, body), nil)
	if !bytes.Equal(one, cl) {
		t.Fatalf("%s:\n one server %s\n cluster    %s", what, one, cl)
	}
}

// stream makes batches of events for customers: new events of October and
// of November until now, re-sends and conflicting re-sends.
func stream(rng *rand.Rand, customers []string, batches int, now time.Time) [][]metering.Event {
	var sent []metering.Event
	var out [][]metering.Event
	n := 0
	countries := []string{"DE", "IN", "US", "BR"}
	categories := []string{"marketing", "utility", "authentication", "service"}
	for range batches {
		var evs []metering.Event
		for range 1 + rng.IntN(60) {
			if len(sent) > 0 && rng.IntN(8) == 0 {
				e := sent[rng.IntN(len(sent))]
				if rng.IntN(2) == 0 {
					e.Quantity++
					e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
				}
				evs = append(evs, e)
				continue
			}
			n++
			tm := now.Add(-time.Duration(rng.Int64N(int64(35 * 24 * time.Hour)))).Truncate(time.Second)
			e := metering.Event{CustomerID: customers[rng.IntN(len(customers))], ID: fmt.Sprintf("m%d", n), Time: tm,
				Country: countries[rng.IntN(len(countries))], Category: categories[rng.IntN(len(categories))], Quantity: uint64(1 + rng.IntN(3))}
			e.PayloadHash = metering.HashPayload(e.Time, true, e.Country, e.Category, e.Quantity)
			evs = append(evs, e)
			sent = append(sent, e)
		}
		out = append(out, evs)
	}
	return out
}

// On a cluster, postage routes each customer's events to its shard (on a
// quorum of the shard's replicas) and adds the shards' usage up: the same
// stream ingested into one server and into the cluster gives the same
// statuses, usage, summaries, month-to-date bills (portfolios whose
// members are on both shards included) and invoices, and every event is on
// the shard Topology.ShardFor names, on at least 2 of its 3 replicas.
func TestClusterServesAsOneServer(t *testing.T) {
	ctx := context.Background()
	var customers []string
	for i := range 40 {
		customers = append(customers, fmt.Sprintf("c%02d", i))
	}
	p := openClusterPair(t, customers)
	all := append(clone(customers), "unknown:7")
	rng := rand.New(rand.NewPCG(16, 1))
	batches := stream(rng, all, 40, p.clock())
	accepted := map[string]int{} // per customer
	for i, evs := range batches {
		one, err := p.one.Ingester.Submit(ctx, clone(evs))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := p.cl.Ingester.Submit(ctx, clone(evs))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(one, cl) {
			t.Fatalf("batch %d: one server %v, cluster %v", i, one, cl)
		}
		for j, s := range cl {
			if s == metering.Accepted {
				accepted[evs[j].CustomerID]++
			}
		}
		if i%10 == 9 {
			p.advance(50 * time.Minute)
			for _, a := range []*app.App{p.one, p.cl} {
				for {
					res, err := a.SealOnce(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if !res.More {
						break
					}
				}
			}
		}
	}
	// One more batch through the HTTP API of each.
	var body bytes.Buffer
	body.WriteString("[")
	for i, c := range customers[:8] {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"specversion":"1.0","id":"http-%d","source":"test","type":"message.sent","subject":%q,"time":%q,"data":{"country":"DE","category":"marketing"}}`,
			i, c, p.clock().Add(-time.Hour).Format(time.RFC3339))
	}
	body.WriteString("]")
	for _, s := range []struct{ base, key string }{{p.oneURL, p.oneKey}, {p.clURL, p.clKey}} {
		req, _ := http.NewRequest("POST", s.base+"/api/v1/events", bytes.NewReader(body.Bytes()))
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"accepted":8`) {
			t.Fatalf("POST /api/v1/events: %d %s", resp.StatusCode, b)
		}
	}
	for _, c := range customers[:8] {
		accepted[c]++
	}

	day := p.clock().Truncate(24 * time.Hour)
	for _, c := range customers {
		q := url.Values{"from": {day.AddDate(0, 0, -40).Format(time.RFC3339)}, "to": {day.AddDate(0, 0, 1).Format(time.RFC3339)}, "window": {"day"}, "group_by": {"country,category"}}
		p.same(t, "usage of "+c, "GET", "/api/v1/customers/"+c+"/usage?"+q.Encode(), "")
	}
	for _, c := range customers[:14] {
		p.same(t, "month-to-date bill of "+c, "GET", "/api/v1/customers/"+c+"/invoices/upcoming", "")
	}
	if b := get(t, p.clURL, p.clKey, "GET", "/api/v1/customers/"+customers[0]+"/invoices/upcoming", ""); !bytes.Contains(b, []byte(`"sections"`)) {
		t.Fatalf("the portfolio of %s is not consolidated: %s", customers[0], b)
	}
	shards := map[int]bool{}
	for _, c := range customers[:6] {
		shards[p.env.CHCluster.Topology.ShardFor(c)] = true
	}
	if len(shards) != 2 {
		t.Fatalf("the portfolio of %s is on one shard: the test proves nothing about portfolios across shards", customers[0])
	}
	for _, m := range []string{"2026-10", "2026-11"} {
		p.same(t, "usage summary of "+m+" by country", "GET", "/api/v1/usage/summary?period="+m+"&group_by=country,category", "")
		p.same(t, "usage summary of "+m+" by customer", "GET", "/api/v1/usage/summary?period="+m+"&group_by=customer,category", "")
	}
	p.same(t, "usage trend", "GET", "/api/v1/reports/usage?window=day&group_by=country&from=2026-10-01&to=2026-11-11", "")
	p.same(t, "unbilled usage", "GET", "/api/v1/reports/unbilled?from=2026-10&to=2026-11", "")

	// An invoice run of October on each gives the same invoices.
	oct := pricing.MustParseMonth("2026-10")
	var runs []billing.Run
	for _, a := range []*app.App{p.one, p.cl} {
		r, err := a.Billing.Run(ctx, billing.RunRequest{Period: oct, Trigger: billing.TriggerManual, Wait: true})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	if runs[0].Customers == 0 || runs[0].Customers != runs[1].Customers || runs[0].Created != runs[1].Created {
		t.Fatalf("invoice runs: one server %+v, cluster %+v", runs[0], runs[1])
	}
	one, cl := invoices(t, p.oneURL, p.oneKey, "2026-10"), invoices(t, p.clURL, p.clKey, "2026-10")
	if len(one) == 0 || !reflect.DeepEqual(one, cl) {
		t.Fatalf("October's invoices differ:\n one server %v\n cluster    %v", one, cl)
	}

	// Every event is on its customer's shard, on at least 2 replicas.
	topo := p.env.CHCluster.Topology
	for s := range topo.Shards {
		copies := map[metering.Key]int{}
		for r := range topo.Shards[s].Replicas {
			rows, err := p.env.ReplicaConn(t, s+1, r+1).Query(ctx, "SELECT customer_id, id FROM events")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var k metering.Key
				if err := rows.Scan(&k.CustomerID, &k.ID); err != nil {
					t.Fatal(err)
				}
				if got := topo.ShardFor(k.CustomerID); got != s {
					t.Fatalf("event %v on shard %d, ShardFor says %d", k, s+1, got+1)
				}
				copies[k]++
			}
			rows.Close()
		}
		want := 0
		for c, n := range accepted {
			if topo.ShardFor(c) == s {
				want += n
			}
		}
		if len(copies) != want {
			t.Errorf("shard %d holds %d events, %d were accepted for its customers", s+1, len(copies), want)
		}
		for k, n := range copies {
			if n < 2 {
				t.Errorf("event %v is on %d replica(s) of shard %d", k, n, s+1)
			}
		}
		if want == 0 {
			t.Errorf("no customer on shard %d: the test proves nothing about it", s+1)
		}
	}
}

// invoices returns a period's invoices by customer, without what differs
// between two ledgers (ids, numbers, creation times).
func invoices(t *testing.T, base, key, period string) map[string]string {
	t.Helper()
	var list struct{ Data []map[string]any }
	if err := json.Unmarshal(get(t, base, key, "GET", "/api/v1/invoices?period="+period+"&limit=500", ""), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, inv := range list.Data {
		var keys []string
		for k := range inv {
			if k == "id" || k == "number" || strings.HasSuffix(k, "_at") || k == "run_id" {
				delete(inv, k)
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b, _ := json.Marshal(inv)
		out[fmt.Sprint(inv["customer_id"])] = string(b)
	}
	return out
}

// clone returns a copy of s (a submission's events are the ingester's
// until it answers).
func clone[T any](s []T) []T { return append([]T(nil), s...) }
