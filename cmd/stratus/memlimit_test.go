package main

import "testing"

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{
		"": 0, "0": 0, "1024": 1024, "3GiB": 3 << 30, "3 GiB": 3 << 30, "3500MiB": 3500 << 20, "2G": 2 << 30,
		"1.5GiB": 3 << 29, "512KiB": 512 << 10, "1TiB": 1 << 40, "100B": 100,
	}
	for in, want := range good {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"lots", "-1GiB", "3GB?", "GiB", "1e30TiB"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
}
