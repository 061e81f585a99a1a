package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"postage/reports"
)

// numbers is a list of n items served a page at a time, the cursor being
// the index of the page's first item.
func numbers(n int) func(limit int, cursor string) ([]int, string, error) {
	return func(limit int, cursor string) ([]int, string, error) {
		from := 0
		if cursor != "" {
			from, _ = strconv.Atoi(cursor)
		}
		var page []int
		for i := from; i < n && len(page) < limit; i++ {
			page = append(page, i)
		}
		next := ""
		if from+len(page) < n {
			next = strconv.Itoa(from + len(page))
		}
		return page, next, nil
	}
}

func runList(t *testing.T, l pageList[int], p pageFlags) (stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	if err := l.write(cmd, p); err != nil {
		t.Fatalf("write %+v: %v", p, err)
	}
	return out.String(), errOut.String()
}

func TestPageList(t *testing.T) {
	l := pageList[int]{
		fetch:  numbers(2500),
		header: "N\tSQUARE",
		row:    func(n int) []any { return []any{n, n * n} },
		csv: tableCSV(func(list []int) reports.Table {
			t := reports.Table{Header: []string{"n"}}
			for _, n := range list {
				t.Rows = append(t.Rows, []string{strconv.Itoa(n)})
			}
			return t
		}),
	}

	out, more := runList(t, l, pageFlags{limit: 3, cursor: "10", format: "text"})
	if got, want := out, "N   SQUARE\n10  100\n11  121\n12  144\n"; got != want {
		t.Errorf("text page:\n%q\nwant\n%q", got, want)
	}
	if got, want := more, "more: add --cursor 13\n"; got != want {
		t.Errorf("text page's hint = %q, want %q", got, want)
	}

	out, _ = runList(t, l, pageFlags{limit: 2, cursor: "2498", format: "json"})
	var page struct {
		Data       []int  `json:"data"`
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || page.Data[0] != 2498 || page.NextCursor != "" {
		t.Errorf("json last page = %+v, want [2498 2499] and no cursor", page)
	}

	// CSV is an export: every page from the cursor on, whatever --limit.
	out, more = runList(t, l, pageFlags{limit: 3, cursor: "5", format: "csv"})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if got, want := len(lines), 1+2495; got != want {
		t.Errorf("csv has %d lines, want %d (header and items 5..2499 over three pages)", got, want)
	}
	if lines[1] != "5" || lines[len(lines)-1] != "2499" || more != "" {
		t.Errorf("csv runs %s..%s (hint %q), want 5..2499 and no hint", lines[1], lines[len(lines)-1], more)
	}

	// An empty list is an empty JSON array, not null.
	l.fetch = numbers(0)
	if out, _ = runList(t, l, pageFlags{limit: 10, format: "json"}); !strings.Contains(out, `"data": []`) {
		t.Errorf("empty json page = %s, want an empty data array", out)
	}
}
