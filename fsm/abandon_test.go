package fsm

import (
	"bytes"
	"io"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// TestRestoreWakesWaitersOfTheOldStore: a restore swaps the store whole,
// so watches on the old one would never fire again; waiters must wake.
func TestRestoreWakesWaitersOfTheOldStore(t *testing.T) {
	f := seeded(t)
	old := f.State()
	ws := memdb.NewWatchSet()
	if _, err := old.Zone(ws, "z-none"); err != nil {
		t.Fatal(err)
	}
	changed := old.Changed(ws, time.Minute)
	var buf bytes.Buffer
	if err := NewStore().WriteSnapshot(&buf, 7); err != nil {
		t.Fatal(err)
	}
	if err := f.Restore(io.NopCloser(&buf)); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan struct{}{"Changed": changed, "Abandoned": old.Abandoned()} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s of the old store did not fire after a restore", name)
		}
	}
	if f.State() == old {
		t.Fatal("the store was not replaced")
	}
}
