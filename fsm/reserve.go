package fsm

import (
	"fmt"
	"math"
	"strconv"

	memdb "github.com/hashicorp/go-memdb"
)

// Capacity reservations. Placing a VM adds its CPU and memory to its
// host's allocated figures and its volumes' sizes to their pools'. Those
// rows are shared by every placement on them, so a compare-and-set update
// of the whole row would make concurrent placements refuse each other; a
// reserve op instead adds its amounts inside the applier, after checking,
// in log order, that the row still has room. Two placements racing for
// the last capacity of a host can never both commit, and placements that
// fit commit together.

// VerbReserve adds Amounts to a host's or pool's allocated figures:
// positive amounts must fit the row's capacity (with its overcommit),
// negative ones give capacity back and never go below zero.
const VerbReserve = "reserve"

// Amount names of reserve ops.
const (
	AmountCPU    = "cpu_mhz"      // hosts
	AmountMemory = "memory_bytes" // hosts
	AmountBytes  = "bytes"        // storage pools
)

// ReserveHost returns an op that adds cpuMHz and memBytes to a host's
// allocation (negative values release them).
func ReserveHost(hostID string, cpuMHz, memBytes int64) TxnOp {
	return TxnOp{Verb: VerbReserve, Table: TableHosts, ID: hostID, Amounts: map[string]int64{AmountCPU: cpuMHz, AmountMemory: memBytes}}
}

// ReservePool returns an op that adds bytes to a storage pool's
// allocation (negative values release them).
func ReservePool(poolID string, bytes int64) TxnOp {
	return TxnOp{Verb: VerbReserve, Table: TableStoragePools, ID: poolID, Amounts: map[string]int64{AmountBytes: bytes}}
}

// ScaleCapacity multiplies a capacity by a ratio and rounds down, so
// rounding never hands out more than exists. A product within a few
// float64 steps of a whole number is taken as that number: 100 x 0.29
// computes as 28.999999999999996 but means 29. A ratio of 0 or less reads
// as 1. The allocator and the reserve applier both use it, so what one
// plans the other accepts.
func ScaleCapacity(total int64, ratio float64) int64 {
	if ratio <= 0 || ratio == 1 {
		return total
	}
	f := float64(total) * ratio
	if r := math.Round(f); math.Abs(f-r) <= 4*(math.Nextafter(math.Abs(f), math.Inf(1))-math.Abs(f)) {
		f = r
	}
	f = math.Floor(f)
	if f >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(f)
}

// applyReserve carries out a reserve op on a copy of the row.
func applyReserve(txn *memdb.Txn, index uint64, def *TableDef, existing Object, op TxnOp) error {
	grow := func(cur *int64, delta int64, limit int64, what string) error {
		next := *cur + delta
		if delta > 0 && next > limit {
			return stateErr(KindStale, "%s %s has no room left for this: %s would be %d of %d; plan again",
				def.Noun, existing.GetID(), what, next, limit)
		}
		*cur = max(0, next)
		return nil
	}
	switch h := existing.(type) {
	case *Host:
		if (op.Amounts[AmountCPU] > 0 || op.Amounts[AmountMemory] > 0) && h.State != HostStateUp {
			// Planned while the host was Up; it is not any more.
			return stateErr(KindStale, "host %s is %s, so it takes no new VMs; plan again", h.ID, h.State)
		}
		c := h.Copy()
		cpuRatio, memRatio, err := overcommitTxn(txn, c.ClusterID)
		if err != nil {
			return err
		}
		if err := grow(&c.CPUAllocated, op.Amounts[AmountCPU], ScaleCapacity(int64(c.CPUNumber)*c.CPUSpeed, cpuRatio), "CPU allocated (MHz)"); err != nil {
			return err
		}
		if err := grow(&c.MemoryAllocated, op.Amounts[AmountMemory], ScaleCapacity(c.MemoryTotal, memRatio), "memory allocated (bytes)"); err != nil {
			return err
		}
		return insert(txn, def.Name, c.GetIndexes(), h.GetIndexes(), index, c)
	case *StoragePool:
		c := h.Copy()
		if err := grow(&c.AllocatedBytes, op.Amounts[AmountBytes], ScaleCapacity(c.CapacityBytes, c.OverprovisionRatio()), "bytes allocated"); err != nil {
			return err
		}
		return insert(txn, def.Name, c.GetIndexes(), h.GetIndexes(), index, c)
	}
	return stateErr(KindInvalid, "%s rows hold no capacity to reserve", def.Noun)
}

// overcommitTxn is Store.Overcommit read inside a write transaction.
func overcommitTxn(txn *memdb.Txn, clusterID string) (cpu, mem float64, err error) {
	ratio := func(name string) (float64, error) {
		v, _ := LookupSettingDef(name)
		value := v.Default
		o, err := first[Setting](txn, nil, tableSettings, "id", name)
		if err != nil {
			return 0, err
		}
		if o != nil {
			value = o.Value
		}
		if r, err := strconv.ParseFloat(value, 64); err == nil && r > 0 {
			return r, nil
		}
		return 1, nil
	}
	if cpu, err = ratio(SettingCPUOvercommit); err != nil {
		return 0, 0, fmt.Errorf("overcommit setting: %w", err)
	}
	if mem, err = ratio(SettingMemoryOvercommit); err != nil {
		return 0, 0, fmt.Errorf("overcommit setting: %w", err)
	}
	if clusterID == "" {
		return cpu, mem, nil
	}
	c, err := first[Cluster](txn, nil, TableClusters, "id", clusterID)
	if err != nil {
		return 0, 0, fmt.Errorf("cluster %s: %w", clusterID, err)
	}
	if c != nil && c.CPUOvercommit > 0 {
		cpu = c.CPUOvercommit
	}
	if c != nil && c.MemoryOvercommit > 0 {
		mem = c.MemoryOvercommit
	}
	return cpu, mem, nil
}
