//go:build !linux

package cluster

import "testing"

// rssFileBytes is not measured off Linux.
func rssFileBytes(testing.TB) int64 { return 0 }

// dropFromPageCache cannot drop one file's pages off Linux: the "cold"
// open is then a warm one.
func dropFromPageCache(testing.TB, string) {}
