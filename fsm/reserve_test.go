package fsm

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReserveHostAndPool(t *testing.T) {
	f := computeFixture(t) // host h-1 in cluster c-1 (CPU overcommit 2, memory 1.5), pool sp-1
	h := testHost("h-2", "z-1", "p-1", "c-1", "10.0.0.6")
	h.CPUNumber, h.CPUSpeed, h.MemoryTotal = 4, 1000, 8<<30 // 8000 MHz and 12 GiB with the cluster's ratios
	h.State = HostStateUp
	p := testPool("sp-2", "z-1", "p-1", "c-1", "pri2")
	p.CapacityBytes, p.Overprovision = 100<<30, 2 // 200 GiB allocatable
	if err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableHosts, h), Create(TableStoragePools, p)}}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		op      TxnOp
		wantErr string
		cpu     int64
		mem     int64
		bytes   int64
	}{
		{"fits", ReserveHost("h-2", 6000, 10<<30), "", 6000, 10 << 30, 0},
		{"exactly full", ReserveHost("h-2", 2000, 2<<30), "", 8000, 12 << 30, 0},
		{"one MHz too many", ReserveHost("h-2", 1, 0), "no room left", 8000, 12 << 30, 0},
		{"one byte too many", ReserveHost("h-2", 0, 1), "memory allocated", 8000, 12 << 30, 0},
		{"release more than held clamps at zero", ReserveHost("h-2", -9000, -20<<30), "", 0, 0, 0},
		{"pool fits its overprovisioning", ReservePool("sp-2", 200<<30), "", 0, 0, 200 << 30},
		{"pool full", ReservePool("sp-2", 1), "bytes allocated", 0, 0, 200 << 30},
		{"pool release", ReservePool("sp-2", -50<<30), "", 0, 0, 150 << 30},
	}
	for i, s := range steps {
		err := apply(t, f, uint64(20+i), TxnRequestType, TxnRequest{Ops: []TxnOp{s.op}})
		switch {
		case s.wantErr == "" && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.wantErr != "" && (!errors.Is(err, ErrStale) || !strings.Contains(err.Error(), s.wantErr)):
			t.Fatalf("%s: err = %v, want stale with %q", s.name, err, s.wantErr)
		}
		got, _ := Get[Host](f.State(), nil, TableHosts, "h-2")
		pool, _ := Get[StoragePool](f.State(), nil, TableStoragePools, "sp-2")
		if got.CPUAllocated != s.cpu || got.MemoryAllocated != s.mem || pool.AllocatedBytes != s.bytes {
			t.Fatalf("%s: host %d MHz %d bytes, pool %d bytes; want %d, %d, %d", s.name, got.CPUAllocated, got.MemoryAllocated,
				pool.AllocatedBytes, s.cpu, s.mem, s.bytes)
		}
	}
	// A failed reservation undoes the whole transaction.
	err := apply(t, f, 40, TxnRequestType, TxnRequest{Ops: []TxnOp{ReservePool("sp-2", 10<<30), ReserveHost("h-2", 9000, 0)}})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("over-reservation in a transaction: %v", err)
	}
	if pool, _ := Get[StoragePool](f.State(), nil, TableStoragePools, "sp-2"); pool.AllocatedBytes != 150<<30 {
		t.Fatalf("pool changed by a refused transaction: %d", pool.AllocatedBytes)
	}
	if err := apply(t, f, 41, TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-missing", 1, 1)}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reserve on a missing host: %v", err)
	}
	if err := apply(t, f, 42, TxnRequestType, TxnRequest{Ops: []TxnOp{{Verb: VerbReserve, Table: TablePods, ID: "p-1"}}}); err == nil {
		t.Fatal("reserve on a pod succeeded")
	}
}

func TestLeaseTimingsStayConsistent(t *testing.T) {
	f := seeded(t)
	set := func(i uint64, name, value string) {
		if err := apply(t, f, i, ConfigSetRequestType, ConfigSetRequest{Setting: Setting{Name: name, Value: value}}); err != nil {
			t.Fatal(err)
		}
	}
	if iv, ttl, m := f.State().LeaseTimings(); iv != 2*time.Second || ttl != 10*time.Second || m != 4*time.Second {
		t.Fatalf("defaults = %s %s %s", iv, ttl, m)
	}
	// A lease no longer than the interval, and no margin: corrected, so the
	// agent's lease and the leader's deadline are counted the same way.
	set(10, SettingHeartbeatInterval, "2")
	set(11, SettingLeaseTTL, "2")
	set(12, SettingLeaseMargin, "0")
	if iv, ttl, m := f.State().LeaseTimings(); iv != 2*time.Second || ttl != 10*time.Second || m != time.Second {
		t.Fatalf("corrected = %s %s %s, want 2s 10s 1s", iv, ttl, m)
	}
}

func TestReserveRefusesAHostThatIsNotUp(t *testing.T) {
	f := computeFixture(t) // h-1 is Disconnected
	err := apply(t, f, 10, TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-1", 100, 1<<20)}})
	if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "takes no new VMs") {
		t.Fatalf("reserve on a Disconnected host: %v", err)
	}
	// Giving capacity back works whatever the host's state.
	if err := apply(t, f, 11, TxnRequestType, TxnRequest{Ops: []TxnOp{ReserveHost("h-1", -100, 0)}}); err != nil {
		t.Fatalf("release on a Disconnected host: %v", err)
	}
}
