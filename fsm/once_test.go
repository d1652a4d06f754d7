package fsm

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func init() {
	tableSamples[tableRequests] = func() Object {
		return &AppliedRequest{ID: "r-1", Expires: 42, Index: 7, Err: &StateError{Kind: KindConflict, Msg: "dup"}}
	}
}

func onceLog(t *testing.T, index uint64, id string, at time.Time, typ MessageType, body any) *raft.Log {
	t.Helper()
	data, err := WrapOnce(id, at, typ, body)
	if err != nil {
		t.Fatal(err)
	}
	if !IsOnce(data) {
		t.Fatal("IsOnce is false for a wrapped entry")
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func TestOnceAppliesARepeatedRequestOnce(t *testing.T) {
	f := seeded(t)
	z := testZone("z1", "zone-one")
	create := TxnRequest{Ops: []TxnOp{Create(tableZones, &z)}}
	if resp := f.Apply(onceLog(t, 2, "req-1", testTime, TxnRequestType, create)); resp != nil {
		t.Fatalf("first apply: %v", resp)
	}
	// The same request committed again (a retry after an uncertain outcome)
	// answers as the first time did, and changes nothing.
	if resp := f.Apply(onceLog(t, 3, "req-1", testTime, TxnRequestType, create)); resp != nil {
		t.Fatalf("repeat: %v, want the first outcome (success)", resp)
	}
	got, _ := f.State().Zone(nil, "z1")
	if got == nil || got.ModifyIndex != 2 {
		t.Fatalf("zone after repeat = %+v, want untouched since index 2", got)
	}
	// A different request with the same body is a new request: it fails.
	resp := f.Apply(onceLog(t, 4, "req-2", testTime, TxnRequestType, create))
	if err, _ := resp.(*StateError); !errors.Is(err, ErrConflict) {
		t.Fatalf("new request creating the same zone: %v, want conflict", resp)
	}
	// And its repeat gives the same failure, remembered.
	resp = f.Apply(onceLog(t, 5, "req-2", testTime, TxnRequestType, create))
	if err, _ := resp.(*StateError); !errors.Is(err, ErrConflict) {
		t.Fatalf("repeat of a failed request: %v, want the same conflict", resp)
	}
}

func TestOnceForgetsAfterTheWindow(t *testing.T) {
	f := seeded(t)
	if resp := f.Apply(onceLog(t, 2, "old", testTime, NoopRequestType, struct{}{})); resp != nil {
		t.Fatal(resp)
	}
	if r, _ := Get[AppliedRequest](f.State(), nil, tableRequests, "old"); r == nil || r.Index != 2 {
		t.Fatalf("request not remembered: %+v", r)
	}
	later := testTime.Add(OnceWindow + time.Second)
	if resp := f.Apply(onceLog(t, 3, "new", later, NoopRequestType, struct{}{})); resp != nil {
		t.Fatal(resp)
	}
	if r, _ := Get[AppliedRequest](f.State(), nil, tableRequests, "old"); r != nil {
		t.Fatalf("request older than the window still remembered: %+v", r)
	}
	if r, _ := Get[AppliedRequest](f.State(), nil, tableRequests, "new"); r == nil {
		t.Fatal("the new request is not remembered")
	}
}

func TestOnceRefusesNesting(t *testing.T) {
	f := seeded(t)
	inner, _ := WrapOnce("inner", testTime, NoopRequestType, struct{}{})
	body, _ := json.Marshal(OnceRequest{ID: "outer", Time: testTime, Entry: inner})
	data := append([]byte{byte(OnceRequestType), 0, 1}, body...)
	resp := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
	if err, _ := resp.(*StateError); !errors.Is(err, ErrInvalid) {
		t.Fatalf("nested once: %v, want invalid", resp)
	}
}

// TestOnceRemembersTheWindowAndForgetsTheRest: over a long run of
// requests, one a second, every request of the last OnceWindow is still
// remembered, and the expired ones are forgotten as sweeps pass them, so
// the table stays near the size of the window.
func TestOnceRemembersTheWindowAndForgetsTheRest(t *testing.T) {
	f := seeded(t)
	ids := memIDs{rand.New(rand.NewPCG(1, 2))}
	const n, step = 3000, time.Second
	sent := make([]string, n)
	for i := range n {
		sent[i] = ids.next()
		if resp := f.Apply(onceLog(t, uint64(2+i), sent[i], testTime.Add(time.Duration(i)*step), NoopRequestType, struct{}{})); resp != nil {
			t.Fatal(resp)
		}
	}
	window := int(OnceWindow / step)
	for i := n - 1 - window; i < n; i++ {
		if r, _ := Get[AppliedRequest](f.State(), nil, tableRequests, sent[i]); r == nil {
			t.Fatalf("request %d of %d, inside the window, was forgotten", i, n)
		}
	}
	held, _ := f.State().Count(tableRequests, "id")
	if held > window*3/2 {
		t.Fatalf("%d requests remembered, want near the %d of the window", held, window)
	}
	t.Logf("%d requests remembered for a window of %d", held, window)
}
