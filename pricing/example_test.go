package pricing_test

import (
	"fmt"

	"postage/pricing"
)

// Rating one customer-month on the launch card: 250,001 notifications to
// Germany cross into the second graduated tier; sessions are free.
func ExampleRater_Rate() {
	seed, _ := pricing.LaunchSeed()
	r, _ := pricing.Compile(seed.Version)
	res, _ := r.Rate(pricing.Overrides{}, []pricing.Usage{
		{Country: "DE", Category: "notification", Quantity: 250_001},
		{Country: "DE", Category: "session", Quantity: 40},
	}, pricing.RateOptions{Month: pricing.MustParseMonth("2026-10")})
	for _, ln := range res.Lines {
		fmt.Println(ln.Market, ln.Category, ln.Quantity, ln.Exact, ln.Amount.StringFixed(int32(res.MinorUnits)))
		for _, t := range ln.Tiers {
			fmt.Println("  from", t.From, "×", t.Quantity, "at", t.UnitPrice, "=", t.Amount)
		}
	}
	fmt.Println("total", res.Total.StringFixed(int32(res.MinorUnits)), res.Currency)
	// Output:
	// DE notification 250001 22175.084265 22175.08
	//   from 1 × 250000 at 0.0887 = 22175
	//   from 250001 × 1 at 0.084265 = 0.084265
	// DE session 40 0 0.00
	// total 22175.08 USD
}
