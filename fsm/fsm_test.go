package fsm

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// makeLog builds the raft.Log a leader would commit for a command.
func makeLog(t *testing.T, index uint64, typ MessageType, skippable bool, body any) *raft.Log {
	t.Helper()
	data, err := Encode(typ, skippable, body)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func apply(t *testing.T, f *FSM, index uint64, typ MessageType, body any) error {
	t.Helper()
	resp := f.Apply(makeLog(t, index, typ, false, body))
	if resp == nil {
		return nil
	}
	err, ok := resp.(*StateError)
	if !ok {
		t.Fatalf("apply %s: response %T is not a *StateError", typ, resp)
	}
	return err
}

var testTime = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func testBootstrap() *BootstrapRequest {
	return &BootstrapRequest{
		Meta:    Meta{ClusterID: "c0ffee00-0000-4000-8000-000000000000", Created: testTime, AdminUserID: "u-admin"},
		Domain:  Domain{ID: "d-root", Name: "ROOT", Path: "ROOT", Created: testTime},
		Account: Account{ID: "a-admin", Name: "admin", DomainID: "d-root", Type: AccountTypeAdmin, RoleType: "Admin", State: StateEnabled, Created: testTime},
		User:    User{ID: "u-admin", AccountID: "a-admin", DomainID: "d-root", Username: "admin", State: StateEnabled, APIKey: "key", SecretKey: "secret", Created: testTime},
	}
}

func testZone(id, name string) Zone {
	return Zone{ID: id, Name: name, NetworkType: "Advanced", AllocationState: AllocationEnabled, DNS1: "8.8.8.8", InternalDNS1: "10.0.0.1", ZoneToken: "tok-" + id, Details: map[string]string{"k": "v"}, Created: testTime}
}

func TestApplyBootstrap(t *testing.T) {
	f := New(nil)
	if err := apply(t, f, 1, BootstrapRequestType, testBootstrap()); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	s := f.State()
	meta, err := s.Meta(nil)
	if err != nil || meta == nil || meta.ClusterID != testBootstrap().Meta.ClusterID || meta.CreateIndex != 1 {
		t.Fatalf("meta = %+v, %v", meta, err)
	}
	u, err := s.UserByAPIKey(nil, "key")
	if err != nil || u == nil || u.Username != "admin" || u.SecretKey != "secret" {
		t.Fatalf("user by key = %+v, %v", u, err)
	}
	if d, _ := s.Domain(nil, "d-root"); d == nil || d.Path != "ROOT" {
		t.Fatalf("root domain = %+v", d)
	}
	if a, _ := s.Account(nil, "a-admin"); a == nil || a.Type != AccountTypeAdmin {
		t.Fatalf("admin account = %+v", a)
	}
	// A second bootstrap (another leader racing the first) changes nothing.
	second := testBootstrap()
	second.User.APIKey = "other"
	if err := apply(t, f, 2, BootstrapRequestType, second); !errors.Is(err, ErrAlreadyInitialized) {
		t.Fatalf("second bootstrap: err = %v, want ErrAlreadyInitialized", err)
	}
	if u, _ := s.UserByAPIKey(nil, "other"); u != nil {
		t.Fatalf("second bootstrap replaced the admin's key")
	}
	if f.AppliedIndex() != 2 {
		t.Fatalf("applied index = %d, want 2", f.AppliedIndex())
	}
}

func TestApplyZoneLifecycle(t *testing.T) {
	f := New(nil)
	z := testZone("z1", "alpha")
	if err := apply(t, f, 5, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: z, Create: true}); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, _ := f.State().Zone(nil, "z1")
	if got == nil || got.Name != "alpha" || got.CreateIndex != 5 || got.ModifyIndex != 5 || got.Details["k"] != "v" {
		t.Fatalf("created zone = %+v", got)
	}
	// Same ID again as a create: conflict.
	if err := apply(t, f, 6, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: z, Create: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	// Another zone with the same name, in another case: conflict.
	if err := apply(t, f, 7, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: testZone("z2", "ALPHA"), Create: true}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	// Update keeps CreateIndex, moves ModifyIndex.
	upd := *got.Copy()
	upd.Name = "alpha-2"
	upd.AllocationState = AllocationDisabled
	if err := apply(t, f, 8, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: upd}); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, _ = f.State().Zone(nil, "z1")
	if got.Name != "alpha-2" || got.AllocationState != AllocationDisabled || got.CreateIndex != 5 || got.ModifyIndex != 8 {
		t.Fatalf("updated zone = %+v", got)
	}
	if old, _ := f.State().ZoneByName(nil, "alpha"); old != nil {
		t.Fatalf("old name still indexed")
	}
	// Update of a missing zone: not found.
	if err := apply(t, f, 9, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: testZone("nope", "x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	if err := apply(t, f, 10, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: testZone("z3", "beta"), Create: true}); err != nil {
		t.Fatalf("create z3: %v", err)
	}
	zones, _ := f.State().Zones(nil)
	if len(zones) != 2 || zones[0].ID != "z1" || zones[1].ID != "z3" {
		t.Fatalf("zones not oldest first: %v", zones)
	}
	if err := apply(t, f, 11, ZoneDeleteRequestType, DeleteRequest{ID: "z1"}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := apply(t, f, 12, ZoneDeleteRequestType, DeleteRequest{ID: "z1"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if z, _ := f.State().Zone(nil, "z1"); z != nil {
		t.Fatalf("deleted zone still there")
	}
}

func TestApplyConfigSet(t *testing.T) {
	f := New(nil)
	if got := f.State().SettingInt(SettingDefaultPageSize); got != 500 {
		t.Fatalf("default page size = %d", got)
	}
	req := ConfigSetRequest{Setting: Setting{Name: SettingDefaultPageSize, Value: "42", Updated: testTime}}
	if err := apply(t, f, 3, ConfigSetRequestType, req); err != nil {
		t.Fatalf("set: %v", err)
	}
	if got := f.State().SettingInt(SettingDefaultPageSize); got != 42 {
		t.Fatalf("page size after set = %d", got)
	}
	req.Setting.Value = "7"
	_ = apply(t, f, 4, ConfigSetRequestType, req)
	o, _ := f.State().SettingOverride(nil, SettingDefaultPageSize)
	if o.Value != "7" || o.CreateIndex != 3 || o.ModifyIndex != 4 {
		t.Fatalf("override = %+v", o)
	}
}

func TestApplyUserKeysSet(t *testing.T) {
	f := New(nil)
	_ = apply(t, f, 1, BootstrapRequestType, testBootstrap())
	if err := apply(t, f, 2, UserKeysSetRequestType, UserKeysSetRequest{UserID: "u-admin", APIKey: "k2", SecretKey: "s2"}); err != nil {
		t.Fatalf("set keys: %v", err)
	}
	if u, _ := f.State().UserByAPIKey(nil, "key"); u != nil {
		t.Fatalf("old key still resolves")
	}
	if u, _ := f.State().UserByAPIKey(nil, "k2"); u == nil || u.SecretKey != "s2" {
		t.Fatalf("new key = %+v", u)
	}
	if err := apply(t, f, 3, UserKeysSetRequestType, UserKeysSetRequest{UserID: "missing", APIKey: "k3"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
}

func TestApplyNoop(t *testing.T) {
	f := New(nil)
	if err := apply(t, f, 1, NoopRequestType, struct{}{}); err != nil {
		t.Fatalf("noop: %v", err)
	}
	if f.AppliedIndex() != 1 {
		t.Fatalf("applied = %d", f.AppliedIndex())
	}
}

func TestUnknownTypeWithSkipFlagIsSkipped(t *testing.T) {
	f := New(nil)
	const future MessageType = 0x7e
	if resp := f.Apply(makeLog(t, 9, future, true, map[string]string{"x": "y"})); resp != nil {
		t.Fatalf("skippable unknown type returned %v", resp)
	}
	if f.AppliedIndex() != 9 {
		t.Fatalf("applied index = %d, want 9 after a skipped entry", f.AppliedIndex())
	}
}

func TestUnknownTypeWithoutSkipFlagIsRefused(t *testing.T) {
	f := New(nil)
	const future MessageType = 0x7e
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), ErrUnknownType.Error()) {
			t.Fatalf("recover() = %v, want a panic naming %v", r, ErrUnknownType)
		}
	}()
	f.Apply(makeLog(t, 9, future, false, map[string]string{"x": "y"}))
}

func TestNewerSchemaVersionIsRefused(t *testing.T) {
	f := New(nil)
	data, _ := EncodeVersion(ZoneUpsertRequestType, false, CommandVersion+1, ZoneUpsertRequest{Zone: testZone("z", "z"), Create: true})
	defer func() {
		if recover() == nil {
			t.Fatalf("a newer schema version was applied")
		}
	}()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data})
}

func TestEnvelopeRoundTrip(t *testing.T) {
	data, err := Encode(ZoneDeleteRequestType, true, DeleteRequest{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelope(data)
	if err != nil || env.Type != ZoneDeleteRequestType || !env.Skip || env.Version != BaseCommandVersion || string(env.Body) != `{"id":"x"}` {
		t.Fatalf("envelope = %+v, %v", env, err)
	}
	if _, err := DecodeEnvelope([]byte{1}); !errors.Is(err, ErrShortEntry) {
		t.Fatalf("short entry: %v", err)
	}
}

func TestWaitForIndex(t *testing.T) {
	f := New(nil)
	done := make(chan error, 1)
	go func() { done <- f.WaitForIndex(context.Background(), 3) }()
	for i := uint64(1); i <= 3; i++ {
		_ = apply(t, f, i, NoopRequestType, struct{}{})
	}
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitForIndex(ctx, 4); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

// fullState fills every table, so the round trip covers them all.
func fullState(t *testing.T) *FSM {
	f := New(nil)
	_ = apply(t, f, 1, BootstrapRequestType, testBootstrap())
	_ = apply(t, f, 2, ConfigSetRequestType, ConfigSetRequest{Setting: Setting{Name: SettingDefaultPageSize, Value: "9", Updated: testTime}})
	for i, name := range []string{"a", "b", "c"} {
		if err := apply(t, f, uint64(3+i), ZoneUpsertRequestType, ZoneUpsertRequest{Zone: testZone("z-"+name, name), Create: true}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { m.cancelled = true; return nil }
func (m *memSink) Close() error  { return nil }

func TestSnapshotRoundTripEveryTable(t *testing.T) {
	src := fullState(t)
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A write after the snapshot was taken must not leak into it.
	_ = apply(t, src, 10, ZoneUpsertRequestType, ZoneUpsertRequest{Zone: testZone("z-late", "late"), Create: true})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	dst := New(nil)
	if err := dst.Restore(ioNopCloser{&sink.Buffer}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if dst.AppliedIndex() != 5 {
		t.Fatalf("restored applied index = %d, want 5", dst.AppliedIndex())
	}
	s, d := src.State(), dst.State()
	check := func(name string, a, b any, errA, errB error) {
		t.Helper()
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v %v", name, errA, errB)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s differ after restore:\n src %#v\n dst %#v", name, a, b)
		}
	}
	m1, e1 := s.Meta(nil)
	m2, e2 := d.Meta(nil)
	check("meta", m1, m2, e1, e2)
	st1, e1 := s.Settings(nil)
	st2, e2 := d.Settings(nil)
	check("settings", st1, st2, e1, e2)
	do1, e1 := s.Domains(nil)
	do2, e2 := d.Domains(nil)
	check("domains", do1, do2, e1, e2)
	a1, e1 := s.Accounts(nil)
	a2, e2 := d.Accounts(nil)
	check("accounts", a1, a2, e1, e2)
	u1, e1 := s.Users(nil)
	u2, e2 := d.Users(nil)
	check("users", u1, u2, e1, e2)
	z2, e2 := d.Zones(nil)
	if e2 != nil || len(z2) != 3 {
		t.Fatalf("restored zones = %v, %v (want the 3 from before the snapshot)", z2, e2)
	}
	for _, z := range z2 {
		orig, _ := s.Zone(nil, z.ID)
		check("zone "+z.ID, orig, z, nil, nil)
	}
	// The restored store's indexes work: lookups by secondary index.
	if u, _ := d.UserByAPIKey(nil, "key"); u == nil {
		t.Fatalf("api key index not restored")
	}
	if z, _ := d.ZoneByName(nil, "B"); z == nil || z.ID != "z-b" {
		t.Fatalf("zone name index not restored")
	}
}

func TestRestoreRejectsGarbageAndFutureFormats(t *testing.T) {
	f := New(nil)
	if err := f.Restore(ioNopCloser{strings.NewReader("not a snapshot")}); !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("garbage: %v", err)
	}
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	w := bufioWriter(&buf)
	_ = writeFrame(w, []byte(`{"format_version":99}`))
	_ = w.Flush()
	if err := f.Restore(ioNopCloser{&buf}); !errors.Is(err, ErrSnapshotFormat) {
		t.Fatalf("future format: %v", err)
	}
	// An unknown record type without the skip flag is refused; with it, skipped.
	for _, tc := range []struct {
		typ     byte
		wantErr bool
	}{{0x40, true}, {0xc0, false}} {
		var b bytes.Buffer
		if err := NewStore().WriteSnapshot(&b, 1); err != nil {
			t.Fatal(err)
		}
		w := bufioWriter(&b)
		_ = w.WriteByte(tc.typ)
		_ = writeFrame(w, []byte(`{}`))
		_ = w.Flush()
		err := New(nil).Restore(ioNopCloser{&b})
		if (err != nil) != tc.wantErr {
			t.Fatalf("record type %#x: err = %v, wantErr %v", tc.typ, err, tc.wantErr)
		}
	}
}
