package httpapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"postage"
	"postage/billing"
	"postage/internal/auth"
	"postage/pricing"
)

// costRoutes registers the cost card schedule and exchange rates
// (docs/PRICING.md, "Cost cards, cost-plus and exchange rates").
func (s *Server) costRoutes() {
	if s.Pricing.Store == nil {
		return
	}
	st := s.Pricing.Store
	const tag = "pricing"
	s.handle(Route{Method: "GET", Path: "/api/v1/cost-cards", Tag: tag, Summary: "Which cost card (the upstream's prices) is in effect from which month, oldest first.", Roles: staff,
		Response: List[pricing.CostCardPeriod]{}}, func(c *gin.Context) {
		list, err := st.CostCards(c.Request.Context())
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/cost-cards", Tag: tag, Summary: `Make a cost card the one in effect from a later month ({"card_id":"meta-2027","effective_from":"2027-01"}); the same month again replaces it.`, Roles: staff,
		Request: pricing.CostCardPeriod{}, Response: pricing.CostCardPeriod{}}, func(c *gin.Context) {
		var in pricing.CostCardPeriod
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		if err := st.SetCostCard(c.Request.Context(), in.CardID, in.EffectiveFrom); err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, in)
	})
	s.handle(Route{Method: "GET", Path: "/api/v1/exchange-rates", Tag: tag, Summary: "Recorded exchange rates (one per currency pair and month), by pair then month.", Roles: staff,
		Query: []Param{
			{Name: "from", Description: "the cost currency (ISO 4217)"},
			{Name: "to", Description: "the currency billed (ISO 4217)"},
		},
		Response: List[pricing.ExchangeRate]{}}, func(c *gin.Context) {
		list, err := st.ExchangeRates(c.Request.Context(), c.Query("from"), c.Query("to"))
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, listOf(list, ""))
	})
	s.handle(Route{Method: "POST", Path: "/api/v1/exchange-rates", Tag: tag, Summary: `Record a month's exchange rate ({"from":"USD","to":"EUR","month":"2026-10","rate":"0.9231"}): units of "to" per unit of "from". A recorded rate never changes: the same again is 201, another 409.`, Roles: financeOnly,
		Request: pricing.ExchangeRate{}, Response: pricing.ExchangeRate{}, Status: http.StatusCreated}, func(c *gin.Context) {
		var in pricing.ExchangeRate
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		out, err := st.SetExchangeRate(c.Request.Context(), in)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusCreated, out)
	})
}

// costPlusMember returns, for a cost-plus version v of month m, the cost
// card's compiled version in effect then and the member to rate over it
// (with the month's exchange rate when the currencies differ). No cost
// card or no rate is a conflict that says which.
func (s *Server) costPlusMember(ctx context.Context, v *pricing.Version, m pricing.Month) (*pricing.Rater, pricing.Member, error) {
	st := s.Pricing.Store
	plus, err := pricing.Compile(v)
	if err != nil {
		return nil, pricing.Member{}, err
	}
	card, err := st.CostCardFor(ctx, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, pricing.Member{}, postage.Errorf(postage.ECONFLICT, "rate card %s is cost-plus, but %s", v.CardID, postage.ErrorMessage(err))
	} else if err != nil {
		return nil, pricing.Member{}, err
	}
	cv, err := st.VersionFor(ctx, card.ID, m)
	if postage.ErrorCode(err) == postage.ENOTFOUND {
		return nil, pricing.Member{}, postage.Errorf(postage.ECONFLICT, "rate card %s is cost-plus, but the cost card %s has no version in effect in %s", v.CardID, card.ID, m)
	} else if err != nil {
		return nil, pricing.Member{}, err
	}
	cost, err := pricing.Compile(cv)
	if err != nil {
		return nil, pricing.Member{}, err
	}
	mem := pricing.Member{Rater: plus, Opts: pricing.RateOptions{Month: m}}
	if card.Currency != v.Currency {
		x, err := st.ExchangeRateFor(ctx, card.Currency, v.Currency, m)
		if postage.ErrorCode(err) == postage.ENOTFOUND {
			return nil, pricing.Member{}, postage.Errorf(postage.ECONFLICT, "rate card %s is cost-plus in %s over the cost card %s in %s, and no %s to %s rate is recorded for %s",
				v.CardID, v.Currency, card.ID, card.Currency, card.Currency, v.Currency, m)
		} else if err != nil {
			return nil, pricing.Member{}, err
		}
		mem.FX = &x
	}
	return cost, mem, nil
}

// portfolioRoutes registers a customer's portfolio setting.
func (s *Server) portfolioRoutes() {
	const tag = "customers"
	s.handle(Route{Method: "GET", Path: "/api/v1/customers/:id/portfolio", Tag: tag, Summary: "A customer's portfolio in a month (?month=, default this month): its parent, whether it consolidates, its members (staff and the parent itself), and its settings over time.", Roles: staffAndOwner,
		Query:    []Param{{Name: "month", Description: "YYYY-MM (default: the current month)", Schema: pricing.Month{}}},
		Response: Portfolio{}}, func(c *gin.Context) {
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
		hist, err := s.Customers.PortfolioHistory(ctx, id)
		if err != nil {
			s.writeError(c, err)
			return
		}
		pf, err := s.Customers.PortfoliosIn(ctx, month)
		if err != nil {
			s.writeError(c, err)
			return
		}
		out := Portfolio{CustomerID: id, Month: month, ParentID: pf.Parent(id), Consolidated: pf.Consolidated(id), Members: []string{}, History: hist}
		if p := principal(c); p.Role != auth.RoleCustomer || out.ParentID == "" {
			if g := pf.Group(id); len(g) > 1 && g[0] == id {
				out.Members = g[1:] // a parent's members; a member key does not see its siblings
			}
		}
		c.JSON(http.StatusOK, out)
	})
	s.handle(Route{Method: "PUT", Path: "/api/v1/customers/:id/portfolio", Tag: tag, Summary: `Set a customer's parent account and/or, for a parent, its consolidated invoice from a later month ({"parent_id":"acme-group","effective_from":"2027-01"}; default: next month). Members share tier counts; a parent that consolidates gets one invoice with a section per member.`, Roles: financeOnly,
		Request: PortfolioRequest{}, Response: billing.PortfolioSetting{}}, func(c *gin.Context) {
		var in PortfolioRequest
		if err := bindJSON(c, &in); err != nil {
			s.writeError(c, err)
			return
		}
		if in.EffectiveFrom.IsZero() {
			in.EffectiveFrom = pricing.MonthOf(s.Now()).Next()
		}
		out, err := s.Customers.SetPortfolio(c.Request.Context(), billing.PortfolioSetting{
			CustomerID: c.Param("id"), ParentID: in.ParentID, Consolidated: in.Consolidated, EffectiveFrom: in.EffectiveFrom})
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.JSON(http.StatusOK, out)
	})
}

// PortfolioRequest is the body of PUT /api/v1/customers/{id}/portfolio.
type PortfolioRequest struct {
	// ParentID is the parent account ("" or absent: none, which ends a membership).
	ParentID string `json:"parent_id,omitempty"`
	// Consolidated, on a parent, bills its members on its invoice.
	Consolidated bool `json:"consolidated,omitempty"`
	// EffectiveFrom is the first month the setting applies to, after the
	// current one (default: the next month).
	EffectiveFrom pricing.Month `json:"effective_from,omitzero"`
}

// Portfolio is a customer's portfolio in a month.
type Portfolio struct {
	CustomerID   string        `json:"customer_id"`
	Month        pricing.Month `json:"month"`
	ParentID     string        `json:"parent_id,omitempty"`
	Consolidated bool          `json:"consolidated,omitempty"`
	// Members are a parent's members in the month (for staff and the
	// parent's own key).
	Members []string `json:"members"`
	// History is every setting of the customer, oldest first.
	History []billing.PortfolioSetting `json:"history"`
}
