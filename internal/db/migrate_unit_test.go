package db

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseMigrationName(t *testing.T) {
	tests := []struct {
		file    string
		version int
		ok      bool
		wantErr bool
	}{
		{"0001_foundation.sql", 1, true, false},
		{"0042_usage_by_day.sql", 42, true, false},
		{"12345_big.sql", 12345, true, false},
		{"README.md", 0, false, false},
		{".gitkeep", 0, false, false},
		{"1_short.sql", 0, false, true},
		{"0001.sql", 0, false, true},
		{"0001-dash.sql", 0, false, true},
		{"abcd_name.sql", 0, false, true},
		{"0000_zero.sql", 0, false, true},
	}
	for _, tt := range tests {
		version, ok, err := parseMigrationName(tt.file)
		if (err != nil) != tt.wantErr || version != tt.version || ok != tt.ok {
			t.Errorf("parseMigrationName(%q) = %d, %v, %v; want %d, %v, error %v", tt.file, version, ok, err, tt.version, tt.ok, tt.wantErr)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_b.sql":  {Data: []byte("B")},
		"m/0002_a.sql":  {Data: []byte("A")},
		"m/README.md":   {Data: []byte("ignored")},
		"m/sub/0001.sq": {Data: []byte("ignored")},
	}
	got, err := loadMigrations(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	want := []Migration{{Version: 2, Name: "0002_a.sql", SQL: "A"}, {Version: 10, Name: "0010_b.sql", SQL: "B"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	if got, err := loadMigrations(fsys, "missing"); err != nil || got != nil {
		t.Errorf("missing dir: got %v, %v; want nothing", got, err)
	}

	fsys["m/0002_dup.sql"] = &fstest.MapFile{Data: []byte("C")}
	if _, err := loadMigrations(fsys, "m"); err == nil || !strings.Contains(err.Error(), "same version 2") {
		t.Errorf("duplicate version: got %v, want an error naming version 2", err)
	}

	fsys["m/2_bad.sql"] = &fstest.MapFile{Data: []byte("C")}
	if _, err := loadMigrations(fsys, "m"); err == nil {
		t.Error("badly named file: got no error")
	}
}

func TestEmbeddedMigrationsLoad(t *testing.T) {
	for _, dir := range []string{"migrations/postgres", "migrations/clickhouse"} {
		ms, err := loadMigrations(migrationFiles, dir)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		if dir == "migrations/clickhouse" {
			for _, m := range ms {
				if err := checkClickHouseStatements(splitStatements(m.SQL)); err != nil {
					t.Errorf("%s: %v", m.Name, err)
				}
			}
		}
	}
}

func TestPendingMigrations(t *testing.T) {
	all := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	tests := []struct {
		applied map[int]bool
		want    []int
	}{
		{nil, []int{1, 2, 3}},
		{map[int]bool{1: true}, []int{2, 3}},
		{map[int]bool{2: true}, []int{1, 3}}, // a gap is filled (a merged branch)
		{map[int]bool{1: true, 2: true, 3: true, 4: true}, nil},
	}
	for _, tt := range tests {
		var got []int
		for _, m := range pendingMigrations(all, tt.applied) {
			got = append(got, m.Version)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("pendingMigrations(applied %v) = %v, want %v", tt.applied, got, tt.want)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		name string
		sql  string
		want []string
	}{
		{"empty", "", nil},
		{"only comments", "-- a\n  -- b;\n\n", nil},
		{"one without semicolon", "SELECT 1", []string{"SELECT 1"}},
		{"two", "CREATE TABLE a (x UInt8)\nENGINE = Memory;\n\nCREATE TABLE b (y UInt8) ENGINE = Memory;\n",
			[]string{"CREATE TABLE a (x UInt8)\nENGINE = Memory", "CREATE TABLE b (y UInt8) ENGINE = Memory"}},
		{"semicolon inside a line does not split", "SELECT ';' AS s, 1;\n", []string{"SELECT ';' AS s, 1"}},
		{"trailing spaces and CRLF", "SELECT 1;  \r\nSELECT 2;\r\n", []string{"SELECT 1", "SELECT 2"}},
		{"comment lines dropped, even ending in ;", "-- header;\nCREATE TABLE t (\n  -- the id;\n  id UInt64\n) ENGINE = Memory;",
			[]string{"CREATE TABLE t (\n  id UInt64\n) ENGINE = Memory"}},
		{"empty statements dropped", ";\n;\nSELECT 1;\n", []string{"SELECT 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitStatements(tt.sql); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("splitStatements(%q) = %q, want %q", tt.sql, got, tt.want)
			}
		})
	}
}

func TestCheckClickHouseStatements(t *testing.T) {
	tests := []struct {
		stmt string
		ok   bool
	}{
		{"CREATE TABLE t (x UInt8) ENGINE = Memory", true},
		{"INSERT INTO t (x) SELECT 1", true},
		{"INSERT INTO t (x) VALUES (1)", false},
		{"insert into t (x)\nvalues (1), (2)", false},
	}
	for _, tt := range tests {
		if err := checkClickHouseStatements([]string{tt.stmt}); (err == nil) != tt.ok {
			t.Errorf("checkClickHouseStatements(%q) = %v, want ok %v", tt.stmt, err, tt.ok)
		}
	}
}

func TestQuoteCHIdent(t *testing.T) {
	tests := map[string]string{"db": "`db`", "a`b": "`a\\`b`", `a\b`: "`a\\\\b`"}
	for in, want := range tests {
		if got := quoteCHIdent(in); got != want {
			t.Errorf("quoteCHIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
