package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// The example file documents every setting with its default: loading it
// must give exactly Default().
func TestExampleFileIsTheDefaults(t *testing.T) {
	got, err := Load("../../config.example.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("config.example.toml differs from Default():\n got %+v\nwant %+v", got, want)
	}
}

// Every setting appears in the example file (a missing one would silently
// load as its default above).
func TestExampleFileListsEverySetting(t *testing.T) {
	b, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	root := reflect.TypeOf(Config{})
	for i := 0; i < root.NumField(); i++ {
		sec := root.Field(i)
		section := sec.Tag.Get("toml")
		if !strings.Contains(text, "["+section+"]") {
			t.Errorf("section [%s] missing", section)
		}
		for j := 0; j < sec.Type.NumField(); j++ {
			key := sec.Type.Field(j).Tag.Get("toml")
			if !strings.Contains(text, "\n"+key+" = ") {
				t.Errorf("setting %s.%s missing", section, key)
			}
		}
	}
}
