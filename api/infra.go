package api

import (
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// The infrastructure inventory: pods (infra_pods.go), clusters
// (infra_clusters.go), hosts (hosts.go), primary storage pools
// (storage_pools.go), image stores (infra_imagestores.go) and listCapacity
// (capacity.go). Every command is the root admin's. Every change commits an
// event with it; the table rules in fsm/infra.go refuse rows that point at
// nothing and deletes of rows something still lives in.

// Resource types of the inventory's events.
const (
	resPod         = "Pod"
	resCluster     = "Cluster"
	resHost        = "Host"
	resStoragePool = "StoragePool"
	resImageStore  = "ImageStore"
)

// infraNames resolves, and caches for one request, the rows that inventory
// responses name beside the IDs they store.
type infraNames struct {
	st       *fsm.Store
	zones    map[string]*fsm.Zone
	pods     map[string]*fsm.Pod
	clusters map[string]*fsm.Cluster
	hosts    map[string]*fsm.Host
}

func newInfraNames(st *fsm.Store) *infraNames {
	return &infraNames{st: st, zones: map[string]*fsm.Zone{}, pods: map[string]*fsm.Pod{},
		clusters: map[string]*fsm.Cluster{}, hosts: map[string]*fsm.Host{}}
}

// cached returns the row id of table through cache, or nil.
func cached[T any](st *fsm.Store, cache map[string]*T, table, id string) *T {
	if id == "" {
		return nil
	}
	row, ok := cache[id]
	if !ok {
		row, _ = fsm.Get[T](st, nil, table, id)
		cache[id] = row
	}
	return row
}

func (n *infraNames) zoneRow(id string) *fsm.Zone { return cached(n.st, n.zones, "zones", id) }
func (n *infraNames) podRow(id string) *fsm.Pod   { return cached(n.st, n.pods, fsm.TablePods, id) }
func (n *infraNames) clusterRow(id string) *fsm.Cluster {
	return cached(n.st, n.clusters, fsm.TableClusters, id)
}
func (n *infraNames) hostRow(id string) *fsm.Host { return cached(n.st, n.hosts, fsm.TableHosts, id) }

func (n *infraNames) zone(id string) string {
	if z := n.zoneRow(id); z != nil {
		return z.Name
	}
	return ""
}

func (n *infraNames) pod(id string) string {
	if p := n.podRow(id); p != nil {
		return p.Name
	}
	return ""
}

func (n *infraNames) cluster(id string) string {
	if c := n.clusterRow(id); c != nil {
		return c.Name
	}
	return ""
}

// overcommit returns the CPU and memory ratios in force in a cluster.
func (n *infraNames) overcommit(clusterID string) (cpu, mem float64) {
	return n.st.Overcommit(n.clusterRow(clusterID))
}

// open reports whether the zone, pod and cluster given (empty ones are
// skipped) all take new resources: none is Disabled.
func (n *infraNames) open(zoneID, podID, clusterID string) bool {
	if z := n.zoneRow(zoneID); z != nil && z.AllocationState == fsm.AllocationDisabled {
		return false
	}
	if p := n.podRow(podID); p != nil && p.AllocationState == fsm.AllocationDisabled {
		return false
	}
	if c := n.clusterRow(clusterID); c != nil && c.AllocationState == fsm.AllocationDisabled {
		return false
	}
	return true
}

// Lookups of inventory rows by a uuid parameter, with CloudStack's
// "entity does not exist" error.

func lookupPod(r *Request, param string) (*fsm.Pod, *Error) {
	return lookup[fsm.Pod](r, fsm.TablePods, param, nil)
}

func lookupCluster(r *Request, param string) (*fsm.Cluster, *Error) {
	return lookup[fsm.Cluster](r, fsm.TableClusters, param, nil)
}

func lookupHost(r *Request, param string) (*fsm.Host, *Error) {
	return lookup[fsm.Host](r, fsm.TableHosts, param, nil)
}

func lookupPool(r *Request, param string) (*fsm.StoragePool, *Error) {
	return lookup[fsm.StoragePool](r, fsm.TableStoragePools, param, nil)
}

func lookupImageStore(r *Request, param string) (*fsm.ImageStore, *Error) {
	return lookup[fsm.ImageStore](r, fsm.TableImageStores, param, nil)
}

// listRows returns every row of an inventory table, oldest first.
func listRows[T any](r *Request, table string) ([]*T, *Error) {
	rows, err := fsm.List[T](r.State(), nil, table, "create")
	if err != nil {
		return nil, ErrInternal(table + " scan failed")
	}
	return rows, nil
}

// checkFilterIDs resolves the zoneid, podid and clusterid filters of a
// list command that were sent, so an unknown ID gets CloudStack's "entity
// does not exist" error rather than an empty list.
func checkFilterIDs(r *Request) *Error {
	p := r.Params
	if given(p, "zoneid") {
		if _, e := lookupZone(r, "zoneid"); e != nil {
			return e
		}
	}
	if given(p, "podid") {
		if _, e := lookupPod(r, "podid"); e != nil {
			return e
		}
	}
	if given(p, "clusterid") {
		if _, e := lookupCluster(r, "clusterid"); e != nil {
			return e
		}
	}
	return nil
}

// podOfZone resolves podid and checks that the pod lies in the zone.
func podOfZone(r *Request, zone *fsm.Zone) (*fsm.Pod, *Error) {
	pod, e := lookupPod(r, "podid")
	if e != nil {
		return nil, e
	}
	if pod.ZoneID != zone.ID {
		return nil, ErrParam("pod %s (%s) is not in zone %s (%s): give a pod of that zone", pod.Name, pod.ID, zone.Name, zone.ID)
	}
	return pod, nil
}

// given reports whether a parameter was sent with a value; optional
// parameters sent empty count as not sent, as Params.Validate treats them.
func given(p Params, name string) bool { return strings.TrimSpace(p.String(name)) != "" }

// requiredName reads a name parameter that must not be blank.
func requiredName(p Params, param string) (string, *Error) {
	name := strings.TrimSpace(p.String(param))
	if name == "" {
		return "", ErrParam("parameter %s must not be blank", param)
	}
	return name, nil
}

// allocationParam reads an allocation state: Enabled or Disabled, and the
// verbs Enable and Disable, in any case. def is the answer when the
// parameter is absent.
func allocationParam(p Params, param, def string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	switch strings.ToLower(v) {
	case "":
		return def, nil
	case "enabled", "enable":
		return fsm.AllocationEnabled, nil
	case "disabled", "disable":
		return fsm.AllocationDisabled, nil
	}
	return "", ErrParam("invalid value %q for parameter %s: use Enabled or Disabled", v, param)
}

// hypervisorParam reads a hypervisor parameter: only KVM is managed here.
// An absent parameter is KVM too unless required.
func hypervisorParam(p Params, param string) (string, *Error) {
	v := strings.TrimSpace(p.String(param))
	if v == "" || strings.EqualFold(v, fsm.HypervisorKVM) {
		return fsm.HypervisorKVM, nil
	}
	return "", ErrParam("invalid value %q for parameter %s: this cloud manages KVM hosts only", v, param)
}

// parseIPv4 parses the value of an IPv4 address parameter.
func parseIPv4(v, param string) (netip.Addr, *Error) {
	v = strings.TrimSpace(v)
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Is4() {
		return netip.Addr{}, ErrParam("invalid value %q for parameter %s: give an IPv4 address such as 10.0.0.1", v, param)
	}
	return a, nil
}

// netmaskBits parses a dotted IPv4 netmask and returns its prefix length.
// The mask must be contiguous and leave room for at least two hosts.
func netmaskBits(v, param string) (int, *Error) {
	a, err := netip.ParseAddr(strings.TrimSpace(v))
	if err != nil || !a.Is4() {
		return 0, ErrParam("invalid value %q for parameter %s: give a dotted IPv4 netmask such as 255.255.255.0", v, param)
	}
	b := a.As4()
	m := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if inv := ^m; inv&(inv+1) != 0 {
		return 0, ErrParam("invalid value %q for parameter %s: the mask's one bits must be contiguous, as in 255.255.255.0", v, param)
	}
	bits := 32 - bitsLen(^m)
	if bits < 1 || bits > 30 {
		return 0, ErrParam("invalid value %q for parameter %s: a /%d subnet leaves no room for hosts; use a mask between /1 and /30", v, param, bits)
	}
	return bits, nil
}

func bitsLen(x uint32) int {
	n := 0
	for ; x != 0; x >>= 1 {
		n++
	}
	return n
}

// u32 is an IPv4 address as a number, for range arithmetic.
func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrOf(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}

// listParam splits a comma-separated parameter into trimmed, distinct,
// non-empty values in order.
func listParam(p Params, param string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range p.List(param) {
		if !seen[strings.ToLower(v)] {
			seen[strings.ToLower(v)] = true
			out = append(out, v)
		}
	}
	return out
}

// detailsParam flattens a details[i].key=value (or details[i].key=k,
// details[i].value=v) map parameter into one map; nil when absent.
func detailsParam(p Params, param string) map[string]string {
	groups := p.Map(param)
	if len(groups) == 0 {
		return nil
	}
	out := map[string]string{}
	for _, g := range groups {
		k, hasKey := g["key"]
		v, hasValue := g["value"]
		if hasKey && hasValue && len(g) == 2 {
			out[k] = v
			continue
		}
		for k, v := range g {
			out[k] = v
		}
	}
	return out
}

// keywordMatch reports whether kw (lower case) is empty or found in any of
// the fields, ignoring case.
func keywordMatch(kw string, fields ...string) bool {
	if kw == "" {
		return true
	}
	for _, f := range fields {
		if strings.Contains(strings.ToLower(f), kw) {
			return true
		}
	}
	return false
}

// eqFold reports whether a filter value is empty or equals v ignoring case.
func eqFold(filter, v string) bool { return filter == "" || strings.EqualFold(filter, v) }

// formatRatio writes a ratio as CloudStack shows them: "1.0", "2.5".
func formatRatio(f float64) string {
	if f == math.Trunc(f) {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// formatDecimal writes a figure with at most two decimals, as CloudStack's
// "#.##" format does.
func formatDecimal(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "0"
	}
	return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

// percentOf is used/total*100 in the "#.##" format; 0 when total is 0.
func percentOf(used, total float64) string {
	if total <= 0 {
		return "0"
	}
	return formatDecimal(used / total * 100)
}

// pagedList answers a list command: the page asked for of items.
func pagedList[T any](r *Request, item string, items []T) (any, *Error) {
	start, limit, e := r.Params.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	return ListBody(item, len(items), Paginate(items, start, limit)), nil
}
