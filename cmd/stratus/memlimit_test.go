package main

import (
	"strings"
	"testing"
	"time"
)

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

// TestGCPercentFlag checks what a server refuses at start: a percent Go
// would not take, and no percent without a memory limit.
func TestGCPercentFlag(t *testing.T) {
	t.Setenv("STRATUS_CLUSTER_SECRET", "0123456789abcdef0123")
	base := []string{"-data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		want int
		err  string
	}{
		{nil, 0, ""},
		{[]string{"-gc-percent", "300"}, 300, ""},
		{[]string{"-gc-percent", "-1", "-memory-limit", "3GiB"}, -1, ""},
		{[]string{"-gc-percent", "-1"}, 0, "needs -memory-limit"},
		{[]string{"-gc-percent", "-5", "-memory-limit", "3GiB"}, 0, "-gc-percent -5"},
	} {
		f, err := parseServerFlags(append(append([]string{}, base...), tc.args...))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case f.gcPercent != tc.want:
			t.Errorf("%v: gc percent %d, want %d", tc.args, f.gcPercent, tc.want)
		}
	}
	t.Setenv("STRATUS_GC_PERCENT", "200")
	if f, err := parseServerFlags(base); err != nil || f.gcPercent != 200 {
		t.Errorf("STRATUS_GC_PERCENT=200: percent %v, %v", f, err)
	}
}

// -raft-gather-window 0 turns gathering off (cluster.Config reads 0 as
// its default), and a window passes through as given.
func TestGatherWindowFlag(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: -1, -time.Millisecond: -1, 3 * time.Millisecond: 3 * time.Millisecond} {
		if got := gatherWindow(in); got != want {
			t.Errorf("gatherWindow(%s) = %s, want %s", in, got, want)
		}
	}
}
