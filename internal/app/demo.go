package app

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/metering"
	"postage/pricing"
)

// DemoOptions size the demo data; zero fields take the defaults.
type DemoOptions struct {
	Customers int   // default 300
	Messages  int   // messages (events) over the whole period, default 900,000
	Seed      int64 // random seed, default 2026
	// Key, when set, is given each demo customer API key as it is made
	// (the database keeps only its hash): `postage dev` saves them under
	// its data directory to print them on every start.
	Key func(customerID, name, token string) error
}

func (o *DemoOptions) defaults() {
	if o.Customers <= 0 {
		o.Customers = 300
	}
	if o.Messages <= 0 {
		o.Messages = 900_000
	}
	if o.Seed == 0 {
		o.Seed = 2026
	}
}

// LoadDemo fills a fresh installation (one without customers) with demo
// data, so a new user sees a living dashboard: a few hundred customers
// with realistic names and countries (a tenth on the meta-2026-01 card, a
// few with discounts), customer API keys for three of them, the three
// complete months before the current one and the current month to date of
// realistic traffic (Zipf-distributed customers, a country mix weighted to
// IN/BR/ID/MX/DE/US, four categories, weekly rhythm and growth, a little
// usage of unknown customer ids), sent through the real ingest path —
// CloudEvents batches decoded and validated by metering.Rules and stored by
// the group-commit Ingester — and invoice runs for the three past months.
//
// The ingest horizon (35 days by default) would reject the older months:
// the demo validates with the same rules but a horizon that reaches the
// first demo month. It does nothing when customers exist, so a second
// `make run` changes nothing.
func (a *App) LoadDemo(ctx context.Context, out io.Writer) error {
	return a.LoadDemoWith(ctx, out, DemoOptions{})
}

// LoadDemoWith is LoadDemo with explicit sizes (tests use small ones).
func (a *App) LoadDemoWith(ctx context.Context, out io.Writer, opts DemoOptions) error {
	opts.defaults()
	some, _, err := a.Customers.List(ctx, billing.Page{Limit: 1})
	if err != nil {
		return fmt.Errorf("demo data: %w", err)
	}
	if len(some) > 0 {
		fmt.Fprintln(out, "Demo data: skipped (this installation already has customers).")
		return nil
	}
	start := time.Now()
	now := a.Now().UTC()
	cur := pricing.MonthOf(now)
	first := cur.Prev().Prev().Prev()
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 7))
	fmt.Fprintf(out, "Loading demo data: %d customers, ~%d messages from %s to now ...\n", opts.Customers, opts.Messages, first)

	custs := demoCustomers(rng, opts.Customers)
	for i := range custs {
		if _, err := a.Customers.Create(ctx, custs[i].Customer); err != nil {
			return fmt.Errorf("demo customer %s: %w", custs[i].ID, err)
		}
		switch {
		case i%10 == 3:
			if err := a.Pricing.AssignCard(ctx, custs[i].ID, pricing.MetaCardID, first); err != nil {
				return fmt.Errorf("demo card of %s: %w", custs[i].ID, err)
			}
		case i%25 == 1:
			ov := pricing.Overrides{CardDiscount: decimal.New(int64(5+rng.IntN(3)*5), 0)}
			if err := a.Pricing.SetOverrides(ctx, custs[i].ID, ov); err != nil {
				return fmt.Errorf("demo overrides of %s: %w", custs[i].ID, err)
			}
		}
	}
	fmt.Fprintf(out, "  %d customers (%d on meta-2026-01, %d with a discount)\n", len(custs), (len(custs)+6)/10, (len(custs)+23)/25)
	for _, c := range custs[:min(3, len(custs))] {
		_, token, err := a.Keys.Create(ctx, auth.NewKey{Name: "demo " + c.Name, Role: auth.RoleCustomer, CustomerID: c.ID})
		if err != nil {
			return fmt.Errorf("demo key of %s: %w", c.ID, err)
		}
		fmt.Fprintf(out, "  customer API key for %s (%s): %s\n", c.Name, c.ID, token)
		if opts.Key != nil {
			if err := opts.Key(c.ID, c.Name, token); err != nil {
				return fmt.Errorf("demo key of %s: %w", c.ID, err)
			}
		}
	}

	n, err := a.ingestDemo(ctx, out, rng, custs, first.Start(), now.Add(-time.Minute), opts.Messages)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  %d events ingested in %s\n", n, time.Since(start).Round(100*time.Millisecond))

	// Every demo event is acknowledged by now, so the demo's runs need no
	// cut-off lag (the scheduled runs keep theirs).
	runner := &billing.Runner{
		Invoices: a.Billing.Invoices, Customers: a.Billing.Customers, Usage: a.Billing.Usage, Pricing: a.Billing.Pricing,
		Locks: a.Billing.Locks, Render: a.Billing.Render, Issuer: a.Billing.Issuer,
		Taxes: a.Billing.Taxes, TaxNotes: a.Billing.TaxNotes, PaymentTermsDays: a.Billing.PaymentTermsDays,
		Log: a.Billing.Log, Now: a.Billing.Now, Grace: a.Billing.Grace,
	}
	for m := first; m.Before(cur); m = m.Next() {
		run, err := runner.Run(ctx, billing.RunRequest{Period: m, Trigger: billing.TriggerManual, Wait: true})
		if err != nil {
			return fmt.Errorf("demo invoice run %s: %w", m, err)
		}
		if run.Error != "" {
			return fmt.Errorf("demo invoice run %s: %s", m, run.Error)
		}
		// Finance has approved the older months; the last one waits for
		// approval (or its grace period).
		approved := 0
		if m.Before(cur.Prev()) {
			invs, err := a.Invoices.PeriodInvoices(ctx, m)
			if err != nil {
				return fmt.Errorf("demo invoices of %s: %w", m, err)
			}
			for _, inv := range invs {
				if inv.Status != billing.StatusDraft {
					continue
				}
				if _, err := runner.Approve(ctx, inv.ID); err != nil {
					return fmt.Errorf("demo approve %s: %w", inv.ID, err)
				}
				approved++
			}
		}
		fmt.Fprintf(out, "  invoices for %s: %d drafts created, %d approved, %d unbilled usage rows\n", m, run.Created, approved, run.Unbilled)
	}
	fmt.Fprintf(out, "Demo data loaded in %s.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// demoCustomer is a customer with its traffic profile.
type demoCustomer struct {
	billing.Customer
	weight    float64    // share of all traffic (Zipf)
	home      float64    // share of messages to its own country
	catWeight [4]float64 // marketing, utility, authentication, service
	growth    float64    // monthly growth factor
}

var demoCategories = [4]string{"marketing", "utility", "authentication", "service"}

// demoCountries are the recipient countries and their weights in the
// global mix.
var demoCountries = []struct {
	code   string
	weight float64
}{
	{"IN", 24}, {"BR", 15}, {"ID", 11}, {"MX", 8}, {"DE", 6}, {"US", 6}, {"NG", 4}, {"TR", 3.5}, {"IT", 3},
	{"ES", 3}, {"AR", 3}, {"CO", 2.5}, {"GB", 2}, {"FR", 2}, {"EG", 1.5}, {"SA", 1.5}, {"PK", 1.5},
	{"ZA", 1}, {"KE", 1}, {"PH", 1}, {"MY", 1}, {"CL", 0.8}, {"PE", 0.8}, {"AE", 0.8}, {"NL", 0.6},
	{"PL", 0.6}, {"VN", 0.5}, {"TH", 0.5}, {"BD", 0.5}, {"IL", 0.4},
}

// demoNames are name parts per home country: stems and legal forms.
var demoNames = []struct {
	country string
	weight  int
	stems   []string
	kinds   []string
	forms   []string
}{
	{"IN", 26, []string{"Sharma", "Lotus", "Ganga", "Saffron", "Indus", "Vayu", "Kaveri", "Surya", "Mehta", "Tara"}, []string{"Retail", "Finserv", "Foods", "Travels", "Health", "Telecom", "Logistics", "Edutech"}, []string{"Pvt Ltd", "Ltd"}},
	{"BR", 16, []string{"Sol", "Ipê", "Rio Claro", "Paulista", "Aurora", "Jabuti", "Cerrado", "Maré"}, []string{"Varejo", "Pagamentos", "Viagens", "Saúde", "Moda", "Seguros", "Entregas"}, []string{"Ltda", "S.A."}},
	{"ID", 11, []string{"Nusantara", "Garuda", "Merapi", "Bintang", "Samudra", "Cahaya"}, []string{"Kopi", "Digital", "Logistik", "Finansial", "Ritel"}, []string{"PT", "Tbk"}},
	{"MX", 8, []string{"Azteca", "Cielo", "Maya", "Sierra", "Mariposa", "Jalisco"}, []string{"Comercio", "Viajes", "Finanzas", "Farmacias", "Envíos"}, []string{"S.A. de C.V."}},
	{"DE", 7, []string{"Nordlicht", "Rhein", "Alpen", "Hanse", "Weber", "Falken"}, []string{"Versand", "Mobilität", "Versicherung", "Handel", "Energie"}, []string{"GmbH", "AG"}},
	{"US", 9, []string{"Blue Ridge", "Redwood", "Liberty", "Harbor", "Summit", "Prairie", "Copper"}, []string{"Commerce", "Health", "Labs", "Logistics", "Bank", "Travel"}, []string{"Inc.", "LLC"}},
	{"GB", 4, []string{"Thames", "Albion", "Pennine", "Kestrel"}, []string{"Retail", "Insurance", "Mobility", "Pharmacy"}, []string{"Ltd", "plc"}},
	{"NG", 4, []string{"Lagos", "Niger", "Eko", "Zuma"}, []string{"Pay", "Mart", "Logistics", "Health"}, []string{"Ltd"}},
	{"ES", 3, []string{"Ibérica", "Mediterráneo", "Sol y Mar"}, []string{"Viajes", "Banca", "Moda"}, []string{"S.L.", "S.A."}},
	{"TR", 3, []string{"Boğaziçi", "Anadolu", "Ege"}, []string{"Ticaret", "Lojistik", "Sigorta"}, []string{"A.Ş."}},
	{"IT", 3, []string{"Dolomiti", "Vesuvio", "Laguna"}, []string{"Moda", "Viaggi", "Assicurazioni"}, []string{"S.p.A.", "S.r.l."}},
	{"AE", 2, []string{"Falcon", "Oasis", "Marina"}, []string{"Trading", "Properties", "Airways"}, []string{"LLC", "FZE"}},
	{"CO", 2, []string{"Andes", "Caribe", "Café"}, []string{"Pagos", "Domicilios"}, []string{"S.A.S."}},
	{"AR", 2, []string{"Pampa", "Plata", "Patagonia"}, []string{"Finanzas", "Comercio"}, []string{"S.A.", "S.R.L."}},
}

// demoCustomers makes n customers with Zipf traffic weights.
func demoCustomers(rng *rand.Rand, n int) []demoCustomer {
	totalW := 0
	for _, c := range demoNames {
		totalW += c.weight
	}
	used := map[string]bool{}
	out := make([]demoCustomer, 0, n)
	var wsum float64
	for i := 0; i < n; i++ {
		x := rng.IntN(totalW)
		k := 0
		for x >= demoNames[k].weight {
			x -= demoNames[k].weight
			k++
		}
		nm := demoNames[k]
		var name string
		for try := 0; ; try++ {
			name = nm.stems[rng.IntN(len(nm.stems))] + " " + nm.kinds[rng.IntN(len(nm.kinds))]
			if try > 3 {
				name += " " + strconv.Itoa(i)
			}
			if !used[name] {
				break
			}
		}
		used[name] = true
		name += " " + nm.forms[rng.IntN(len(nm.forms))]
		c := demoCustomer{
			Customer: billing.Customer{
				ID:       fmt.Sprintf("wa-%s-%04d", lower(nm.country), 1000+i),
				Name:     name,
				Currency: "USD",
				Country:  nm.country,
				Email:    fmt.Sprintf("billing+%04d@example.com", 1000+i),
			},
			weight: 1 / math.Pow(float64(i+1), 1.1),
			home:   0.55 + 0.4*rng.Float64(),
			growth: 1 + 0.12*rng.Float64() - 0.02,
		}
		c.catWeight = [4]float64{0.15 + 0.5*rng.Float64(), 0.1 + 0.4*rng.Float64(), 0.05 + 0.2*rng.Float64(), 0.05 + 0.3*rng.Float64()}
		wsum += c.weight
		out = append(out, c)
	}
	for i := range out {
		out[i].weight /= wsum
	}
	return out
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ingestDemo generates the traffic of [from, to) day by day and sends it
// through metering's validation and Ingester in CloudEvents batches.
func (a *App) ingestDemo(ctx context.Context, out io.Writer, rng *rand.Rand, custs []demoCustomer, from, to time.Time, messages int) (int, error) {
	rules := &metering.Rules{
		Now:        func() time.Time { return a.Now() },
		Horizon:    to.Sub(from) + 48*time.Hour, // the demo's months are older than the ingest horizon
		FutureSkew: a.Config.Ingest.FutureSkew.Duration,
		Categories: a.Config.Ingest.Categories,
	}
	days := int(math.Ceil(to.Sub(from).Hours() / 24))
	// Daily volume: weekdays 1.0, weekends 0.7, with each customer's
	// growth; scaled so the whole period is about `messages`.
	dayWeight := make([]float64, days)
	var total float64
	for d := range days {
		w := 1.0
		if wd := from.AddDate(0, 0, d).Weekday(); wd == time.Saturday || wd == time.Sunday {
			w = 0.7
		}
		w *= math.Pow(1.04, float64(d)/30) // the book grows about 4% a month
		dayWeight[d] = w
		total += w
	}
	cum := make([]float64, len(demoCountries))
	var cw float64
	for i, c := range demoCountries {
		cw += c.weight
		cum[i] = cw
	}
	pickCountry := func(r *rand.Rand) string {
		x := r.Float64() * cw
		for i, c := range cum {
			if x < c {
				return demoCountries[i].code
			}
		}
		return demoCountries[0].code
	}

	const batchLen = 5000
	batches := make(chan []byte, 8)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range batches {
				if err := a.submitDemo(ctx, rules, body); err != nil {
					select {
					case errc <- err:
					default:
					}
					for range batches { // drain
					}
					return
				}
			}
		}()
	}

	buf := make([]byte, 0, batchLen*160)
	inBatch, n, seq := 0, 0, 0
	flush := func() bool {
		if inBatch == 0 {
			return true
		}
		buf = append(buf, ']')
		select {
		case batches <- buf:
		case <-ctx.Done():
			return false
		}
		buf, inBatch = make([]byte, 0, batchLen*160), 0
		return true
	}
	lastPct := -1
	for d := range days {
		day := from.AddDate(0, 0, d)
		for ci := range custs {
			c := &custs[ci]
			exp := float64(messages) * dayWeight[d] / total * c.weight * math.Pow(c.growth, float64(d)/30)
			k := int(exp)
			if rng.Float64() < exp-float64(k) {
				k++
			}
			var catSum float64
			for _, w := range c.catWeight {
				catSum += w
			}
			for range k {
				t := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
				if !t.Before(to) {
					continue
				}
				country := c.Country
				if rng.Float64() > c.home {
					country = pickCountry(rng)
				}
				x, cat := rng.Float64()*catSum, 0
				for cat < 3 && x >= c.catWeight[cat] {
					x -= c.catWeight[cat]
					cat++
				}
				buf = appendEvent(buf, inBatch == 0, c.ID, seq, t, country, demoCategories[cat])
				seq++
				inBatch++
				n++
				if inBatch == batchLen && !flush() {
					break
				}
			}
		}
		// A little usage of ids that are no customer: unbilled usage.
		for j := range 3 {
			t := day.Add(time.Duration(rng.Int64N(int64(20 * time.Hour))))
			if !t.Before(to) {
				continue
			}
			buf = appendEvent(buf, inBatch == 0, fmt.Sprintf("wa-trial-%d", 9000+j), seq, t, pickCountry(rng), "marketing")
			seq++
			inBatch++
			n++
		}
		if pct := 100 * (d + 1) / days; pct/10 != lastPct/10 {
			lastPct = pct
			fmt.Fprintf(out, "  traffic %3d%% (to %s): %d events sent\n", pct, day.Format("2006-01-02"), n)
		}
		if ctx.Err() != nil {
			break
		}
	}
	flush()
	close(batches)
	wg.Wait()
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return n, nil
}

// appendEvent appends one CloudEvent (JSON) to a batch being built.
func appendEvent(b []byte, first bool, customer string, seq int, t time.Time, country, category string) []byte {
	if first {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	b = append(b, `{"specversion":"1.0","type":"message.sent","source":"demo","id":"demo-`...)
	b = strconv.AppendInt(b, int64(seq), 36)
	b = append(b, `","subject":"`...)
	b = append(b, customer...)
	b = append(b, `","time":"`...)
	b = t.UTC().Truncate(time.Second).AppendFormat(b, time.RFC3339)
	b = append(b, `","data":{"country":"`...)
	b = append(b, country...)
	b = append(b, `","category":"`...)
	b = append(b, category...)
	b = append(b, `"}}`...)
	return b
}

// submitDemo decodes a batch with the ingest rules and submits its valid
// events, retrying while the ingester is overloaded.
func (a *App) submitDemo(ctx context.Context, rules *metering.Rules, body []byte) error {
	d, err := rules.DecodeBatch(body)
	if err != nil {
		return fmt.Errorf("demo batch: %w", err)
	}
	for _, r := range d.Results {
		if r.Status == metering.Rejected {
			return fmt.Errorf("demo event rejected: %s %s", r.Field, r.Reason)
		}
	}
	for {
		_, err := a.Ingester.Submit(ctx, d.Events)
		if postage.ErrorCode(err) == postage.EOVERLOADED {
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err != nil {
			return fmt.Errorf("demo ingest: %w", err)
		}
		return nil
	}
}
