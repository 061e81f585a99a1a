package reports

import (
	"testing"

	"postage/pricing"
)

func TestCountryName(t *testing.T) {
	for code, want := range map[string]string{
		"DE": "Germany", "TR": "Turkey", "MK": "North Macedonia", "SZ": "Eswatini", "CI": "Côte d’Ivoire",
		"Rest of Africa": "Rest of Africa", "ZZ": "ZZ", "": "",
	} {
		if got := CountryName(code); got != want {
			t.Errorf("CountryName(%q) = %q, want %q", code, got, want)
		}
	}
	list := Countries()
	if len(list) < 240 {
		t.Errorf("%d countries, want every ISO 3166-1 code", len(list))
	}
	for i := 1; i < len(list); i++ {
		if list[i-1].Code >= list[i].Code {
			t.Fatalf("not sorted by code at %d: %v", i, list[i-1:i+1])
		}
	}
}

// TestCountryNamesAgreeWithCards: where a seeded card names a market after
// the one country in it, that name is the country's name here, so a
// country reads the same on every card, page and document.
func TestCountryNamesAgreeWithCards(t *testing.T) {
	s, err := pricing.MetaSeed()
	if err != nil {
		t.Fatal(err)
	}
	members := map[string][]string{}
	for c, m := range s.Version.Countries {
		members[m] = append(members[m], c)
	}
	n := 0
	for m, cs := range members {
		if len(cs) != 1 {
			continue
		}
		n++
		if got := CountryName(cs[0]); got != m {
			t.Errorf("market %q holds only %s, named %q here", m, cs[0], got)
		}
	}
	if n < 20 {
		t.Errorf("only %d single-country markets checked", n)
	}
}
