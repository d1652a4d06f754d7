package placement

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// InsufficientCapacityError says why no host of a zone can take a VM, in
// words an operator can act on. It matches ErrInsufficientCapacity.
type InsufficientCapacityError struct {
	ZoneID string
	// Need is what the VM asked for: "4 CPUs x 2000 MHz and 8192 MiB".
	Need string
	// Reasons count the hosts turned down for each reason, in the order the
	// checks run: "3 hosts are not Up", "1 is disabled", ...
	Reasons []string
	// Storage says which volumes found no pool on the hosts that had room
	// for the VM itself.
	Storage []string
	zone    string // the zone's name, or its ID
}

func (e *InsufficientCapacityError) Error() string {
	var b strings.Builder
	b.WriteString("no host in zone " + e.zone + " can take " + e.Need)
	if len(e.Reasons) > 0 {
		b.WriteString(": " + strings.Join(e.Reasons, ", "))
	}
	for _, s := range e.Storage {
		b.WriteString("; " + s)
	}
	b.WriteString("; add capacity or relax the offering")
	return b.String()
}

// Is makes errors.Is(err, ErrInsufficientCapacity) hold.
func (e *InsufficientCapacityError) Is(target error) bool { return target == ErrInsufficientCapacity }

// zoneError is ErrUnknownZone with the zone's ID.
type zoneError struct{ id string }

func (e *zoneError) Error() string        { return "placement: zone " + e.id + " does not exist" }
func (e *zoneError) Is(target error) bool { return target == ErrUnknownZone }

// tally counts the hosts turned down, by reason.
type tally struct {
	counts   map[tallyKey]int
	maxFree  map[kind]int64 // shortCPU, shortMemory: the most any such host had
	crowded  map[int]int    // noPool: hosts per volume where only the VM's other volumes were in the way
	suitable int            // hosts that passed every check
	compute  int            // hosts that passed every check but storage, and suitable ones
}

type tallyKey struct {
	kind kind
	idx  int
}

func (t *tally) add(v verdict) {
	if t.counts == nil {
		t.counts, t.maxFree, t.crowded = map[tallyKey]int{}, map[kind]int64{}, map[int]int{}
	}
	k := tallyKey{kind: v.kind}
	switch v.kind {
	case missingTag, noPool, poolUnreachable:
		k.idx = v.idx
	case shortCPU, shortMemory:
		if f, ok := t.maxFree[v.kind]; !ok || v.free > f {
			t.maxFree[v.kind] = v.free
		}
	}
	if v.kind >= noPool {
		t.compute++
		if v.crowded {
			t.crowded[v.idx]++
		}
	}
	t.counts[k]++
}

// insufficient turns the tally of a failed Place into its error.
func (e *evaluator) insufficient(t *tally, hosts int) *InsufficientCapacityError {
	t.compute += t.suitable
	err := &InsufficientCapacityError{ZoneID: e.req.ZoneID, Need: e.need(), zone: e.zoneName}
	if hosts == 0 {
		err.Reasons = []string{"the zone has no hosts"}
		return err
	}
	keys := slices.SortedFunc(maps.Keys(t.counts), func(a, b tallyKey) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.idx, b.idx))
	})
	for _, k := range keys {
		n := t.counts[k]
		if k.kind >= noPool {
			err.Storage = append(err.Storage, e.storageClause(k, n, t))
			continue
		}
		verb := e.phrase(verdict{kind: k.kind, idx: k.idx, free: t.maxFree[k.kind]}, n)
		if len(err.Reasons) == 0 {
			err.Reasons = append(err.Reasons, fmt.Sprintf("%d %s %s", n, plural(n, "host", "hosts"), verb))
		} else {
			err.Reasons = append(err.Reasons, fmt.Sprintf("%d %s", n, verb))
		}
	}
	return err
}

// need describes the request: "4 CPUs x 2000 MHz, 8192 MiB and 50 GiB of
// primary storage".
func (e *evaluator) need() string {
	r := e.req
	cpu := fmt.Sprintf("%d %s x %d MHz", r.CPUs, plural(r.CPUs, "CPU", "CPUs"), r.CPUMHz)
	if e.newBytes > 0 {
		return cpu + ", " + mib(r.MemoryBytes) + " and " + size(e.newBytes) + " of primary storage"
	}
	return cpu + " and " + mib(r.MemoryBytes)
}

// phrase is the predicate of a host reason for n hosts: "is not Up", "lack
// host tag ssd". With n == 1 and the host's own figures it also serves as
// a Candidate's reason.
func (e *evaluator) phrase(v verdict, n int) string {
	one := n == 1
	be := plural(n, "is", "are")
	r := e.req
	switch v.kind {
	case outsidePod:
		return be + " outside pod " + r.PodID
	case outsideCluster:
		return be + " outside cluster " + r.ClusterID
	case notRequested:
		return be + " not the requested host " + r.HostID
	case avoided:
		return be + " avoided (it failed this VM before or is its current host)"
	case antiAffine:
		return be + " excluded by anti-affinity"
	case notAffine:
		return be + " outside the VM's host affinity"
	case notUp:
		return be + " not Up"
	case disabled:
		return be + " disabled"
	case maintenance:
		return be + " in maintenance"
	case notEnabled:
		return be + " not in resource state Enabled"
	case zoneClosed:
		return be + " in disabled zone " + e.zoneName
	case podClosed:
		return be + " in a disabled pod"
	case podUnknown:
		return be + " in an unknown pod"
	case clusterClosed:
		return be + " in a disabled cluster"
	case clusterUnknown:
		return be + " in an unknown cluster"
	case missingTag:
		return plural(n, "lacks", "lack") + " host tag " + e.hostTags[v.idx]
	case shortCPU:
		return plural(n, "has only ", "have at most ") + mhz(v.free) + " of CPU free"
	case shortMemory:
		return plural(n, "has only ", "have at most ") + mib(v.free) + " of memory free"
	}
	if one {
		return "fits"
	}
	return "fit"
}

// storageClause says, for n hosts, which volume found no pool.
func (e *evaluator) storageClause(k tallyKey, n int, t *tally) string {
	from := "any suitable host"
	if n < t.compute {
		from = fmt.Sprintf("%d of the %d suitable hosts", n, t.compute)
	}
	return e.storageReason(k.kind, k.idx, from, t.crowded[k.idx] == n)
}

// storageReason says that volume idx found no pool on the hosts from
// names.
func (e *evaluator) storageReason(kd kind, idx int, from string, crowded bool) string {
	v := e.req.Volumes[idx]
	if kd == poolUnreachable {
		if p := e.pools.byID[v.PoolID]; p != nil {
			return fmt.Sprintf("pool %s of volume %s is not reachable from %s", cmp.Or(p.Name, p.ID), v.ID, from)
		}
		return fmt.Sprintf("pool %s of volume %s is not in zone %s", v.PoolID, v.ID, e.zoneName)
	}
	var b strings.Builder
	if v.Local {
		b.WriteString("no local storage pool of " + from)
	} else {
		b.WriteString("no primary storage pool reachable from " + from)
	}
	b.WriteString(" has " + size(v.SizeBytes) + " free")
	if tags := fold(v.StorageTags); len(tags) > 0 {
		b.WriteString(" with " + plural(len(tags), "tag ", "tags ") + strings.Join(tags, ", "))
	}
	if len(e.req.Volumes) > 1 {
		b.WriteString(" for volume " + v.ID)
		if crowded {
			b.WriteString(" besides the VM's other volumes")
		}
	}
	return b.String()
}

// reason is a Candidate's reason for one host.
func (e *evaluator) reason(v verdict, h *fsm.Host) string {
	switch v.kind {
	case noPool, poolUnreachable:
		return e.storageReason(v.kind, v.idx, "the host", v.crowded)
	case notUp:
		return "host is not Up (" + cmp.Or(v.state, "no state") + ")"
	case maintenance, notEnabled:
		return "host " + e.phrase(v, 1) + " (" + cmp.Or(v.state, "no state") + ")"
	case shortCPU:
		return "host " + e.phrase(v, 1) + ", the VM needs " + mhz(e.needCPU)
	case shortMemory:
		return "host " + e.phrase(v, 1) + ", the VM needs " + mib(e.req.MemoryBytes)
	case podClosed, podUnknown:
		return "host " + e.phrase(v, 1) + " (" + h.PodID + ")"
	case clusterClosed, clusterUnknown:
		return "host " + e.phrase(v, 1) + " (" + h.ClusterID + ")"
	}
	return "host " + e.phrase(v, 1)
}

func plural[T any](n int, one, many T) T {
	if n == 1 {
		return one
	}
	return many
}

const (
	miB = 1 << 20
	giB = 1 << 30
)

func mhz(v int64) string { return strconv.FormatInt(max(v, 0), 10) + " MHz" }

// mib writes bytes in MiB, as offerings state memory.
func mib(b int64) string {
	b = max(b, 0)
	if b%miB == 0 {
		return strconv.FormatInt(b/miB, 10) + " MiB"
	}
	return trim(float64(b)/miB) + " MiB"
}

// size writes a storage size in GiB, or MiB below one GiB.
func size(b int64) string {
	if b < giB {
		return mib(b)
	}
	return trim(float64(b)/giB) + " GiB"
}

func trim(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
