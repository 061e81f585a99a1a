package pricing

import "testing"

func TestSeedsValid(t *testing.T) {
	ss, err := Seeds()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		if _, err := Compile(s.Version); err != nil {
			t.Fatal(err)
		}
	}
}
