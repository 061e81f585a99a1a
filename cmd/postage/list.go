package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"postage/billing"
	"postage/reports"
)

// pageFlags are a list command's paging flags: --limit, --cursor and, for
// lists with an export, --format.
type pageFlags struct {
	limit  int
	cursor string
	format string // text, json or csv; text when the command has no --format
}

// register adds the flags to cmd; withFormat adds --format (text, json, csv).
func (p *pageFlags) register(cmd *cobra.Command, withFormat bool) {
	fl := cmd.Flags()
	fl.IntVar(&p.limit, "limit", 100, "page size, 1-1000")
	fl.StringVar(&p.cursor, "cursor", "", "continue from a previous page")
	p.format = "text"
	if withFormat {
		fl.StringVar(&p.format, "format", "text", "text, json, or csv (csv exports every page)")
	}
}

// check refuses a --format the lists do not write.
func (p pageFlags) check() error { return checkFormat(p.format, "text", "json", "csv") }

// pageList is how every paged list command prints: one page as a text table
// or as the API's JSON ({"data", "next_cursor"}), or, as CSV, every page from
// the cursor on (a CSV is an export). A text page that is not the last ends
// with "more: add --cursor C" on standard error.
type pageList[T any] struct {
	fetch  func(limit int, cursor string) ([]T, string, error)
	header string                     // the text table's columns, separated by \t
	row    func(T) []any              // one text row: a value per column
	csv    func(io.Writer, []T) error // writes every page as CSV
}

// tableCSV is a CSV writer for pageList.csv from a function that makes the
// rows.
func tableCSV[T any](table func([]T) reports.Table) func(io.Writer, []T) error {
	return func(w io.Writer, list []T) error { return table(list).WriteCSV(w) }
}

func (l pageList[T]) write(cmd *cobra.Command, p pageFlags) error {
	out := cmd.OutOrStdout()
	if p.format == "csv" {
		all, err := l.everyPage(p.cursor)
		if err != nil {
			return err
		}
		return l.csv(out, all)
	}
	list, next, err := l.fetch(p.limit, p.cursor)
	if err != nil {
		return err
	}
	if p.format == "json" {
		if list == nil {
			list = []T{}
		}
		return invoiceJSON(out, map[string]any{"data": list, "next_cursor": next})
	}
	if err := writeTextTable(out, l.header, l.row, list); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "more: add --cursor %s\n", next)
	}
	return nil
}

// writeTextTable writes list as a table of aligned columns under header
// (columns separated by \t), a row of values per element.
func writeTextTable[T any](w io.Writer, header string, row func(T) []any, list []T) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	cols := make([]string, 0, strings.Count(header, "\t")+1)
	for _, v := range list {
		cols = cols[:0]
		for _, c := range row(v) {
			cols = append(cols, fmt.Sprint(c))
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// everyPage reads every page from cursor on, in pages of the largest size
// (1000, the largest a Page allows).
func (l pageList[T]) everyPage(cursor string) ([]T, error) {
	var all []T
	for {
		list, next, err := l.fetch(1000, cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, list...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

// showFlags are a show command's flags: --format (text, json, csv, pdf)
// and -o FILE.
type showFlags struct {
	format string
	output string
}

func (s *showFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.format, "format", "text", "text, json, csv or pdf")
	cmd.Flags().StringVarP(&s.output, "output", "o", "", "write to this file instead of standard output")
}

// check refuses a format the documents do not come in, and a PDF to a
// terminal.
func (s showFlags) check() error {
	if err := checkFormat(s.format, "text", "json", "csv", "pdf"); err != nil {
		return err
	}
	if s.format == "pdf" && s.output == "" {
		return usageError{fmt.Errorf("--format pdf needs -o FILE")}
	}
	return nil
}

// write writes one document in the chosen format to -o or standard output:
// v as JSON, the CSV or PDF that doc returns (the same bytes the API
// serves), or text.
func (s showFlags) write(cmd *cobra.Command, v any, doc func(billing.Format) ([]byte, error), text func(io.Writer) error) (err error) {
	var out io.Writer = cmd.OutOrStdout()
	if s.output != "" {
		f, err := os.Create(s.output)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		out = f
	}
	switch s.format {
	case "json":
		return invoiceJSON(out, v)
	case "csv", "pdf":
		b, err := doc(billing.Format(s.format))
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	}
	return text(out)
}
