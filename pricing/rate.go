package pricing

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"sync"

	"github.com/shopspring/decimal"

	"postage"
)

// Usage is an aggregate to rate: the quantity of messages of one category
// sent to recipients in one country, for one customer in one month. Rows
// with the same (Country, Category) are added together.
type Usage struct {
	Country  string `json:"country"`  // recipient's ISO 3166-1 alpha-2 code; unknown codes fall in the default market
	Category string `json:"category"` // a category name or alias of the card
	Quantity int64  `json:"quantity"`
	// FreeType, when set, makes the row free whatever its category: it
	// names why (an upstream's free pricing type such as
	// "free_customer_service"). Such rows are rated on lines of their own
	// at 0, per (market, category as sent, FreeType), need no price on the
	// card (nor a category it knows) and do not count toward tier volume.
	FreeType string `json:"free_type,omitempty"`
}

// QuoteItem is one item of a quote: a hypothetical month of usage.
type QuoteItem = Usage

// RateOptions are facts about the customer that rating needs.
type RateOptions struct {
	// CustomerCountry is where the business is registered. When it differs
	// from the recipient's country, categories with an International
	// variant are rated as that variant. Empty means domestic everywhere.
	CustomerCountry string
	// Month is echoed into the Result; rating itself does not depend on it.
	Month Month
}

// Result is a rated customer-month (or quote).
type Result struct {
	CardID     string   `json:"card_id"`
	Version    int      `json:"version"`
	Month      Month    `json:"month,omitzero"`
	Currency   string   `json:"currency"`
	MinorUnits int      `json:"minor_units"`
	Rounding   Rounding `json:"rounding"`
	Lines      []Line   `json:"lines"`
	// Total is the sum of the lines' rounded amounts.
	Total decimal.Decimal `json:"total"`
	// Unrated is the usage no line bills, row by row, with the reason:
	// categories the card does not list (and no unmapped rule prices).
	// The rest of the month is rated as if these rows were absent.
	Unrated []Unrated `json:"unrated,omitempty"`
	// Cost says which cost card version, in which currency, a cost-plus
	// rating priced over; FX is the exchange rate it used (nil when the
	// currencies are the same). Both nil for a card's own prices.
	Cost *CostRef      `json:"cost,omitempty"`
	FX   *ExchangeRate `json:"fx,omitempty"`
}

// CostRef names the cost card version a cost-plus rating priced over.
type CostRef struct {
	CardID   string `json:"card_id"`
	Version  int    `json:"version"`
	Currency string `json:"currency"`
}

// Unrated is a usage row that no line bills, and why.
type Unrated struct {
	Country  string `json:"country"`
	Category string `json:"category"`
	Quantity int64  `json:"quantity"`
	Reason   string `json:"reason"` // UnratedUnmapped
	Detail   string `json:"detail,omitempty"`
}

// Why usage is not rated.
const (
	// UnratedUnmapped: the card neither lists the category (by name or
	// alias) nor has an unmapped rule.
	UnratedUnmapped = "unmapped_category"
)

// Line is one invoice line: the month's quantity of one category in one
// market. Tier volume is counted per (market, category), so a line covers
// every recipient country of its market (on the launch card each country
// is its own market).
type Line struct {
	Market    string            `json:"market"`
	Countries []CountryQuantity `json:"countries"` // recipient countries of the line, sorted
	Category  string            `json:"category"`  // the card category the usage was rated as
	Free      bool              `json:"free,omitempty"`
	FreeType  string            `json:"free_type,omitempty"` // the rows' FreeType when they are free whatever their category
	Custom    bool              `json:"custom,omitempty"`    // a customer's custom unit price replaced the card's
	Average   bool              `json:"average,omitempty"`   // UnitPrice is an average (see UnitPrice)
	Mode      Mode              `json:"mode,omitempty"`      // the card's price mode, or flat for a custom price
	Quantity  int64             `json:"quantity"`
	// Unmapped lists the categories as sent, not on the card, that the
	// card's unmapped rule rated as this line's category.
	Unmapped []string   `json:"unmapped,omitempty"`
	Tiers    []TierLine `json:"tiers,omitempty"` // how the quantity fell into tiers
	// PoolQuantity is the quantity of the whole pool (a portfolio whose
	// members share tier counts) in the line's market and category, whose
	// tiers priced it; 0 when the line was rated alone.
	PoolQuantity int64 `json:"pool_quantity,omitempty"`
	// CostPlus shows how a cost-plus line was priced (nil otherwise).
	CostPlus *CostPlusLine `json:"cost_plus,omitempty"`
	// UnitPrice is the one unit price the line was charged at, or, when
	// Average is set, Subtotal/Quantity rounded half-even to six decimals.
	UnitPrice decimal.Decimal `json:"unit_price"`
	Subtotal  decimal.Decimal `json:"subtotal"` // exact, before discounts
	// Discount is the combined percentage taken off the subtotal.
	Discount decimal.Decimal `json:"discount,omitzero"`
	Exact    decimal.Decimal `json:"exact"`  // exact amount after discounts
	Amount   decimal.Decimal `json:"amount"` // Exact rounded once to the currency's minor unit
	// ListAmount is Subtotal rounded to the currency's minor unit (by the
	// same rounding as Amount) and DiscountAmount is ListAmount − Amount,
	// so that a discounted line reads list − discount = amount in minor
	// units. Both are set on discounted lines only: on the others the list
	// amount is Amount and nothing was taken off.
	ListAmount     decimal.Decimal `json:"list_amount,omitzero"`
	DiscountAmount decimal.Decimal `json:"discount_amount,omitzero"`
	// MessageCategories are the categories the line's messages were sent
	// with (Category's own name, its aliases, or for an international
	// variant its base category's names), in the card's order, when any of
	// them is not Category itself: a line of "notification" on the launch
	// card that bills messages sent as marketing and utility lists both.
	// Categories the card does not know, priced by its unmapped rule, are
	// in Unmapped instead.
	MessageCategories []string `json:"message_categories,omitempty"`
}

// CountryQuantity is one recipient country's share of a line.
type CountryQuantity struct {
	Country  string `json:"country"`
	Quantity int64  `json:"quantity"`
}

// TierLine is the part of a line's quantity charged at one tier's price.
type TierLine struct {
	From      int64           `json:"from"`  // first unit of the tier (1-based monthly count)
	UpTo      *int64          `json:"up_to"` // last unit of the tier; nil = unbounded
	Quantity  int64           `json:"quantity"`
	UnitPrice decimal.Decimal `json:"unit_price"`
	Amount    decimal.Decimal `json:"amount"` // exact
}

// Rater is a version compiled for fast rating: lookup tables from
// countries and category names to dense indexes and prices as integers of
// micro-units. Build one per version with Compile and reuse it for every
// customer; it is safe for concurrent use.
type Rater struct {
	v             *Version
	minor         int
	markets       []string
	countryMarket map[string]int32
	byCode        [26 * 26]int32 // market of each upper-case two-letter code
	defMarket     int32
	cats          []Category
	catIndex      map[string]int32 // name or alias → category
	catNames      []string         // the keys of catIndex, for a linear search
	catOf         []int32          // catOf[i] is catIndex[catNames[i]]
	intl          []int32          // category → its international variant, or -1
	unmapped      int32            // the category unlisted categories are rated as, or -1
	plus          *CostPlus        // a cost-plus version: no markets, categories or prices of its own
	prices        []*cprice        // [market*len(cats)+category]; nil: free or no price
	scratch       sync.Pool        // *rateScratch, for Rate's per-line sums
}

// rateScratch holds Rate's per-line sums: dense over every (market,
// category) of the card, so each row finds its line by index, and reused
// between calls (all zero when in the pool) because a card with many
// markets has thousands of lines and a customer uses a few.
type rateScratch struct {
	acc, count []int64
	touched    []int32
}

type cprice struct {
	p     *Price
	tiers []ctier // a flat price is one unbounded tier
}

type ctier struct {
	upTo   int64 // math.MaxInt64: unbounded
	upToP  *int64
	micros uint64
	price  decimal.Decimal
}

// Compile validates v and builds its Rater. The Rater keeps a deep copy,
// so later edits of v do not change it.
func Compile(v *Version) (*Rater, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	v = v.Clone()
	minor, ok := MinorUnits(v.Currency)
	if !ok {
		return nil, postage.Errorf(postage.EINVALID, "currency %q has no minor unit", v.Currency)
	}
	r := &Rater{v: v, minor: minor, cats: v.Categories, unmapped: -1}
	if v.CostPlus != nil {
		r.plus = v.CostPlus
		return r, nil
	}
	ms := map[string]bool{v.DefaultMarket: true}
	for _, m := range v.Countries {
		ms[m] = true
	}
	r.markets = sortedKeys(ms)
	mi := make(map[string]int32, len(r.markets))
	for i, m := range r.markets {
		mi[m] = int32(i)
	}
	r.defMarket = mi[v.DefaultMarket]
	r.countryMarket = make(map[string]int32, len(v.Countries))
	for i := range r.byCode {
		r.byCode[i] = r.defMarket
	}
	for c, m := range v.Countries {
		r.countryMarket[c] = mi[m]
		r.byCode[int(c[0]-'A')*26+int(c[1]-'A')] = mi[m] // validated: two upper-case letters
	}
	nc := len(r.cats)
	r.catIndex = make(map[string]int32, nc)
	for i, c := range r.cats {
		r.catIndex[c.Name] = int32(i)
	}
	for i, c := range r.cats {
		for _, a := range c.Aliases {
			r.catIndex[a] = int32(i)
		}
	}
	for name, i := range r.catIndex {
		r.catNames = append(r.catNames, name)
		r.catOf = append(r.catOf, i)
	}
	if v.Unmapped != "" {
		r.unmapped = r.catIndex[v.Unmapped] // validated: a category of the version
	}
	r.intl = make([]int32, nc)
	base := make([]int32, nc)
	for i := range base {
		base[i], r.intl[i] = -1, -1
	}
	for i, c := range r.cats {
		if c.International != "" {
			j := r.catIndex[c.International]
			r.intl[i], base[j] = j, int32(i)
		}
	}
	r.prices = make([]*cprice, len(r.markets)*nc)
	for i := range v.Prices {
		p := &v.Prices[i]
		cp := &cprice{p: p}
		if p.Mode == ModeFlat {
			cp.tiers = []ctier{{upTo: math.MaxInt64, micros: toMicros(p.UnitPrice), price: p.UnitPrice}}
		} else {
			for _, t := range p.Tiers {
				ct := ctier{upTo: math.MaxInt64, upToP: t.UpTo, micros: toMicros(t.UnitPrice), price: t.UnitPrice}
				if t.UpTo != nil {
					ct.upTo = *t.UpTo
				}
				cp.tiers = append(cp.tiers, ct)
			}
		}
		r.prices[int(mi[p.Market])*nc+int(r.catIndex[p.Category])] = cp
	}
	// A derived (international) category without a price in a market uses
	// its base category's price there.
	for m := range r.markets {
		for c := range r.cats {
			if b := base[c]; b >= 0 && r.prices[m*nc+c] == nil {
				r.prices[m*nc+c] = r.prices[m*nc+int(b)]
			}
		}
	}
	return r, nil
}

// toMicros converts a validated unit price (0 ≤ d < 10^6, six decimals) to
// an integer of millionths.
func toMicros(d decimal.Decimal) uint64 {
	return d.Shift(MaxPriceDecimals).BigInt().Uint64()
}

// Version returns (a copy of) the version the Rater was compiled from.
func (r *Rater) Version() *Version { return r.v.Clone() }

// Rate compiles v and rates one customer-month of usage with it. To rate
// many customers under the same version, Compile once and call Rater.Rate.
func Rate(v *Version, ov Overrides, usage []Usage, opts RateOptions) (Result, error) {
	r, err := Compile(v)
	if err != nil {
		return Result{}, err
	}
	return r.Rate(ov, usage, opts)
}

// Quote prices a hypothetical month of usage exactly as Rate would bill it.
func Quote(v *Version, ov Overrides, items []QuoteItem, opts RateOptions) (Result, error) {
	r, err := Compile(v)
	if err != nil {
		return Result{}, err
	}
	return r.Quote(ov, items, opts)
}

// Quote prices a hypothetical month of usage exactly as Rate would bill it;
// unlike Rate, it also rejects country codes that are not ISO 3166-1.
func (r *Rater) Quote(ov Overrides, items []QuoteItem, opts RateOptions) (Result, error) {
	var errs []error
	for i, it := range items {
		if !ValidCountry(it.Country) {
			errs = append(errs, postage.Errorf(postage.EINVALID, "item %d: country %q is not an ISO 3166-1 alpha-2 code", i, it.Country))
		}
	}
	if len(errs) > 0 {
		return Result{}, postage.JoinInvalid(errs)
	}
	res, err := r.Rate(ov, items, opts)
	if err != nil {
		return res, err
	}
	// A quote prices what it is asked: an item the card cannot price is an error.
	for _, u := range res.Unrated {
		errs = append(errs, postage.Errorf(postage.EINVALID, "category %q is not on rate card %s (categories: %s)", u.Category, r.v.CardID, strings.Join(r.categoryNames(), ", ")))
	}
	if len(errs) > 0 {
		return Result{}, postage.JoinInvalid(slices.CompactFunc(errs, func(a, b error) bool { return a.Error() == b.Error() }))
	}
	return res, nil
}

// Rate rates one customer-month of usage: rows are added up per (market,
// rated category), each such line is priced by its tiers, the customer's
// overrides apply in their documented order, the exact amount is rounded
// once to the currency's minor unit, and the total is the sum of the
// rounded lines. Free categories appear at 0. Unknown categories and
// negative quantities are errors (all are reported together).
func (r *Rater) Rate(ov Overrides, usage []Usage, opts RateOptions) (Result, error) {
	if r.plus != nil {
		return Result{}, r.costPlusAlone()
	}
	hasOv := !ov.IsZero()
	if hasOv {
		if err := ov.Validate(); err != nil {
			return Result{}, err
		}
	}
	nc := len(r.cats)
	nacc := len(r.markets) * nc
	// acc[i] is the quantity of line i; count[i] its number of rows + 1
	// (0: no usage); touched lists the lines with usage. Cleared on return.
	sc, _ := r.scratch.Get().(*rateScratch)
	if sc == nil {
		sc = &rateScratch{acc: make([]int64, nacc), count: make([]int64, nacc)}
	}
	acc, count := sc.acc, sc.count
	defer func() {
		for _, a := range sc.touched {
			acc[a], count[a] = 0, 0
		}
		sc.touched = sc.touched[:0]
		r.scratch.Put(sc)
	}()
	// rowAcc[i] is usage row i's line (-1: rejected or free); order lists
	// the priced rows grouped by line. Pointer-free, so the collector never
	// scans them.
	idx := make([]int32, 2*len(usage))
	rowAcc, order := idx[:len(usage)], idx[len(usage):]
	var errs []error
	var free []int32     // rows with a FreeType
	var unrated []int32  // rows of a category the card does not list
	var viaUnmapped bool // some row was rated by the unmapped rule
	for i, u := range usage {
		if u.FreeType != "" {
			if u.Quantity < 0 || u.Quantity > MaxQuantity {
				errs = append(errs, postage.Errorf(postage.EINVALID, "usage row %d: quantity %d out of range", i, u.Quantity))
			}
			free = append(free, int32(i))
			rowAcc[i] = -1
			continue
		}
		c, ok := r.category(u.Category)
		if !ok {
			if r.unmapped < 0 {
				if u.Quantity < 0 || u.Quantity > MaxQuantity {
					errs = append(errs, postage.Errorf(postage.EINVALID, "usage row %d: quantity %d out of range", i, u.Quantity))
				}
				unrated = append(unrated, int32(i))
				rowAcc[i] = -1
				continue
			}
			c, viaUnmapped = r.unmapped, true
		}
		if u.Quantity < 0 || u.Quantity > MaxQuantity {
			errs = append(errs, postage.Errorf(postage.EINVALID, "usage row %d: quantity %d out of range", i, u.Quantity))
			rowAcc[i] = -1
			continue
		}
		m := r.marketOf(u.Country)
		if ic := r.intl[c]; ic >= 0 && opts.CustomerCountry != "" && opts.CustomerCountry != u.Country {
			c = ic
		}
		a := int(m)*nc + int(c)
		if u.Quantity > MaxQuantity-acc[a] { // both are in [0, MaxQuantity]: no overflow
			errs = append(errs, postage.Errorf(postage.EINVALID, "usage row %d: monthly quantity of market %q category %q exceeds %d", i, r.markets[m], r.cats[c].Name, MaxQuantity))
			rowAcc[i] = -1
			continue
		}
		acc[a] += u.Quantity
		if count[a] == 0 {
			count[a] = 1
			sc.touched = append(sc.touched, int32(a))
		}
		count[a]++
		rowAcc[i] = int32(a)
	}
	if len(errs) > 0 {
		return Result{}, postage.JoinInvalid(errs)
	}

	// Bucket the rows by line (stable, O(rows + lines)), then merge the
	// countries of each line.
	slices.Sort(sc.touched) // lines in (market, category) order
	nlines, ntiers, start := len(sc.touched), 0, 0
	for _, a := range sc.touched {
		ntiers += r.tiersUsed(int(a), acc[a])
		n := int(count[a] - 1)
		count[a] = int64(start) + 1 // becomes the next free slot + 1
		start += n
	}
	order = order[:start]
	for i, a := range rowAcc {
		if a < 0 {
			continue // free
		}
		order[count[a]-1] = int32(i)
		count[a]++
	}

	res := Result{
		CardID:     r.v.CardID,
		Version:    r.v.Number,
		Month:      opts.Month,
		Currency:   r.v.Currency,
		MinorUnits: r.minor,
		Rounding:   r.v.Rounding,
		Lines:      make([]Line, 0, nlines+len(free)),
	}
	countries := make([]CountryQuantity, 0, len(usage))
	var sent []string                      // every line's MessageCategories, allocated when a line needs one
	tiers := make([]TierLine, 0, ntiers+1) // +1: a custom price may use one tier where the card's uses none
	var total u128                         // rounded amounts, in micro-units

	for i := 0; i < len(order); {
		a := rowAcc[order[i]]
		j := i + 1
		for j < len(order) && rowAcc[order[j]] == a {
			j++
		}
		grp := order[i:j]
		if len(grp) > 1 {
			slices.SortFunc(grp, func(x, y int32) int { return strings.Compare(usage[x].Country, usage[y].Country) })
		}
		cstart := len(countries)
		for _, k := range grp {
			u := &usage[k]
			if n := len(countries); n > cstart && countries[n-1].Country == u.Country {
				countries[n-1].Quantity += u.Quantity
			} else {
				countries = append(countries, CountryQuantity{Country: u.Country, Quantity: u.Quantity})
			}
		}
		i = j
		var unm []string
		if viaUnmapped {
			unm = r.unmappedOf(usage, grp)
		}

		m, c := int(a)/nc, int(a)%nc
		q := acc[a]
		// Build the line in place (Lines has capacity nlines and is zeroed).
		res.Lines = res.Lines[:len(res.Lines)+1]
		ln := &res.Lines[len(res.Lines)-1]
		ln.Market = r.markets[m]
		ln.Countries = countries[cstart:len(countries):len(countries)]
		ln.Category = r.cats[c].Name
		ln.Quantity = q
		ln.Unmapped = unm
		for _, k := range grp {
			if n := usage[k].Category; n != ln.Category {
				if _, known := r.category(n); !known {
					continue // priced by the unmapped rule: listed in Unmapped
				}
				if sent == nil {
					sent = make([]string, 0, len(usage))
				}
				ln.MessageCategories, sent = r.messageCategories(sent, usage, grp)
				break
			}
		}
		if r.cats[c].Free {
			ln.Free = true
			continue
		}
		cp := r.prices[a]
		if cp == nil { // cannot happen for a validated version
			return Result{}, postage.Errorf(postage.EINTERNAL, "rate card %s has no price for market %q category %q", r.v.CardID, ln.Market, ln.Category)
		}
		ln.Mode = cp.p.Mode
		tiersIn := cp.tiers
		var custom [1]ctier
		if hasOv {
			if up, ok := ov.customPrice(ln.Market, ln.Category); ok {
				custom[0] = ctier{upTo: math.MaxInt64, micros: toMicros(up), price: up}
				tiersIn, ln.Mode, ln.Custom = custom[:], ModeFlat, true
			}
		}

		// Price the quantity by its tiers, exactly, in micro-units.
		var sub u128
		tstart := len(tiers)
		if ln.Mode == ModeVolume {
			k := 0
			for k < len(tiersIn)-1 && q > tiersIn[k].upTo {
				k++
			}
			t := &tiersIn[k]
			var from int64 = 1
			if k > 0 {
				from = tiersIn[k-1].upTo + 1
			}
			sub = mul64(uint64(q), t.micros)
			if q > 0 {
				tiers = append(tiers, TierLine{From: from, UpTo: t.upToP, Quantity: q, UnitPrice: t.price})
			}
		} else {
			var prev int64
			for k := range tiersIn {
				t := &tiersIn[k]
				if q <= prev {
					break
				}
				n := min(q, t.upTo) - prev
				part := mul64(uint64(n), t.micros)
				sub = sub.add(part)
				tl := TierLine{From: prev + 1, UpTo: t.upToP, Quantity: n, UnitPrice: t.price}
				if len(tiers) > tstart { // more than one tier: each needs its own amount
					tl.Amount = part.decimal(MaxPriceDecimals)
				}
				tiers = append(tiers, tl)
				prev = t.upTo
			}
		}
		ln.Tiers = tiers[tstart:len(tiers):len(tiers)]
		ln.Subtotal = sub.decimal(MaxPriceDecimals)
		switch len(ln.Tiers) {
		case 0:
			ln.UnitPrice = tiersIn[0].price
		case 1:
			ln.Tiers[0].Amount = ln.Subtotal
			ln.UnitPrice = ln.Tiers[0].UnitPrice
		default:
			ln.Tiers[0].Amount = mul64(uint64(ln.Tiers[0].Quantity), tiersIn[0].micros).decimal(MaxPriceDecimals)
			ln.UnitPrice = widen(sub).roundDiv(uint64(q), false).u128().decimal(MaxPriceDecimals)
			ln.Average = true
		}

		// Discounts, then one rounding: the exact amount is an integer of
		// 10^-scale units (micro-units, or 10^-18 with discounts, whose
		// factors are millionths), rounded once by roundDiv.
		exact, scale := widen(sub), MaxPriceDecimals
		if hasOv {
			f1, f2 := uint64(million), uint64(million) // (100 - percent) / 100 in millionths
			if d, ok := ov.scopedDiscount(ln.Market, ln.Category); ok && !d.IsZero() {
				f1 = discountFactor(d)
			}
			if !ov.CardDiscount.IsZero() {
				f2 = discountFactor(ov.CardDiscount)
			}
			if f1 != million || f2 != million {
				exact, scale = sub.mul(f1).mul(f2), MaxPriceDecimals+12
				ln.Discount = decimal.New(int64(million*million-f1*f2), -10) // percent
			}
		}
		ln.Exact = ln.Subtotal
		if scale != MaxPriceDecimals {
			ln.Exact = exact.decimal(scale)
		}
		minor := min(r.minor, MaxPriceDecimals)
		rounded := exact.roundDiv(pow10[scale-minor], r.v.Rounding == RoundHalfUp).u128()
		ln.Amount = rounded.decimal(minor)
		if scale != MaxPriceDecimals {
			// The list amount is rounded by the same function; a discount
			// never raises the exact amount, so rounded ≤ list.
			list := widen(sub).roundDiv(pow10[MaxPriceDecimals-minor], r.v.Rounding == RoundHalfUp).u128()
			ln.ListAmount = list.decimal(minor)
			ln.DiscountAmount = list.sub(rounded).decimal(minor)
		}
		total = total.add(rounded.rescale(MaxPriceDecimals - minor))
	}
	if len(free) > 0 {
		if err := r.freeLines(&res, usage, free, countries); err != nil {
			return Result{}, err
		}
	}
	if len(unrated) > 0 {
		res.Unrated = r.unratedRows(usage, unrated)
	}
	// total holds rounded amounts in micro-units (exact multiples of the minor unit).
	res.Total = total.decimal(MaxPriceDecimals).Truncate(int32(r.minor))
	return res, nil
}

// costPlusAlone is the error of rating a cost-plus version without its cost card.
func (r *Rater) costPlusAlone() error {
	return postage.Errorf(postage.EINVALID, "rate card %s version %d is cost-plus: it rates over the cost card in effect (Rater.RatePool of the cost card's Rater)", r.v.CardID, r.v.Number)
}

// unmappedOf returns, sorted and each once, the categories of rows (of
// one line) that the card does not list: the unmapped rule rated them.
func (r *Rater) unmappedOf(usage []Usage, rows []int32) []string {
	var out []string
	for _, k := range rows {
		name := usage[k].Category
		if _, ok := r.category(name); !ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// unratedRows lists the rows of categories the card does not list, one
// per (category, country), in that order.
func (r *Rater) unratedRows(usage []Usage, rows []int32) []Unrated {
	slices.SortStableFunc(rows, func(a, b int32) int {
		if c := strings.Compare(usage[a].Category, usage[b].Category); c != 0 {
			return c
		}
		return strings.Compare(usage[a].Country, usage[b].Country)
	})
	var out []Unrated
	for _, k := range rows {
		u := &usage[k]
		if n := len(out); n > 0 && out[n-1].Category == u.Category && out[n-1].Country == u.Country {
			out[n-1].Quantity += u.Quantity
			continue
		}
		out = append(out, Unrated{Country: u.Country, Category: u.Category, Quantity: u.Quantity, Reason: UnratedUnmapped,
			Detail: r.unmappedDetail(u.Category)})
	}
	return out
}

func (r *Rater) unmappedDetail(category string) string {
	return fmt.Sprintf("category %q is not on rate card %s version %d (categories: %s) and the version has no unmapped rule", category, r.v.CardID, r.v.Number, strings.Join(r.categoryNames(), ", "))
}

// freeLines appends the lines of the rows with a FreeType, after the
// priced lines: one per (market, category as sent, FreeType), ordered by
// market, category and type, each listing its countries, at 0.
func (r *Rater) freeLines(res *Result, usage []Usage, rows []int32, countries []CountryQuantity) error {
	market := func(i int32) string { return r.markets[r.marketOf(usage[i].Country)] }
	slices.SortFunc(rows, func(a, b int32) int {
		ua, ub := &usage[a], &usage[b]
		if c := strings.Compare(market(a), market(b)); c != 0 {
			return c
		}
		if c := strings.Compare(ua.Category, ub.Category); c != 0 {
			return c
		}
		if c := strings.Compare(ua.FreeType, ub.FreeType); c != 0 {
			return c
		}
		return strings.Compare(ua.Country, ub.Country)
	})
	for i := 0; i < len(rows); {
		first := &usage[rows[i]]
		m := market(rows[i])
		j := i
		cstart := len(countries)
		var q int64
		for ; j < len(rows); j++ {
			u := &usage[rows[j]]
			if u.Category != first.Category || u.FreeType != first.FreeType || market(rows[j]) != m {
				break
			}
			if u.Quantity > MaxQuantity-q {
				return postage.Errorf(postage.EINVALID, "usage row %d: monthly quantity of market %q category %q (%s) exceeds %d", rows[j], m, u.Category, u.FreeType, MaxQuantity)
			}
			q += u.Quantity
			if n := len(countries); n > cstart && countries[n-1].Country == u.Country {
				countries[n-1].Quantity += u.Quantity
			} else {
				countries = append(countries, CountryQuantity{Country: u.Country, Quantity: u.Quantity})
			}
		}
		res.Lines = append(res.Lines, Line{
			Market: m, Countries: countries[cstart:len(countries):len(countries)], Category: first.Category,
			Free: true, FreeType: first.FreeType, Quantity: q,
		})
		i = j
	}
	return nil
}

// messageCategories appends to sent the distinct categories that the rows
// grp of usage were sent with, in the card's order (a category, then its
// aliases, categories in card order), and returns them as one slice and
// the grown backing array.
func (r *Rater) messageCategories(sent []string, usage []Usage, grp []int32) ([]string, []string) {
	start := len(sent)
	for _, k := range grp {
		n := usage[k].Category
		if _, known := r.category(n); known && !slices.Contains(sent[start:], n) {
			sent = append(sent, n) // unmapped categories are the line's Unmapped
		}
	}
	part := sent[start:len(sent):len(sent)]
	slices.SortFunc(part, func(a, b string) int { return r.nameOrder(a) - r.nameOrder(b) })
	return part, sent
}

// nameOrder ranks a category name or alias by the card's order: its
// category's position, then its place among the category's name and
// aliases.
func (r *Rater) nameOrder(name string) int {
	c, _ := r.category(name)
	pos := 0
	if cat := &r.cats[c]; cat.Name != name {
		pos = 1 + slices.Index(cat.Aliases, name)
	}
	return int(c)<<16 | pos
}

// tiersUsed returns how many tier lines line a (quantity q) has under the
// card's price.
func (r *Rater) tiersUsed(a int, q int64) int {
	cp := r.prices[a]
	if cp == nil || q == 0 {
		return 0
	}
	if cp.p.Mode != ModeGraduated {
		return 1
	}
	n := 1
	for _, t := range cp.tiers[:len(cp.tiers)-1] {
		if q <= t.upTo {
			break
		}
		n++
	}
	return n
}

// category returns the index of a category name or alias. A linear search:
// cards have a handful of categories, and comparing a few short strings is
// several times cheaper than hashing one.
func (r *Rater) category(name string) (int32, bool) {
	if len(r.catNames) > 16 {
		c, ok := r.catIndex[name]
		return c, ok
	}
	for i, n := range r.catNames {
		if n == name {
			return r.catOf[i], true
		}
	}
	return 0, false
}

// marketOf returns the market index of a recipient country: a table
// look-up for two upper-case letters, the default market otherwise.
func (r *Rater) marketOf(country string) int32 {
	if len(country) == 2 {
		a, b := country[0]-'A', country[1]-'A'
		if a < 26 && b < 26 {
			return r.byCode[int(a)*26+int(b)]
		}
	}
	return r.defMarket
}

// Market returns the market a recipient country belongs to.
func (r *Rater) Market(country string) string {
	if r.plus != nil {
		return ""
	}
	if m, ok := r.countryMarket[country]; ok {
		return r.markets[m]
	}
	return r.markets[r.defMarket]
}

// Markets returns the card's markets, sorted.
func (r *Rater) Markets() []string { return append([]string(nil), r.markets...) }

// PriceInfo answers "what does one message of this category to this
// country cost": the market, the category it is rated as and its price.
type PriceInfo struct {
	Country  string `json:"country"`
	Market   string `json:"market"`
	Category string `json:"category"`
	Currency string `json:"currency"`
	Free     bool   `json:"free,omitempty"`
	Mode     Mode   `json:"mode,omitempty"`
	// UnitPrice is the flat price, or the first tier's price.
	UnitPrice decimal.Decimal `json:"unit_price"`
	Tiers     []Tier          `json:"tiers,omitempty"`
}

// Lookup returns the price of one message of category to country, for a
// customer registered in customerCountry (may be empty).
func (r *Rater) Lookup(country, category, customerCountry string) (PriceInfo, error) {
	if r.plus != nil {
		return PriceInfo{}, r.costPlusAlone()
	}
	c, ok := r.catIndex[category]
	if !ok && r.unmapped >= 0 {
		c, ok = r.unmapped, true
	}
	if !ok {
		return PriceInfo{}, postage.Errorf(postage.EINVALID, "category %q is not on rate card %s (categories: %s)", category, r.v.CardID, strings.Join(r.categoryNames(), ", "))
	}
	if ic := r.intl[c]; ic >= 0 && customerCountry != "" && customerCountry != country {
		c = ic
	}
	m, ok := r.countryMarket[country]
	if !ok {
		m = r.defMarket
	}
	pi := PriceInfo{Country: country, Market: r.markets[m], Category: r.cats[c].Name, Currency: r.v.Currency}
	if r.cats[c].Free {
		pi.Free = true
		return pi, nil
	}
	cp := r.prices[int(m)*len(r.cats)+int(c)]
	if cp == nil {
		return PriceInfo{}, postage.Errorf(postage.EINTERNAL, "no price for market %q category %q", pi.Market, pi.Category)
	}
	pi.Mode = cp.p.Mode
	pi.UnitPrice = cp.tiers[0].price
	if cp.p.Mode != ModeFlat {
		pi.Tiers = append([]Tier(nil), cp.p.Tiers...)
	}
	return pi, nil
}

func (r *Rater) categoryNames() []string {
	var ns []string
	for _, c := range r.cats {
		ns = append(ns, c.Name)
	}
	return ns
}

// u128 is an unsigned 128-bit integer: exact amounts in micro-units
// (quantity < 2^62 times a price < 2^40 micro-units, summed, fits).
type u128 struct{ hi, lo uint64 }

func mul64(a, b uint64) u128 {
	hi, lo := bits.Mul64(a, b)
	return u128{hi, lo}
}

func (x u128) add(y u128) u128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return u128{hi, lo}
}

// sub returns x − y (y ≤ x).
func (x u128) sub(y u128) u128 {
	lo, borrow := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, borrow)
	return u128{hi, lo}
}

// rescale multiplies by 10^digits.
func (x u128) rescale(digits int) u128 {
	if digits <= 0 {
		return x
	}
	hi, lo := bits.Mul64(x.lo, pow10[digits])
	return u128{x.hi*pow10[digits] + hi, lo}
}

// mul multiplies by m; the product must fit (a subtotal < 2^102 times a
// discount factor ≤ 10^6 does).
func (x u128) mul(m uint64) u192 {
	h0, l0 := bits.Mul64(x.lo, m)
	h1, l1 := bits.Mul64(x.hi, m)
	mid, c := bits.Add64(l1, h0, 0)
	return u192{h1 + c, mid, l0}
}

// u192 is an unsigned 192-bit integer: an exact amount to round. A
// discounted amount is a subtotal (< 2^102 micro-units) times two discount
// factors (each ≤ 10^6 millionths), < 2^142.
type u192 struct{ hi, mid, lo uint64 }

func widen(x u128) u192 { return u192{0, x.hi, x.lo} }

// u192 multiplies by m (x.hi must be zero, which every amount rated here is).
func (x u192) mul(m uint64) u192 {
	return u128{x.mid, x.lo}.mul(m)
}

// roundDiv divides by d (non-zero) rounding half-even, or half-up: the
// one rounding of money (a line's exact amount to its currency's minor
// unit) and of average unit prices (to six decimals).
func (x u192) roundDiv(d uint64, halfUp bool) u192 {
	qhi, r := x.hi/d, x.hi%d
	qmid, r := bits.Div64(r, x.mid, d)
	qlo, r := bits.Div64(r, x.lo, d)
	q := u192{qhi, qmid, qlo}
	// Round up when 2r > d, or 2r == d and (half-up or q is odd); r ≥ d-r
	// compares without overflow.
	if r > d-r || (r == d-r && r != 0 && (halfUp || qlo&1 == 1)) {
		var c uint64
		q.lo, c = bits.Add64(q.lo, 1, 0)
		q.mid, c = bits.Add64(q.mid, 0, c)
		q.hi += c
	}
	return q
}

// u128 returns x, which must be below 2^128.
func (x u192) u128() u128 {
	if x.hi != 0 {
		panic("pricing: amount out of range")
	}
	return u128{x.mid, x.lo}
}

// decimal returns x × 10^-scale.
func (x u192) decimal(scale int) decimal.Decimal {
	if x.hi == 0 {
		return u128{x.mid, x.lo}.decimal(scale)
	}
	b := new(big.Int).SetUint64(x.hi)
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(x.mid))
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(x.lo))
	return decimal.NewFromBigInt(b, int32(-scale))
}

const million = 1_000_000

// discountFactor returns (100 - percent) / 100 in millionths: exact, since
// a validated percentage has at most four decimals.
func discountFactor(percent decimal.Decimal) uint64 {
	return million - uint64(percent.Shift(MaxPercentDecimals).IntPart())
}

var pow10 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimal returns x × 10^-scale.
func (x u128) decimal(scale int) decimal.Decimal {
	if x.hi == 0 && x.lo <= math.MaxInt64 {
		return decimal.New(int64(x.lo), int32(-scale))
	}
	b := new(big.Int).SetUint64(x.hi)
	b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(x.lo))
	return decimal.NewFromBigInt(b, int32(-scale))
}
