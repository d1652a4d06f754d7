package api

import (
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Primary storage pools, where VM volumes live. Three kinds:
//   - NFS, shared by a cluster or a zone: nfs://<server>/<export>;
//   - a shared mount point, a filesystem every host of a cluster (or zone)
//     mounts at the same path: sharedmountpoint:///<path>;
//   - a host's local disk (scope host): file://<host>/<path>, the host named
//     by address, name or ID among the cluster's hosts.
// Capacity is what the operator declares in capacitybytes until a later
// part measures pools; it is 0 when not given.

// defaultPrimaryProvider is the only primary storage provider.
const defaultPrimaryProvider = "DefaultPrimary"

type storagePoolResponse struct {
	ID                  string            `json:"id"`
	Name                string            `json:"name"`
	ZoneID              string            `json:"zoneid"`
	ZoneName            string            `json:"zonename"`
	PodID               string            `json:"podid,omitempty"`
	PodName             string            `json:"podname,omitempty"`
	ClusterID           string            `json:"clusterid,omitempty"`
	ClusterName         string            `json:"clustername,omitempty"`
	IPAddress           string            `json:"ipaddress"`
	Path                string            `json:"path"`
	Type                string            `json:"type"`
	Scope               string            `json:"scope"`
	State               string            `json:"state"`
	Hypervisor          string            `json:"hypervisor"`
	Provider            string            `json:"provider"`
	Created             string            `json:"created"`
	DiskSizeTotal       int64             `json:"disksizetotal"`
	DiskSizeAllocated   int64             `json:"disksizeallocated"`
	DiskSizeUsed        int64             `json:"disksizeused"`
	CapacityIOPS        int64             `json:"capacityiops,omitempty"`
	OverprovisionFactor string            `json:"overprovisionfactor"`
	Tags                string            `json:"tags,omitempty"`
	StorageCapabilities map[string]string `json:"storagecapabilities"`
	HasAnnotations      bool              `json:"hasannotations"`
}

var storagePoolFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Storage pool ID."},
	ResponseField{Name: "name", Type: "string", Description: "Storage pool name."},
	ResponseField{Name: "zoneid", Type: "string", Description: "ID of the pool's zone."},
	ResponseField{Name: "zonename", Type: "string", Description: "Name of the pool's zone."},
	ResponseField{Name: "podid", Type: "string", Description: "ID of the pool's pod, for cluster and host pools."},
	ResponseField{Name: "podname", Type: "string", Description: "Name of that pod."},
	ResponseField{Name: "clusterid", Type: "string", Description: "ID of the pool's cluster, for cluster and host pools."},
	ResponseField{Name: "clustername", Type: "string", Description: "Name of that cluster."},
	ResponseField{Name: "ipaddress", Type: "string", Description: "Server of an NFS pool; the host of a local pool."},
	ResponseField{Name: "path", Type: "string", Description: "Export or mount path of the pool."},
	ResponseField{Name: "type", Type: "string", Description: "NetworkFilesystem, SharedMountPoint or Filesystem (local disk)."},
	ResponseField{Name: "scope", Type: "string", Description: "Who shares the pool: CLUSTER, ZONE, or HOST for local storage."},
	ResponseField{Name: "state", Type: "storagepoolstatus", Description: "Up, or Disabled while new volumes may not go there."},
	ResponseField{Name: "hypervisor", Type: "string", Description: "Hypervisor of the hosts using the pool: KVM."},
	ResponseField{Name: "provider", Type: "string", Description: "Storage provider: DefaultPrimary."},
	ResponseField{Name: "created", Type: "date", Description: "When the pool was added."},
	ResponseField{Name: "disksizetotal", Type: "long", Description: "Size of the pool in bytes."},
	ResponseField{Name: "disksizeallocated", Type: "long", Description: "Bytes handed out to volumes."},
	ResponseField{Name: "disksizeused", Type: "long", Description: "Bytes in use as last measured."},
	ResponseField{Name: "capacityiops", Type: "long", Description: "IOPS the pool can provide, if declared."},
	ResponseField{Name: "overprovisionfactor", Type: "string", Description: "How many times its size the pool may hand out to thin volumes."},
	ResponseField{Name: "tags", Type: "string", Description: "The pool's tags, comma separated; disk offerings with storage tags only go to pools with them."},
	ResponseField{Name: "storagecapabilities", Type: "map", Description: "What the pool's driver can do."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on the pool."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "createStoragePool", Description: "Adds a primary storage pool: NFS (nfs://server/export), a shared mount point (sharedmountpoint:///path) or a host's local disk (file://host/path).",
				Write: true, Access: AccessRootAdmin, ObjectName: "storagepool", Related: "listStoragePools", Response: storagePoolFields,
				Params: []ParamSpec{
					{Name: "zoneid", Type: "uuid", Required: true, Description: "Zone of the pool.", Related: "listZones"},
					{Name: "name", Type: "string", Required: true, Description: "Name of the pool; unique in its zone."},
					{Name: "url", Type: "string", Required: true, Description: "Where the pool is: nfs://server/export, sharedmountpoint:///path or file://host/path."},
					{Name: "scope", Type: "string", Description: "cluster (the default) or zone; host for a host's local disk (the default for file://)."},
					{Name: "podid", Type: "uuid", Description: "Pod of a cluster or host pool; the cluster's when absent.", Related: "listPods"},
					{Name: "clusterid", Type: "uuid", Description: "Cluster of a cluster or host pool.", Related: "listClusters"},
					{Name: "hypervisor", Type: "string", Description: "Hypervisor of the hosts that use the pool: KVM."},
					{Name: "tags", Type: "string", Description: "Tags of the pool, comma separated."},
					{Name: "capacitybytes", Type: "long", Description: "Size of the pool in bytes."},
					{Name: "capacityiops", Type: "long", Description: "IOPS the pool can provide."},
					{Name: "provider", Type: "string", Description: "Storage provider: DefaultPrimary."},
					{Name: "managed", Type: "boolean", Description: "Must be false: storage managed through a vendor driver is not supported."},
					{Name: "details", Type: "map", Description: "Extra key/value details of the pool."},
				},
				Handler: createStoragePool,
			},
			{
				Name: "updateStoragePool", Description: "Renames a pool, changes its tags or declared capacity, or enables or disables it for new volumes.",
				Write: true, Access: AccessRootAdmin, ObjectName: "storagepool", Related: "listStoragePools", Response: storagePoolFields,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the pool.", Related: "listStoragePools"},
					{Name: "name", Type: "string", Description: "New name; unique in the zone."},
					{Name: "tags", Type: "list", Description: "New tags, comma separated; empty removes them all."},
					{Name: "enabled", Type: "boolean", Description: "false stops new volumes going to the pool; true lets them again."},
					{Name: "capacitybytes", Type: "long", Description: "New size of the pool in bytes; not below what is allocated."},
					{Name: "capacityiops", Type: "long", Description: "New IOPS the pool can provide."},
				},
				Handler: updateStoragePool,
			},
			{
				Name: "deleteStoragePool", Description: "Deletes a storage pool that holds no volumes any more.",
				Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params: []ParamSpec{
					{Name: "id", Type: "uuid", Required: true, Description: "ID of the pool.", Related: "listStoragePools"},
					{Name: "forced", Type: "boolean", Description: "Accepted for compatibility: volumes on the pool always prevent its deletion."},
				},
				Handler: deleteStoragePool,
			},
			{
				Name: "listStoragePools", Description: "Lists primary storage pools, oldest first.", Access: AccessRootAdmin,
				ObjectName: "storagepool", Related: "createStoragePool", Response: storagePoolFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the pool with this ID.", Related: "listStoragePools"},
					ParamSpec{Name: "name", Type: "string", Description: "Only pools with this name."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only pools of this zone.", Related: "listZones"},
					ParamSpec{Name: "podid", Type: "uuid", Description: "Only pools of this pod.", Related: "listPods"},
					ParamSpec{Name: "clusterid", Type: "uuid", Description: "Only pools of this cluster.", Related: "listClusters"},
					ParamSpec{Name: "scope", Type: "string", Description: "Only pools of this scope: cluster, zone or host."},
					ParamSpec{Name: "ipaddress", Type: "string", Description: "Only pools on this server."},
					ParamSpec{Name: "path", Type: "string", Description: "Only pools with this path."},
				),
				Handler: listStoragePools,
			},
		}
	})
}

func toStoragePoolResponse(n *infraNames, sp *fsm.StoragePool) storagePoolResponse {
	return storagePoolResponse{
		ID: sp.ID, Name: sp.Name, ZoneID: sp.ZoneID, ZoneName: n.zone(sp.ZoneID), PodID: sp.PodID, PodName: n.pod(sp.PodID),
		ClusterID: sp.ClusterID, ClusterName: n.cluster(sp.ClusterID), IPAddress: sp.Host, Path: sp.Path, Type: sp.Type,
		Scope: sp.Scope, State: sp.State, Hypervisor: sp.Hypervisor, Provider: sp.Provider, Created: FormatTime(sp.Created),
		DiskSizeTotal: sp.CapacityBytes, DiskSizeAllocated: sp.AllocatedBytes, DiskSizeUsed: sp.UsedBytes,
		CapacityIOPS: sp.CapacityIOPS, OverprovisionFactor: formatRatio(sp.OverprovisionRatio()), Tags: strings.Join(sp.Tags, ","),
		StorageCapabilities: map[string]string{"VOLUME_SNAPSHOT_QUIESCEVM": "false"},
	}
}

// poolLocation is a parsed storage pool url.
type poolLocation struct {
	typ  string // fsm.PoolType*
	host string // server, or the host reference of a local pool
	port int
	path string
}

func (l poolLocation) url() string {
	switch l.typ {
	case fsm.PoolTypeNFS:
		h := hostForURL(l.host)
		if l.port != 0 {
			h += ":" + strconv.Itoa(l.port)
		}
		return "nfs://" + h + l.path
	case fsm.PoolTypeSharedMountPoint:
		return "SharedMountPoint://" + l.host + l.path
	}
	return "file://" + hostForURL(l.host) + l.path
}

// poolURLForms are the url forms createStoragePool takes.
const poolURLForms = "nfs://<server>/<export>, sharedmountpoint:///<path> or file://<host>/<path>"

// parsePoolURL reads a storage url: createStoragePool's, or an image
// store's. forms says, in an error, which forms the caller takes.
func parsePoolURL(raw, forms string) (poolLocation, *Error) {
	poolURLError := func(raw, why string) *Error {
		return ErrParam("invalid value %q for parameter url: %s; give %s", raw, why, forms)
	}
	v := strings.TrimSpace(raw)
	if !strings.Contains(v, "://") {
		return poolLocation{}, poolURLError(raw, "it has no scheme")
	}
	u, err := url.Parse(v)
	if err != nil {
		return poolLocation{}, poolURLError(raw, "it does not parse as a URL")
	}
	var loc poolLocation
	switch strings.ToLower(u.Scheme) {
	case "nfs":
		loc.typ = fsm.PoolTypeNFS
	case "sharedmountpoint":
		loc.typ = fsm.PoolTypeSharedMountPoint
	case "file", "local":
		loc.typ = fsm.PoolTypeFilesystem
	default:
		return poolLocation{}, poolURLError(raw, "scheme "+u.Scheme+" is not supported")
	}
	if u.User != nil {
		return poolLocation{}, poolURLError(raw, "it carries credentials, which no supported scheme uses")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return poolLocation{}, poolURLError(raw, "it has a query or fragment")
	}
	loc.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || loc.typ != fsm.PoolTypeNFS {
			return poolLocation{}, poolURLError(raw, "port "+p+" is not valid here")
		}
		loc.port = n
	}
	if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
		return poolLocation{}, poolURLError(raw, "the path is missing")
	}
	loc.path = path.Clean(u.Path)
	switch loc.typ {
	case fsm.PoolTypeNFS:
		if loc.host == "" {
			return poolLocation{}, poolURLError(raw, "the NFS server is missing")
		}
		if a, err := netip.ParseAddr(loc.host); err == nil {
			loc.host = a.String()
		} else if !validHostname(loc.host) {
			return poolLocation{}, poolURLError(raw, "the NFS server "+loc.host+" is neither an IP address nor a DNS name")
		}
	case fsm.PoolTypeSharedMountPoint:
		if loc.host == "" {
			loc.host = "localhost"
		}
	case fsm.PoolTypeFilesystem:
		if loc.host == "" {
			return poolLocation{}, poolURLError(raw, "the host whose disk it is is missing")
		}
	}
	return loc, nil
}

// poolScope reads the scope parameter against the url's kind.
func poolScope(p Params, loc poolLocation) (string, *Error) {
	scope := strings.ToUpper(strings.TrimSpace(p.String("scope")))
	switch scope {
	case "":
		if loc.typ == fsm.PoolTypeFilesystem {
			return fsm.ScopeHost, nil
		}
		return fsm.ScopeCluster, nil
	case fsm.ScopeCluster, fsm.ScopeZone, fsm.ScopeHost:
	default:
		return "", ErrParam("invalid value %q for parameter scope: use cluster or zone (host for a host's local disk)", p.String("scope"))
	}
	if (scope == fsm.ScopeHost) != (loc.typ == fsm.PoolTypeFilesystem) {
		return "", ErrParam("scope %s does not fit url %s: a host's local disk is file://<host>/<path> with scope host; shared storage has scope cluster or zone",
			strings.ToLower(scope), p.String("url"))
	}
	return scope, nil
}

// poolPlacement resolves the pod, cluster and host of a new pool.
func poolPlacement(r *Request, zone *fsm.Zone, scope string, loc *poolLocation, sp *fsm.StoragePool) *Error {
	p := r.Params
	if scope == fsm.ScopeZone {
		if given(p, "podid") || given(p, "clusterid") {
			return ErrParam("a zone-wide pool belongs to no pod or cluster: leave podid and clusterid out")
		}
		return nil
	}
	if !given(p, "clusterid") {
		return ErrParam("a %s-scope pool needs parameter clusterid (give scope=zone for a zone-wide pool)", strings.ToLower(scope))
	}
	c, e := lookupCluster(r, "clusterid")
	if e != nil {
		return e
	}
	if c.ZoneID != zone.ID {
		return ErrParam("cluster %s is not in zone %s", c.Name, zone.Name)
	}
	if given(p, "podid") {
		pod, e := podOfZone(r, zone)
		if e != nil {
			return e
		}
		if pod.ID != c.PodID {
			return ErrParam("cluster %s is not in pod %s", c.Name, pod.Name)
		}
	}
	sp.PodID, sp.ClusterID = c.PodID, c.ID
	if scope != fsm.ScopeHost {
		return nil
	}
	hosts, err := fsm.List[fsm.Host](r.State(), nil, fsm.TableHosts, "cluster", c.ID)
	if err != nil {
		return ErrInternal("host scan failed")
	}
	for _, h := range hosts {
		if strings.EqualFold(h.IPAddress, loc.host) || strings.EqualFold(h.Name, loc.host) || strings.EqualFold(h.ID, loc.host) {
			sp.HostID, loc.host = h.ID, h.IPAddress
			return nil
		}
	}
	return ErrParam("invalid value %q for parameter url: cluster %s has no host %q; name the host by its address, name or ID", p.String("url"), c.Name, loc.host)
}

// checkPoolLocationFree fails when the zone has a pool at the same place.
func checkPoolLocationFree(r *Request, sp *fsm.StoragePool) *Error {
	pools, err := fsm.List[fsm.StoragePool](r.State(), nil, fsm.TableStoragePools, "zone", sp.ZoneID)
	if err != nil {
		return ErrInternal("storage pool scan failed")
	}
	for _, o := range pools {
		same := o.Type == sp.Type && strings.EqualFold(o.Host, sp.Host) && o.Path == sp.Path && o.Port == sp.Port
		if same && sp.Type == fsm.PoolTypeSharedMountPoint {
			same = o.ClusterID == sp.ClusterID // each cluster mounts its own
		}
		if same && sp.Type == fsm.PoolTypeFilesystem {
			same = o.HostID == sp.HostID
		}
		if same {
			return ErrParam("storage %s is already pool %s (%s) in this zone", sp.URL, o.Name, o.ID)
		}
	}
	return nil
}

func createStoragePool(r *Request) (any, *Error) {
	p := r.Params
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	name, e := requiredName(p, "name")
	if e != nil {
		return nil, e
	}
	loc, e := parsePoolURL(p.String("url"), poolURLForms)
	if e != nil {
		return nil, e
	}
	scope, e := poolScope(p, loc)
	if e != nil {
		return nil, e
	}
	hv, e := hypervisorParam(p, "hypervisor")
	if e != nil {
		return nil, e
	}
	if v := strings.TrimSpace(p.String("provider")); v != "" && !strings.EqualFold(v, defaultPrimaryProvider) {
		return nil, ErrParam("invalid value %q for parameter provider: the only primary storage provider is %s", v, defaultPrimaryProvider)
	}
	if managed, e := p.Bool("managed", false); e != nil {
		return nil, e
	} else if managed {
		return nil, ErrParam("managed storage is not supported: leave managed out or false")
	}
	capBytes, e := nonNegative(p, "capacitybytes")
	if e != nil {
		return nil, e
	}
	capIOPS, e := nonNegative(p, "capacityiops")
	if e != nil {
		return nil, e
	}
	sp := &fsm.StoragePool{
		ID: newID(), Name: name, ZoneID: zone.ID, Scope: scope, Type: loc.typ, Port: loc.port, Path: loc.path,
		Hypervisor: hv, Provider: defaultPrimaryProvider, Tags: listParam(p, "tags"), CapacityBytes: capBytes,
		CapacityIOPS: capIOPS, State: fsm.PoolStateUp, Details: detailsParam(p, "details"), Created: r.srv.now().UTC(),
	}
	if e := poolPlacement(r, zone, scope, &loc, sp); e != nil {
		return nil, e
	}
	sp.Host, sp.URL = loc.host, loc.url()
	if e := checkPoolLocationFree(r, sp); e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Create(fsm.TableStoragePools, sp),
		r.event("CREATE.PS", resStoragePool, sp.ID, "added storage pool %s (%s) in zone %s", sp.Name, sp.URL, zone.Name)); e != nil {
		return nil, e
	}
	return storagePoolBody(r, sp.ID)
}

// nonNegative reads a long parameter that may not be negative; 0 if absent.
func nonNegative(p Params, param string) (int64, *Error) {
	v, e := p.Int64(param, 0)
	if e != nil {
		return 0, e
	}
	if v < 0 {
		return 0, ErrParam("invalid value %d for parameter %s: it may not be negative", v, param)
	}
	return v, nil
}

// storagePoolBody answers with the stored pool, as committed.
func storagePoolBody(r *Request, id string) (any, *Error) {
	sp, e := readBack[fsm.StoragePool](r, fsm.TableStoragePools, id)
	if e != nil {
		return nil, e
	}
	return map[string]any{"storagepool": toStoragePoolResponse(newInfraNames(r.State()), sp)}, nil
}

func updateStoragePool(r *Request) (any, *Error) {
	p := r.Params
	cur, e := lookupPool(r, "id")
	if e != nil {
		return nil, e
	}
	sp := cur.Copy()
	evType := "UPDATE.PS"
	if given(p, "name") {
		if sp.Name, e = requiredName(p, "name"); e != nil {
			return nil, e
		}
	}
	if p.Has("tags") {
		sp.Tags = listParam(p, "tags")
	}
	if given(p, "enabled") {
		enabled, e := p.Bool("enabled", true)
		if e != nil {
			return nil, e
		}
		switch {
		case enabled && cur.State == fsm.PoolStateDisabled:
			sp.State, evType = fsm.PoolStateUp, "ENABLE.PS"
		case !enabled && cur.State == fsm.PoolStateUp:
			sp.State, evType = fsm.PoolStateDisabled, "DISABLE.PS"
		}
	}
	if given(p, "capacitybytes") {
		if sp.CapacityBytes, e = nonNegative(p, "capacitybytes"); e != nil {
			return nil, e
		}
		if sp.CapacityBytes < cur.AllocatedBytes {
			return nil, ErrParam("capacitybytes %d is below the %d bytes already allocated to volumes on pool %s", sp.CapacityBytes, cur.AllocatedBytes, cur.Name)
		}
	}
	if given(p, "capacityiops") {
		if sp.CapacityIOPS, e = nonNegative(p, "capacityiops"); e != nil {
			return nil, e
		}
	}
	if e := r.commit(fsm.Update(fsm.TableStoragePools, sp), r.event(evType, resStoragePool, sp.ID, "updated storage pool %s", sp.Name)); e != nil {
		return nil, e
	}
	return storagePoolBody(r, sp.ID)
}

func deleteStoragePool(r *Request) (any, *Error) {
	sp, e := lookupPool(r, "id")
	if e != nil {
		return nil, e
	}
	if _, e := r.Params.Bool("forced", false); e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Delete(fsm.TableStoragePools, sp.ID), r.event("DELETE.PS", resStoragePool, sp.ID, "deleted storage pool %s", sp.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}

func listStoragePools(r *Request) (any, *Error) {
	p := r.Params
	var pools []*fsm.StoragePool
	var e *Error
	if given(p, "id") {
		sp, e := lookupPool(r, "id")
		if e != nil {
			return nil, e
		}
		pools = []*fsm.StoragePool{sp}
	} else if pools, e = listRows[fsm.StoragePool](r, fsm.TableStoragePools); e != nil {
		return nil, e
	}
	if e := checkFilterIDs(r); e != nil {
		return nil, e
	}
	zoneID, podID, clusterID := strings.ToLower(p.String("zoneid")), strings.ToLower(p.String("podid")), strings.ToLower(p.String("clusterid"))
	name, kw, pth := p.String("name"), strings.ToLower(p.String("keyword")), strings.TrimSpace(p.String("path"))
	n := newInfraNames(r.State())
	var out []storagePoolResponse
	for _, sp := range pools {
		if (zoneID != "" && sp.ZoneID != zoneID) || (podID != "" && sp.PodID != podID) || (clusterID != "" && sp.ClusterID != clusterID) ||
			(name != "" && !strings.EqualFold(sp.Name, name)) || !eqFold(p.String("scope"), sp.Scope) ||
			!eqFold(strings.TrimSpace(p.String("ipaddress")), sp.Host) || (pth != "" && path.Clean(pth) != sp.Path) ||
			!keywordMatch(kw, sp.Name) {
			continue
		}
		out = append(out, toStoragePoolResponse(n, sp))
	}
	return pagedList(r, "storagepool", out)
}
