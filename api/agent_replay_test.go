package api

import (
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	var g replayGuard
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if !g.fresh("h-1", "n1", t0) || !g.fresh("h-1", "n2", t0.Add(-10*time.Second)) {
		t.Fatal("new nonces refused")
	}
	if g.fresh("h-1", "n1", t0) {
		t.Fatal("a replayed nonce was taken")
	}
	if !g.fresh("h-2", "n1", t0) {
		t.Fatal("another host's nonce counted against this one")
	}
	if g.fresh("h-1", "n3", t0.Add(-replayTolerance-time.Second)) {
		t.Fatal("a request older than the host's newest by more than the tolerance was taken")
	}
	// The ring forgets old nonces, but by then their dates are too old.
	for i := range replayNonces + 5 {
		if !g.fresh("h-1", "x"+string(rune('a'+i%26))+time.Duration(i).String(), t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("fresh nonce %d refused", i)
		}
	}
	if g.fresh("h-1", "n1", t0) {
		t.Fatal("an old replay was taken after its nonce left the ring")
	}
}
