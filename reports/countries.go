package reports

import (
	"sort"
	"sync"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	"postage/pricing"
)

// Country is an ISO 3166-1 alpha-2 code and its English name.
type Country struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

// renamed holds the names that changed after the CLDR release whose data
// golang.org/x/text carries, and the CLDR names that read as data rather
// than as names ("Hong Kong SAR China").
var renamed = map[string]string{
	"MK": "North Macedonia",
	"SZ": "Eswatini",
	"HK": "Hong Kong",
	"MO": "Macau",
	"PS": "Palestine",
}

var countries = sync.OnceValues(func() ([]Country, map[string]string) {
	names := display.English.Regions()
	var list []Country
	byCode := map[string]string{}
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			code := string([]rune{a, b})
			if !pricing.ValidCountry(code) {
				continue
			}
			name := renamed[code]
			if name == "" {
				if r, err := language.ParseRegion(code); err == nil {
					name = names.Name(r)
				}
			}
			if name == "" {
				continue
			}
			list = append(list, Country{Code: code, Name: name})
			byCode[code] = name
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Code < list[j].Code })
	return list, byCode
})

// Countries lists every country code rating accepts (pricing.ValidCountry)
// with its English name: the one source of country names that the API
// serves (GET /api/v1/countries), the dashboard shows and documents print.
// Names are CLDR's, from golang.org/x/text, with the few in renamed; TR is
// "Turkey", as Meta's price list and the meta-2026-01 card name it.
func Countries() []Country {
	list, _ := countries()
	return append([]Country(nil), list...)
}

// CountryName returns the English name of an ISO 3166-1 alpha-2 code, or
// the code itself when it is none (a market name such as "Rest of Africa",
// or an unknown code).
func CountryName(code string) string {
	_, byCode := countries()
	if n, ok := byCode[code]; ok {
		return n
	}
	return code
}
