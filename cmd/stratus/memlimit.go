package main

import (
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// The server's soft memory limit (-memory-limit). Go's collector normally
// lets the heap grow to twice what is live before it collects; the store of
// 100,000 VMs alone is about 2.1 GB live, which would then reach twice
// that. With a limit the collector runs more often as the heap nears it,
// trading CPU for staying under it (docs/deploy.md sizes it). It is soft:
// live data beyond it is not refused, the collector just works harder (Go
// caps that at about half the CPU). GOMEMLIMIT in the environment works
// too; the flag wins.

// parseByteSize reads a size such as 3GiB, 3500MiB, 2G or 1073741824.
// Units are binary (KiB, MiB, GiB, TiB; K, M, G, T mean the same); "" and
// "0" mean no limit.
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"T", 40}, {"G", 30}, {"M", 20}, {"K", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: use a number with KiB, MiB, GiB or TiB, such as 3GiB", s)
	}
	v := n * float64(uint64(1)<<shift)
	if v >= 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// applyMemoryLimit sets the runtime's soft memory limit, when one is given.
func applyMemoryLimit(limit int64, logger hclog.Logger) {
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit)
	logger.Info("soft memory limit set", "bytes", limit, "mib", limit>>20)
}

// checkGCPercent refuses a -gc-percent the runtime would not take, and -1
// (no percent) without a memory limit, which would let the heap grow until
// the machine runs out.
func checkGCPercent(pct int, limit int64) error {
	switch {
	case pct < -1:
		return fmt.Errorf("-gc-percent %d: use a percent above 0 (such as 300), -1 for none, or 0 for Go's default", pct)
	case pct == -1 && limit <= 0:
		return fmt.Errorf("-gc-percent -1 needs -memory-limit: without either the heap would grow until the machine runs out of memory")
	}
	return nil
}

// applyGCPercent sets the collector's percent (GOGC), when one is given.
// Below the memory limit it decides how often the collector runs: on a
// server whose live heap is mostly the store, the default 100 marks the
// whole store again each time the heap has grown by as much again.
func applyGCPercent(pct int, logger hclog.Logger) {
	if pct == 0 {
		return
	}
	prev := debug.SetGCPercent(pct)
	logger.Info("garbage collector percent set", "percent", pct, "was", prev)
}
