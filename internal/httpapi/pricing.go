package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/shopspring/decimal"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/pricing"
	"postage/reports"
)

// PricingDeps is what the pricing routes call into.
type PricingDeps struct {
	// Store is the rate card ledger (pricing/pgstore).
	Store pricing.Store
	// PDF prints quotes' PDFs (nil: they answer 503 renderer_unavailable).
	PDF reports.PDFPrinter
}

// pricingRoutes registers rate cards, versions, CSV import/export, quotes
// and price look-ups. Reads are open to every authenticated key; changes
// to sales, finance and admin.
func (s *Server) pricingRoutes() {
	if s.Pricing.Store == nil {
		return
	}
	st := s.Pricing.Store
	const tag = "pricing"
	s.handle(Route{Method: "GET", Path: "/api/v1/ratecards", Tag: tag, Summary: "List rate cards; default marks the card of customers without an assignment.", Roles: staff,
		Response: List[pricing.RateCard]{}}, func(c *gin.Context) {
		cards, err := st.ListCards(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(cards, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/ratecards", Tag: tag, Summary: "Create a rate card (without versions): id, name, currency, rounding.", Roles: staff,
		Request: pricing.RateCard{}, Response: pricing.RateCard{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in pricing.RateCard
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		if err := st.CreateCard(c.Request.Context(), in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := st.GetCard(c.Request.Context(), in.ID)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.Header("Location", "/api/v1/ratecards/"+out.ID)
		c.JSON(http.StatusCreated, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/ratecards/:card_id", Tag: tag, Summary: "Get a rate card.", Roles: staff, Response: pricing.RateCard{}}, func(c *gin.Context) {
		out, err := st.GetCard(c.Request.Context(), c.Param("card_id"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/ratecards/:card_id/versions", Tag: tag, Summary: "List a rate card's versions (draft and active), oldest first.", Roles: staff,
		Response: List[pricing.Version]{}}, func(c *gin.Context) {
		vs, err := st.ListVersions(c.Request.Context(), c.Param("card_id"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(vs, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/ratecards/:card_id/versions", Tag: tag, Summary: "Create a draft version from its content (markets, categories, prices).", Roles: staff,
		Request: pricing.Version{}, Response: pricing.Version{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in pricing.Version
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		in.CardID = c.Param("card_id")
		s.createDraft(c, &in)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/ratecards/:card_id/versions/import", Long: true, Tag: tag, Summary: "Create a draft version from a CSV file (docs/PRICING.md); an invalid file is rejected whole with every problem by row and column.", Roles: staff,
		Request: Media{"text/csv": nil}, Response: pricing.Version{}, Status: http.StatusCreated}, func(c *gin.Context) {
		if ct := c.ContentType(); ct != "" && ct != "text/csv" && ct != "text/plain" {
			s.writeError(c, postage.Errorf(postage.EUNSUPPORTED, "Content-Type must be text/csv, not %s", ct))
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			s.writeError(c, jsonError(err))
			return
		}
		if err := checkCSVText(body); err != nil {
			s.writeError(c, err)
			return
		}
		v, err := pricing.DecodeCSV(bytes.NewReader(body))
		if err != nil {
			s.writeError(c, err)
			return
		}
		v.CardID, v.Number = c.Param("card_id"), 0
		s.createDraft(c, v)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/ratecards/:card_id/versions/:number", Tag: tag, Summary: "Get a version with its markets, categories and prices.", Roles: staff, Response: pricing.Version{}}, func(c *gin.Context) {
		v, ok := s.versionParam(c)
		if !ok {
			return
		}
		c.JSON(http.StatusOK, v)
	})
	s.handle(Route{Method: "PUT", Path: "/api/v1/ratecards/:card_id/versions/:number", Tag: tag, Summary: "Replace a draft's content (active versions are immutable: 409).", Roles: staff,
		Request: pricing.Version{}, Response: pricing.Version{}}, func(c *gin.Context) {
		n, err := strconv.Atoi(c.Param("number"))
		if err != nil {
			s.writeError(c, postage.Errorf(postage.EINVALID, "version %q is not a number", c.Param("number")))
			return
		}
		var in pricing.Version
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		in.CardID, in.Number = c.Param("card_id"), n
		if err := st.UpdateDraft(c.Request.Context(), &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := st.GetVersion(c.Request.Context(), in.CardID, n)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/ratecards/:card_id/versions/:number/copy", Tag: tag, Summary: "Create a new draft with the content of an existing version.", Roles: staff,
		Response: pricing.Version{}, Status: http.StatusCreated}, func(c *gin.Context) {
		v, ok := s.versionParam(c)
		if !ok {
			return
		}
		v.Note = fmt.Sprintf("copy of version %d", v.Number)
		s.createDraft(c, v)
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/ratecards/:card_id/versions/:number/activate", Tag: tag, Summary: `Activate a draft from a month ({"effective_from":"2027-01"}), which must be after the current month and after the card's latest activation.`, Roles: staff,
		Request: ActivationRequest{}, Response: pricing.Version{}}, func(c *gin.Context) {
		n, err := strconv.Atoi(c.Param("number"))
		if err != nil {
			s.writeError(c, postage.Errorf(postage.EINVALID, "version %q is not a number", c.Param("number")))
			return
		}
		var in ActivationRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := st.Activate(c.Request.Context(), c.Param("card_id"), n, in.EffectiveFrom)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/ratecards/:card_id/versions/:number/export", Tag: tag, Summary: "Export a version as CSV (import reads the same format).", Roles: staff, Produces: []string{"text/csv"}}, func(c *gin.Context) {
		v, ok := s.versionParam(c)
		if !ok {
			return
		}
		var b bytes.Buffer
		if err := pricing.EncodeCSV(&b, v); err != nil {
			s.writeError(c, err)
			return
		}
		attachment(c, fmt.Sprintf("%s-v%d.csv", v.CardID, v.Number))
		c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/quotes", Tag: tag, Summary: "Price a volume mix (items of country, category, quantity) under a customer's card and overrides, a card, or a draft version; as JSON, or as a CSV or PDF document to download.", Roles: staff,
		Query:   []Param{{Name: "format", Description: "json (default), csv or pdf (or send Accept: text/csv or application/pdf)", Schema: documentFormat("")}},
		Request: QuoteRequest{}, Response: Quote{}, Produces: []string{"text/csv", "application/pdf"}}, s.quote)
	s.handle(Route{Method: "GET", Path: "/api/v1/prices", Tag: tag, Summary: "Look up one message's price by recipient country and category (default card, or the caller's/a customer's card; customer keys: their own card only).", Roles: staffAndOwner,
		Query: []Param{
			{Name: "country", Description: "recipient country, ISO 3166-1 alpha-2", Required: true, Schema: countryCode("")},
			{Name: "category", Description: "message category (or an alias the card knows)", Required: true},
			{Name: "card_id", Description: "rate card (default: the customer's card, else the default card)"},
			{Name: "customer_id", Description: "price for this customer (its card, overrides are not applied); customer keys: their own"},
			{Name: "customer_country", Description: "the business's country, for international authentication", Schema: countryCode("")},
			{Name: "month", Description: "YYYY-MM (default: the current month)", Schema: pricing.Month{}},
		},
		Response: PriceResponse{}}, s.price)
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/pricing", Tag: tag, Summary: "A customer's rate card in a month (?month=YYYY-MM, default this month) and its overrides (customer keys: their own).", Roles: staffAndOwner,
		Query:    []Param{{Name: "month", Description: "YYYY-MM (default: the current month)", Schema: pricing.Month{}}},
		Response: CustomerPricing{}}, func(c *gin.Context) {
		id, ok := s.customerParam(c)
		if !ok {
			return
		}
		month := pricing.MonthOf(s.Now())
		if m := c.Query("month"); m != "" {
			var err error
			if month, err = pricing.ParseMonth(m); err != nil {
				s.writeError(c, err)
				return
			}
		}
		ctx := c.Request.Context()
		if s.Customers != nil {
			if _, err := s.Customers.Get(ctx, id); err != nil {
				s.writeError(c, err)
				return
			}
		}
		card, err := st.CardFor(ctx, id, month)
		if err != nil {
			s.writeError(c, err)
			return
		}
		ov, err := st.Overrides(ctx, id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, CustomerPricing{Card: card, CustomerID: id, Month: month, Overrides: ov})
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/customers/:id/ratecards", Tag: tag, Summary: `Assign a rate card to a customer from a month on ({"card_id":"meta-2026-01","effective_from":"2027-01"}).`, Roles: staff,
		Request: CardAssignmentRequest{}, Response: CardAssignment{}}, func(c *gin.Context) {
		var in CardAssignmentRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		if err := st.AssignCard(c.Request.Context(), c.Param("id"), in.CardID, in.EffectiveFrom); err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, CardAssignment{CardID: in.CardID, CustomerID: c.Param("id"), EffectiveFrom: in.EffectiveFrom})
	})
	s.handle(Route{Method: "PUT", Path: "/api/v1/customers/:id/overrides", Tag: tag, Summary: "Replace a customer's pricing overrides (card discount, market/category discounts, custom unit prices; order in docs/PRICING.md).", Roles: staff,
		Request: pricing.Overrides{}, Response: pricing.Overrides{}}, func(c *gin.Context) {
		var in pricing.Overrides
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		if err := st.SetOverrides(c.Request.Context(), c.Param("id"), in); err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, in)
	})
}

func (s *Server) createDraft(c *gin.Context, v *pricing.Version) {
	out, err := s.Pricing.Store.CreateDraft(c.Request.Context(), v)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Header("Location", fmt.Sprintf("/api/v1/ratecards/%s/versions/%d", out.CardID, out.Number))
	c.JSON(http.StatusCreated, out)
}

func (s *Server) versionParam(c *gin.Context) (*pricing.Version, bool) {
	n, err := strconv.Atoi(c.Param("number"))
	if err != nil {
		s.writeError(c, postage.Errorf(postage.EINVALID, "version %q is not a number", c.Param("number")))
		return nil, false
	}
	v, err := s.Pricing.Store.GetVersion(c.Request.Context(), c.Param("card_id"), n)
	if err != nil {
		s.writeError(c, err)
		return nil, false
	}
	return v, true
}

// QuoteRequest asks for the price of a volume mix. The version is chosen
// by, in order: card_id + version (any version, drafts included), card_id
// (its version in effect in month), customer_id (the customer's card in
// month), else the default card. A customer_id also brings the customer's
// overrides (unless overrides are given) and country (unless
// customer_country is given).
type QuoteRequest struct {
	Items           []pricing.QuoteItem `json:"items"`
	CardID          string              `json:"card_id,omitempty"`
	Version         int                 `json:"version,omitempty"`
	CustomerID      string              `json:"customer_id,omitempty"`
	CustomerCountry string              `json:"customer_country,omitempty"`
	Month           pricing.Month       `json:"month,omitzero"`
	Overrides       *pricing.Overrides  `json:"overrides,omitempty"`
}

func (s *Server) quote(c *gin.Context) {
	format, err := documentFormatOf(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var in QuoteRequest
	if err := bindJSON(c, &in); err != nil {
		s.writeError(c, err)
		return
	}
	if len(in.Items) == 0 {
		s.writeError(c, postage.Errorf(postage.EINVALID, "items: at least one (country, category, quantity)"))
		return
	}
	if in.Version != 0 && in.CardID == "" {
		s.writeError(c, postage.Errorf(postage.EINVALID, "version needs card_id"))
		return
	}
	month := in.Month
	if month.IsZero() {
		month = pricing.MonthOf(s.Now())
	}
	v, ov, country, err := s.pricingContext(c, in.CardID, in.Version, in.CustomerID, month)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if in.Overrides != nil {
		ov = *in.Overrides
	}
	if in.CustomerCountry != "" {
		country = in.CustomerCountry
	}
	r, err := pricing.Compile(v)
	if err != nil {
		s.writeError(c, err)
		return
	}
	var res pricing.Result
	if v.CostPlus != nil {
		// Cost-plus: priced over the cost card in effect in the month, whose
		// markets and categories the items are in.
		cost, mem, cerr := s.costPlusMember(c.Request.Context(), v, month)
		if cerr != nil {
			s.writeError(c, cerr)
			return
		}
		if err := quoteItemProblems(cost, in.Items, country); err != nil {
			s.writeError(c, err)
			return
		}
		mem.Overrides, mem.Usage, mem.Opts.CustomerCountry = ov, in.Items, country
		res, err = cost.QuoteMember(mem)
	} else {
		if err := quoteItemProblems(r, in.Items, country); err != nil {
			s.writeError(c, err)
			return
		}
		res, err = r.Quote(ov, in.Items, pricing.RateOptions{CustomerCountry: country, Month: month})
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	if format == "json" {
		c.JSON(http.StatusOK, resultJSON(res))
		return
	}
	doc := reports.QuoteDocument{Result: res, CardName: v.CardID, CustomerCountry: country, Created: s.Now()}
	if in.CustomerID != "" && s.Customers != nil {
		if cust, err := s.Customers.Get(c.Request.Context(), in.CustomerID); err == nil {
			doc.Customer = cust.Name + " (" + cust.ID + ")"
		}
	}
	if card, err := s.Pricing.Store.GetCard(c.Request.Context(), v.CardID); err == nil {
		doc.CardName = card.Name
	}
	var body []byte
	mime := "text/csv; charset=utf-8"
	if format == "pdf" {
		mime = "application/pdf"
		body, err = reports.QuotePDF(c.Request.Context(), s.Pricing.PDF, doc)
	} else {
		var buf bytes.Buffer
		err = reports.QuoteCSV(&buf, doc)
		body = buf.Bytes()
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	attachment(c, fmt.Sprintf("quote-%s-v%d-%s.%s", res.CardID, res.Version, res.Month, format))
	c.Data(http.StatusOK, mime, body)
}

// documentFormatOf reads ?format= (json, csv or pdf), else the Accept
// header (text/csv, application/pdf), else json.
func documentFormatOf(c *gin.Context) (string, error) {
	switch f := c.Query("format"); f {
	case "json", "csv", "pdf":
		return f, nil
	case "":
	default:
		return "", postage.Errorf(postage.EINVALID, "format %q: want json, csv or pdf", f)
	}
	accept := c.GetHeader("Accept")
	switch {
	case strings.Contains(accept, "application/pdf"):
		return "pdf", nil
	case strings.Contains(accept, "text/csv"):
		return "csv", nil
	}
	return "json", nil
}

// quoteItemProblems checks every item of a quote against the card it is
// priced on and answers all problems at once, each naming the item's
// field, so a form can point at the row (a quote is not a usage month:
// "usage row 3" would mean nothing to the person who wrote it).
func quoteItemProblems(r *pricing.Rater, items []pricing.QuoteItem, customerCountry string) error {
	var probs []FieldProblem
	bad := func(i int, field, reason string) {
		probs = append(probs, FieldProblem{In: "body", Field: fmt.Sprintf("items[%d].%s", i, field), Reason: reason})
	}
	for i, it := range items {
		if !pricing.ValidCountry(it.Country) {
			bad(i, "country", fmt.Sprintf("%q is not an ISO 3166-1 alpha-2 country code", it.Country))
		}
		if _, err := r.Lookup(it.Country, it.Category, customerCountry); err != nil && postage.ErrorCode(err) == postage.EINVALID {
			bad(i, "category", fmt.Sprintf("%q is not a category of rate card %s", it.Category, r.Version().CardID))
		}
		if it.Quantity < 0 || it.Quantity > pricing.MaxQuantity {
			bad(i, "quantity", fmt.Sprintf("%d is not a number of messages from 0 to %d", it.Quantity, pricing.MaxQuantity))
		}
		if it.FreeType != "" {
			bad(i, "free_type", "quotes price regular messages: leave free_type out")
		}
	}
	return invalidFields(probs)
}

// pricingContext finds the version, overrides and customer country a quote
// or look-up uses (see QuoteRequest).
func (s *Server) pricingContext(c *gin.Context, cardID string, version int, customerID string, month pricing.Month) (*pricing.Version, pricing.Overrides, string, error) {
	ctx := c.Request.Context()
	st := s.Pricing.Store
	var ov pricing.Overrides
	var country string
	if customerID != "" {
		if s.Customers == nil {
			return nil, ov, "", postage.Errorf(postage.EUNAVAILABLE, "customers are not available")
		}
		cust, err := s.Customers.Get(ctx, customerID)
		if err != nil {
			return nil, ov, "", err
		}
		country = cust.Country
		if ov, err = st.Overrides(ctx, customerID); err != nil {
			return nil, ov, "", err
		}
		if cardID == "" {
			card, err := st.CardFor(ctx, customerID, month)
			if err != nil {
				return nil, ov, "", err
			}
			cardID = card.ID
		}
	}
	if cardID == "" {
		card, err := st.CardFor(ctx, "", month)
		if err != nil {
			return nil, ov, "", err
		}
		cardID = card.ID
	}
	var v *pricing.Version
	var err error
	if version != 0 {
		v, err = st.GetVersion(ctx, cardID, version)
	} else {
		v, err = st.VersionFor(ctx, cardID, month)
	}
	return v, ov, country, err
}

func (s *Server) price(c *gin.Context) {
	country, category := c.Query("country"), c.Query("category")
	if country == "" || category == "" {
		s.writeError(c, postage.Errorf(postage.EINVALID, "country and category are required, e.g. ?country=DE&category=notification"))
		return
	}
	if !pricing.ValidCountry(country) {
		s.writeError(c, postage.Errorf(postage.EINVALID, "country %q is not an ISO 3166-1 alpha-2 code", country))
		return
	}
	month := pricing.MonthOf(s.Now())
	if m := c.Query("month"); m != "" {
		var err error
		if month, err = pricing.ParseMonth(m); err != nil {
			s.writeError(c, err)
			return
		}
	}
	customerID, cardID := c.Query("customer_id"), c.Query("card_id")
	if p := principal(c); p.Role == auth.RoleCustomer {
		// A customer key prices on its own card only: another customer's
		// id, or another card (which may be another customer's deal), is
		// not found, exactly as if it did not exist.
		if customerID != "" && customerID != p.CustomerID {
			s.writeError(c, postage.Errorf(postage.ENOTFOUND, "customer %q not found", customerID))
			return
		}
		customerID = p.CustomerID
		if cardID != "" {
			own, err := s.Pricing.Store.CardFor(c.Request.Context(), customerID, month)
			if err != nil {
				s.writeError(c, err)
				return
			}
			if own.ID != cardID {
				s.writeError(c, postage.Errorf(postage.ENOTFOUND, "rate card %q not found", cardID))
				return
			}
		}
	}
	v, _, custCountry, err := s.pricingContext(c, cardID, 0, customerID, month)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if cc := c.Query("customer_country"); cc != "" {
		custCountry = cc
	}
	var pi pricing.PriceInfo
	if v.CostPlus != nil {
		cost, mem, cerr := s.costPlusMember(c.Request.Context(), v, month)
		if cerr != nil {
			s.writeError(c, cerr)
			return
		}
		mem.Opts.CustomerCountry = custCountry
		pi, err = cost.LookupMember(mem, country, category)
	} else {
		var r *pricing.Rater
		if r, err = pricing.Compile(v); err == nil {
			pi, err = r.Lookup(country, category, custCountry)
		}
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, PriceResponse{CardID: v.CardID, Month: month, Price: pi, Version: v.Number})
}

// QuoteLine is a quote's line (pricing.Line) with its money written with
// at least the currency's minor-unit decimals ("22175.00", not "22175"):
// the amount, the unit prices, and the exact subtotal, amount and tier
// amounts, which keep any further decimals ("22175.084265").
type QuoteLine struct {
	pricing.Line
	Tiers []billing.Tier `json:"tiers,omitempty"`
	// UnitPrice is the price per message (an average when the line's
	// average is set), with at least the currency's decimals.
	UnitPrice billing.Money `json:"unit_price"`
	// Subtotal is the exact amount before discounts.
	Subtotal billing.Money `json:"subtotal"`
	// Exact is the exact amount after discounts.
	Exact billing.Money `json:"exact"`
	// ListAmount and DiscountAmount are set on discounted lines: the
	// subtotal rounded once, and what the discount takes off it
	// (list_amount − discount_amount = amount).
	ListAmount     billing.Money `json:"list_amount,omitzero"`
	DiscountAmount billing.Money `json:"discount_amount,omitzero"`
	// Amount is the line's amount, rounded once to the currency's minor unit.
	Amount billing.Money `json:"amount"`
}

// Quote is the answer of POST /api/v1/quotes.
type Quote struct {
	pricing.Result
	Lines []QuoteLine `json:"lines"`
	// ListTotal is what the lines cost before discounts (the sum of each
	// line's list amount, or its amount when it has no discount), and
	// Discounts what the discounts take off: ListTotal − Discounts = Total.
	ListTotal billing.Money `json:"list_total"`
	Discounts billing.Money `json:"discounts"`
	// Total is the sum of the lines' amounts.
	Total billing.Money `json:"total"`
}

func resultJSON(r pricing.Result) Quote {
	fixed := func(d decimal.Decimal) billing.Money { return billing.NewMoney(d, r.MinorUnits) }
	list, disc := reports.QuoteListTotals(r)
	out := Quote{Result: r, Lines: make([]QuoteLine, len(r.Lines)), ListTotal: fixed(list), Discounts: fixed(disc), Total: fixed(r.Total)}
	for i, l := range r.Lines {
		ql := QuoteLine{Line: l, UnitPrice: fixed(l.UnitPrice), Subtotal: fixed(l.Subtotal), Exact: fixed(l.Exact), ListAmount: fixed(l.ListAmount), DiscountAmount: fixed(l.DiscountAmount), Amount: fixed(l.Amount)}
		for _, t := range l.Tiers {
			ql.Tiers = append(ql.Tiers, billing.Tier{From: t.From, UpTo: t.UpTo, Quantity: t.Quantity, UnitPrice: fixed(t.UnitPrice), Amount: fixed(t.Amount)})
		}
		out.Lines[i] = ql
	}
	return out
}

// ActivationRequest is the body of POST .../versions/{number}/activate.
type ActivationRequest struct {
	EffectiveFrom pricing.Month `json:"effective_from"`
}

// CardAssignmentRequest is the body of POST /api/v1/customers/{id}/ratecards.
type CardAssignmentRequest struct {
	CardID        string        `json:"card_id"`
	EffectiveFrom pricing.Month `json:"effective_from"`
}

// CardAssignment is a customer's rate card from a month on.
type CardAssignment struct {
	CardID        string        `json:"card_id"`
	CustomerID    string        `json:"customer_id"`
	EffectiveFrom pricing.Month `json:"effective_from"`
}

// CustomerPricing is a customer's rate card in a month and its overrides.
type CustomerPricing struct {
	Card       pricing.RateCard  `json:"card"`
	CustomerID string            `json:"customer_id"`
	Month      pricing.Month     `json:"month"`
	Overrides  pricing.Overrides `json:"overrides"`
}

// PriceResponse is one message's price under a card version.
type PriceResponse struct {
	CardID  string            `json:"card_id"`
	Month   pricing.Month     `json:"month"`
	Price   pricing.PriceInfo `json:"price"`
	Version int               `json:"version"`
}
