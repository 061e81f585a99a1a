package metering

import (
	"bytes"
	"flag"
	"fmt"
	"go/format"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"postage/internal/testenv"
)

var updateCountryTable = flag.Bool("update-country-table", false, "rewrite country_table.go from phonenumbers metadata")

func buildCountryTable() *countryTable {
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		panic("metering: phonenumbers metadata: " + err.Error())
	}
	byRegion := map[string]*phonenumbers.PhoneMetadata{}
	for _, md := range coll.GetMetadata() {
		byRegion[md.GetId()] = md
	}
	t := &countryTable{codes: map[string]*callingCode{}}
	for code := range phonenumbers.GetSupportedCallingCodes() {
		regions := phonenumbers.GetRegionCodesForCountryCode(code)
		if len(regions) == 0 {
			continue
		}
		cc := &callingCode{}
		var examples []string
		for _, r := range regions {
			md := byRegion[r]
			if r == "001" {
				md = nil
				for _, m := range coll.GetMetadata() {
					if int(m.GetCountryCode()) == code {
						md = m
					}
				}
			}
			if md == nil {
				continue
			}
			for _, l := range md.GetGeneralDesc().GetPossibleLength() {
				cc.lengths |= 1 << uint(l)
			}
			if len(regions) > 1 {
				for _, d := range []*phonenumbers.PhoneNumberDesc{md.GetFixedLine(), md.GetMobile(), md.GetTollFree(),
					md.GetPremiumRate(), md.GetSharedCost(), md.GetPersonalNumber(), md.GetVoip(), md.GetPager(),
					md.GetUan(), md.GetVoicemail()} {
					if ex := d.GetExampleNumber(); ex != "" {
						examples = append(examples, ex)
					}
				}
			}
		}
		if cc.lengths == 0 {
			continue
		}
		if len(regions) == 1 {
			cc.region = regions[0]
		} else {
			cc.shared = map[string]string{}
			b := prefixBuilder{code: int32(code), lengths: cc.lengths, examples: examples, out: cc.shared,
				rng: rand.New(rand.NewPCG(uint64(code), 42))}
			b.resolve("")
		}
		t.codes[strconv.Itoa(code)] = cc
	}
	return t
}

type prefixBuilder struct {
	code     int32
	lengths  uint32
	examples []string
	out      map[string]string
	rng      *rand.Rand
}

const (
	samplesPerPrefix = 24
	minPrefixDepth   = 3
)

// resolve decides the region of every national number under prefix, writing
// leaves to b.out.
func (b *prefixBuilder) resolve(prefix string) {
	votes := map[string]int{}
	var buf []byte
	for l := len(prefix) + 1; l <= 17; l++ {
		if b.lengths&(1<<uint(l)) == 0 {
			continue
		}
		for range samplesPerPrefix {
			buf = append(buf[:0], prefix...)
			for len(buf) < l {
				buf = append(buf, byte('0'+b.rng.IntN(10)))
			}
			votes[regionOf(b.code, string(buf))]++
		}
	}
	for _, ex := range b.examples {
		if len(ex) > len(prefix) && ex[:len(prefix)] == prefix {
			votes[regionOf(b.code, ex)]++
		}
	}
	delete(votes, "")
	// An example number of another region below this prefix forces a split
	// even when random samples agree, so small enclaves (Vatican City's 06698
	// inside Italy's 06) are found.
	exampleRegions := map[string]bool{}
	for _, ex := range b.examples {
		if len(ex) > len(prefix) && ex[:len(prefix)] == prefix {
			if r := regionOf(b.code, ex); r != "" {
				exampleRegions[r] = true
			}
		}
	}
	for r := range votes {
		exampleRegions[r] = true
	}
	// Random samples are too sparse to see small regions near the root
	// (Ottawa's 613 among the US's area codes), so every shared code is
	// split at least down to minPrefixDepth digits: the NANP area code.
	if len(prefix) >= minPrefixDepth && ((len(exampleRegions) <= 1 && len(votes) <= 1) || len(prefix) >= maxPrefixDepth) {
		best, n := "", 0
		keys := make([]string, 0, len(votes))
		for r := range votes {
			keys = append(keys, r)
		}
		slices.Sort(keys)
		for _, r := range keys {
			if votes[r] > n {
				best, n = r, votes[r]
			}
		}
		b.out[prefix] = best
		return
	}
	for d := byte('0'); d <= '9'; d++ {
		b.resolve(prefix + string(d))
	}
	// Collapse ten leaves naming the same region into their parent.
	first, same := b.out[prefix+"0"], true
	for d := byte('0'); d <= '9'; d++ {
		r, leaf := b.out[prefix+string(d)]
		same = same && leaf && r == first
	}
	if same {
		for d := byte('0'); d <= '9'; d++ {
			delete(b.out, prefix+string(d))
		}
		b.out[prefix] = first
	}
}

// regionOf asks phonenumbers for the region of a national number under a
// shared calling code, without the cost of parsing text.
func regionOf(code int32, national string) string {
	n, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return ""
	}
	num := &phonenumbers.PhoneNumber{CountryCode: &code, NationalNumber: &n}
	if zeros := len(national) - len(strconv.FormatUint(n, 10)); zeros > 0 {
		t, z := true, int32(zeros)
		num.ItalianLeadingZero = &t
		num.NumberOfLeadingZeros = &z
	}
	return phonenumbers.GetRegionCodeForNumber(num)
}

// TestCountryTableUpToDate rebuilds the prefix table from the phonenumbers
// metadata and compares it with the generated one; with
// -update-country-table it rewrites country_table.go instead.
func TestCountryTableUpToDate(t *testing.T) {
	testenv.SingleServerOnly(t, "touches no ClickHouse (and takes a minute under -race): the one-server run checks the table")
	if testing.Short() && !*updateCountryTable {
		t.Skip("rebuilding the table takes seconds")
	}
	src := renderCountryTable(buildCountryTable())
	if *updateCountryTable {
		if err := os.WriteFile("country_table.go", src, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := os.ReadFile("country_table.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(old, src) {
		t.Fatal("country_table.go is stale: run go test ./metering -run TestCountryTableUpToDate -update-country-table")
	}
}

func renderCountryTable(t *countryTable) []byte {
	var b bytes.Buffer
	b.WriteString("// Code generated by go test ./metering -run TestCountryTableUpToDate -update-country-table; DO NOT EDIT.\n\n")
	b.WriteString("package metering\n\n")
	b.WriteString("// generatedCallingCodes maps an E.164 calling code to its region, its\n// possible national lengths and, for shared codes, national prefixes.\n")
	b.WriteString("var generatedCallingCodes = map[string]*callingCode{\n")
	codes := make([]string, 0, len(t.codes))
	for c := range t.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, c := range codes {
		cc := t.codes[c]
		fmt.Fprintf(&b, "%q: {region: %q, lengths: %#x", c, cc.region, cc.lengths)
		if cc.shared != nil {
			b.WriteString(", shared: map[string]string{")
			ps := make([]string, 0, len(cc.shared))
			for p := range cc.shared {
				ps = append(ps, p)
			}
			slices.Sort(ps)
			for i, p := range ps {
				if i%8 == 0 {
					b.WriteString("\n")
				}
				fmt.Fprintf(&b, "%q: %q, ", p, cc.shared[p])
			}
			b.WriteString("\n}")
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n")
	out, err := format.Source(b.Bytes())
	if err != nil {
		panic(err)
	}
	return out
}
