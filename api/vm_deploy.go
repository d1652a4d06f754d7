package api

import (
	"maps"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// hostnameRE is an RFC 1123 host name label: what CloudStack accepts as a
// VM name.
var hostnameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

// vmSize works out a VM's CPUs, speed and memory from its offering and, for
// a customized offering, the request's details.
func vmSize(p Params, o *fsm.ServiceOffering) (cpus, speed, mem int, e *Error) {
	cpus, speed, mem = o.CPUNumber, o.CPUSpeed, o.Memory
	if !o.Customized {
		return cpus, speed, mem, nil
	}
	details := map[string]string{}
	for _, m := range p.Map("details") {
		for k, v := range m {
			details[strings.ToLower(k)] = v
		}
	}
	get := func(key string, cur int) (int, *Error) {
		raw, ok := details[strings.ToLower(key)]
		if !ok {
			if cur > 0 {
				return cur, nil
			}
			return 0, ErrParam("offering %s is customized: give details[0].%s", o.Name, key)
		}
		n, err := strconv.Atoi(raw)
		if err != nil || n <= 0 {
			return 0, ErrParam("invalid value %q for details[0].%s: give a positive whole number", raw, key)
		}
		return n, nil
	}
	if cpus, e = get("cpuNumber", cpus); e != nil {
		return
	}
	if speed, e = get("cpuSpeed", speed); e != nil {
		return
	}
	if mem, e = get("memory", mem); e != nil {
		return
	}
	if !offeringFits(true, 0, o.MinCPUNumber, o.MaxCPUNumber, cpus) {
		return 0, 0, 0, ErrParam("offering %s allows %d to %d CPUs; %d asked", o.Name, o.MinCPUNumber, o.MaxCPUNumber, cpus)
	}
	if !offeringFits(true, 0, o.MinMemory, o.MaxMemory, mem) {
		return 0, 0, 0, ErrParam("offering %s allows %d to %d MiB of memory; %d asked", o.Name, o.MinMemory, o.MaxMemory, mem)
	}
	return cpus, speed, mem, nil
}

// readyTemplate returns a template the caller may use and its size in the
// zone, or an error saying why it cannot be deployed from yet.
func readyTemplate(r *Request, zone *fsm.Zone) (*fsm.Template, int64, *Error) {
	t, e := lookupImage(r, "templateid")
	if e != nil {
		return nil, 0, e
	}
	if t.Kind != fsm.ImageKindTemplate {
		return nil, 0, ErrParam("%s is an ISO; give a template as templateid", t.Name)
	}
	copies, err := fsm.List[fsm.TemplateZone](r.State(), nil, fsm.TableTemplateZones, "template", t.ID)
	if err != nil {
		return nil, 0, ErrInternal("template copy scan failed")
	}
	state := "not registered in this zone"
	for _, c := range copies {
		if c.ZoneID != "" && c.ZoneID != zone.ID {
			continue
		}
		if c.IsReady || c.DownloadState == fsm.DownloadDownloaded {
			return t, c.Size, nil
		}
		state = c.DownloadState
		if c.ErrorText != "" {
			state += ": " + c.ErrorText
		}
	}
	return nil, 0, ErrParam("template %s is not ready in zone %s (%s); wait until listTemplates shows isready=true", t.Name, zone.Name, state)
}

// placementParams reads hostid, podid and clusterid: root admins only.
func placementParams(r *Request) (map[string]string, *Error) {
	out := map[string]string{}
	for _, c := range []struct{ param, table string }{{"hostid", fsm.TableHosts}, {"podid", fsm.TablePods}, {"clusterid", fsm.TableClusters}} {
		if !given(r.Params, c.param) {
			continue
		}
		if !r.isRootAdmin() {
			return nil, ErrPermissionDenied("only root admins may give " + c.param)
		}
		obj, err := r.State().GetObject(c.table, strings.ToLower(r.Params.String(c.param)))
		if err != nil || obj == nil {
			return nil, ErrEntityNotFound(r.Params.Cmd, c.param, r.Params.String(c.param))
		}
		out[c.param] = obj.GetID()
	}
	return out, nil
}

// keyPairsParam resolves keypair and keypairs to names of the owner's key
// pairs.
func keyPairsParam(r *Request, accountID string) ([]string, *Error) {
	names := r.Params.List("keypairs")
	if k := strings.TrimSpace(r.Params.String("keypair")); k != "" {
		names = append([]string{k}, names...)
	}
	var out []string
	for _, n := range names {
		kps, err := fsm.List[fsm.SSHKeyPair](r.State(), nil, fsm.TableSSHKeyPairs, "name", accountID, n)
		if err != nil {
			return nil, ErrInternal("key pair lookup failed")
		}
		if len(kps) == 0 {
			return nil, ErrParam("the owner has no SSH key pair named %s; create or register it first", n)
		}
		out = append(out, kps[0].Name)
	}
	return out, nil
}

// affinityParam resolves affinitygroupids and affinitygroupnames to
// groups of the owner.
func affinityParam(r *Request, accountID string) ([]string, []fsm.TxnOp, *Error) {
	var ids []string
	var checks []fsm.TxnOp
	for _, id := range r.Params.List("affinitygroupids") {
		g, err := fsm.Get[fsm.AffinityGroup](r.State(), nil, fsm.TableAffinityGroups, strings.ToLower(id))
		if err != nil || g == nil || !r.canAccess(g.AccountID, g.DomainID) {
			return nil, nil, ErrEntityNotFound(r.Params.Cmd, "affinitygroupids", id)
		}
		if g.AccountID != accountID {
			return nil, nil, ErrParam("affinity group %s belongs to another account than the VM's", g.Name)
		}
		ids, checks = append(ids, g.ID), append(checks, fsm.Check(fsm.TableAffinityGroups, g))
	}
	for _, n := range r.Params.List("affinitygroupnames") {
		gs, err := fsm.List[fsm.AffinityGroup](r.State(), nil, fsm.TableAffinityGroups, "name", accountID, n)
		if err != nil || len(gs) == 0 {
			return nil, nil, ErrParam("the owner has no affinity group named %s", n)
		}
		ids, checks = append(ids, gs[0].ID), append(checks, fsm.Check(fsm.TableAffinityGroups, gs[0]))
	}
	return ids, checks, nil
}

// requestedAddress checks an ipaddress parameter against the zone's guest
// network.
func requestedAddress(r *Request, zone *fsm.Zone) (string, *Error) {
	raw := strings.TrimSpace(r.Params.String("ipaddress"))
	if raw == "" {
		return "", nil
	}
	ip, err := netip.ParseAddr(raw)
	subnet, gw, _, nerr := scheduler.GuestNetwork(zone)
	if nerr != nil {
		return "", ErrParam("%v", nerr)
	}
	if err != nil || !subnet.Contains(ip) || ip == subnet.Addr() || ip == gw {
		return "", ErrParam("invalid value %q for parameter ipaddress: give a free address of the guest network %s other than its gateway", raw, subnet)
	}
	if n, _ := r.State().Count(fsm.TableVMs, "ip", zone.ID, ip.String()); n > 0 {
		return "", ErrParam("address %s is already used by another VM in zone %s", ip, zone.Name)
	}
	return ip.String(), nil
}

func deployVM(r *Request) (any, *Error) {
	p := r.Params
	zone, e := lookupZone(r, "zoneid")
	if e != nil {
		return nil, e
	}
	if zone.AllocationState != fsm.AllocationEnabled && !r.isRootAdmin() {
		return nil, ErrParam("zone %s is disabled for new VMs; ask an operator to enable it", zone.Name)
	}
	if e := deployNetwork(r, zone); e != nil {
		return nil, e
	}
	off, e := usableServiceOffering(r, "serviceofferingid")
	if e != nil {
		return nil, e
	}
	if len(off.ZoneIDs) > 0 && !catalogContainsFold(off.ZoneIDs, zone.ID) {
		return nil, ErrParam("service offering %s is not offered in zone %s", off.Name, zone.Name)
	}
	cpus, speed, mem, e := vmSize(p, off)
	if e != nil {
		return nil, e
	}
	tmpl, tmplSize, e := readyTemplate(r, zone)
	if e != nil {
		return nil, e
	}
	acctID, domID, e := r.owner()
	if e != nil {
		return nil, e
	}
	startVM, e := p.Bool("startvm", true)
	if e != nil {
		return nil, e
	}
	params, e := placementParams(r)
	if e != nil {
		return nil, e
	}
	keyPairs, e := keyPairsParam(r, acctID)
	if e != nil {
		return nil, e
	}
	groups, checks, e := affinityParam(r, acctID)
	if e != nil {
		return nil, e
	}
	userData, e := userDataParam(p)
	if e != nil {
		return nil, e
	}
	ip, e := requestedAddress(r, zone)
	if e != nil {
		return nil, e
	}
	id := newID()
	name := strings.TrimSpace(p.String("name"))
	if name == "" {
		name = "VM-" + id
	} else if !hostnameRE.MatchString(name) {
		return nil, ErrParam("invalid value %q for parameter name: use letters, digits and hyphens, at most 63, not starting or ending with a hyphen", name)
	}
	display := strings.TrimSpace(p.String("displayname"))
	if display == "" {
		display = name
	}
	rootSize := tmplSize
	if off.RootDiskSize > 0 {
		rootSize = max(rootSize, off.RootDiskSize*catalogGiB)
	}
	if given(p, "rootdisksize") {
		size, e := volumeSizeGiB(p, "rootdisksize")
		if e != nil {
			return nil, e
		}
		if size < tmplSize {
			return nil, ErrParam("invalid value %d for parameter rootdisksize: give at least the template's %d GiB", size/catalogGiB, (tmplSize+catalogGiB-1)/catalogGiB)
		}
		rootSize = size
	}
	if rootSize <= 0 {
		rootSize = 8 * catalogGiB // a template of unknown size gets CloudStack's usual root disk
	}
	now := r.srv.now().UTC()
	vm := &fsm.VM{
		ID: id, Name: name, DisplayName: display, InstanceName: "i-" + id, AccountID: acctID, DomainID: domID, UserID: r.Caller.ID,
		ZoneID: zone.ID, ServiceOfferingID: off.ID, TemplateID: tmpl.ID, OSTypeID: tmpl.OSTypeID, CPUNumber: cpus, CPUSpeed: speed,
		MemoryMiB: mem, State: fsm.VMStopped, Power: fsm.PowerOff, HAEnabled: off.OfferHA, UserData: userData, KeyPairs: keyPairs,
		Group: strings.TrimSpace(p.String("group")), Details: detailsParam(p, "details"), AffinityGroupIDs: groups, Created: now,
		IPAddress: ip, NICs: []fsm.NIC{{ID: newID(), MAC: macOf(id), IPAddress: ip, IsDefault: true}},
	}
	if startVM {
		vm.State = fsm.VMStarting
	}
	if ip != "" {
		_, gw, mask, _ := scheduler.GuestNetwork(zone)
		vm.NICs[0].Gateway, vm.NICs[0].Netmask = gw.String(), mask
	}
	root := &fsm.Volume{
		ID: newID(), Name: "ROOT-" + id[:8], AccountID: acctID, DomainID: domID, ZoneID: zone.ID, Type: fsm.VolumeRoot, VMID: id,
		TemplateID: tmpl.ID, SizeBytes: rootSize, Format: tmpl.Format, State: fsm.VolumeAllocated, StorageTags: off.StorageTags,
		Local: off.StorageType == fsm.StorageTypeLocal, Created: now, Attached: now,
	}
	vols := []*fsm.Volume{root}
	if given(p, "diskofferingid") {
		data, e := deployDataDisk(r, vm, now)
		if e != nil {
			return nil, e
		}
		vols = append(vols, data)
	}
	checks = append(checks, fsm.Check(fsm.TableServiceOfferings, off), fsm.Check(fsm.TableTemplates, tmpl))
	params[scheduler.VMParamID], params[scheduler.VMParamDeploy] = id, "true"
	params[scheduler.VMParamStartVM] = strconv.FormatBool(startVM)
	jobID, e := submitDeploy(r, vm, vols, params, checks, r.event("VM.CREATE", resVM, id, "deploying virtual machine %s", name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, id), nil
}

// submitDeploy commits the new VM, its volumes and its deploy job. A VM
// to start is placed in the same commit when a host fits
// (scheduler.PlaceNew), which spares the job its placement commit. When
// that commit is refused (its plan lost a race for the host's room or the
// address, or the state moved on since it was read) nothing of it was
// written, and the VM is committed again unplaced for the job to place;
// a refusal that was not about the placement comes back from that commit.
func submitDeploy(r *Request, vm *fsm.VM, vols []*fsm.Volume, params map[string]string, checks []fsm.TxnOp, event fsm.TxnOp) (string, *Error) {
	build := func(vm *fsm.VM, vols []*fsm.Volume, reserve []fsm.TxnOp) []fsm.TxnOp {
		ops := append(append([]fsm.TxnOp{}, checks...), fsm.Create(fsm.TableVMs, vm))
		for _, v := range vols {
			ops = append(ops, fsm.Create(fsm.TableVolumes, v))
		}
		return append(append(ops, reserve...), event)
	}
	if vm.State == fsm.VMStarting {
		pvm, pparams := vm.Copy(), maps.Clone(params)
		pvols := make([]*fsm.Volume, len(vols))
		for i, v := range vols {
			pvols[i] = v.Copy()
		}
		reserve, ok, err := scheduler.PlaceNew(r.State(), pvm, pvols, pparams)
		if err == nil && ok {
			jobID, e := r.submitJob(vmInstanceType, vm.ID, pparams, build(pvm, pvols, reserve)...)
			if e == nil || (e.CSCode != CSConcurrentOperation && e.Code != ErrCodeParam) {
				return jobID, e
			}
		}
	}
	return r.submitJob(vmInstanceType, vm.ID, params, build(vm, vols, nil)...)
}

// deployDataDisk builds the data volume of deployVirtualMachine's
// diskofferingid (and size, for a customized offering).
func deployDataDisk(r *Request, vm *fsm.VM, now time.Time) (*fsm.Volume, *Error) {
	d, e := usableDiskOffering(r, "diskofferingid")
	if e != nil {
		return nil, e
	}
	size, e := volumeOfferingSize(r.Params, d)
	if e != nil {
		return nil, e
	}
	return &fsm.Volume{
		ID: newID(), Name: "DATA-" + vm.ID[:8], AccountID: vm.AccountID, DomainID: vm.DomainID, ZoneID: vm.ZoneID, Type: fsm.VolumeDataDisk,
		VMID: vm.ID, DeviceID: 1, DiskOfferingID: d.ID, SizeBytes: size, Format: "QCOW2", State: fsm.VolumeAllocated, StorageTags: d.Tags,
		Local: d.StorageType == fsm.StorageTypeLocal, Created: now, Attached: now,
	}, nil
}
