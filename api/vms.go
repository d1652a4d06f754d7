package api

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Virtual machines. The API checks every parameter against the state it
// holds and commits the VM record, its root volume and an AsyncJob in one
// write; the leader's job runner then places it and waits for the host's
// agent (see scheduler/vms.go). Every state change is a job, so a new
// leader carries on where the old one stopped.

const (
	vmInstanceType = "VirtualMachine"
	resVM          = "VirtualMachine"
	// maxUserDataBytes caps base64 user data, as CloudStack's default does
	// for GET requests (vm.userdata.max.length).
	maxUserDataBytes = 32768
)

func vmIDParam(desc string) ParamSpec {
	return ParamSpec{Name: "id", Type: "uuid", Required: true, Description: desc, Related: "listVirtualMachines"}
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "deployVirtualMachine", Description: "Creates a VM from a template and a compute offering and, unless startvm=false, starts it on a host the allocator picks.",
				Async: true, Write: true, Access: AccessUser, ObjectName: "virtualmachine", Related: "listVirtualMachines", Response: vmFields,
				Params: []ParamSpec{
					{Name: "zoneid", Type: "uuid", Required: true, Description: "Zone to deploy in.", Related: "listZones"},
					{Name: "serviceofferingid", Type: "uuid", Required: true, Description: "Compute offering: CPUs, memory, host tags.", Related: "listServiceOfferings"},
					{Name: "templateid", Type: "uuid", Required: true, Description: "Template of the root disk; it must be ready in the zone.", Related: "listTemplates"},
					{Name: "name", Type: "string", Description: "Host name of the VM: letters, digits and hyphens, at most 63; a generated one when absent."},
					{Name: "displayname", Type: "string", Description: "Name shown to users; the name when absent."},
					{Name: "startvm", Type: "boolean", Description: "Start the VM once it is created (default true)."},
					{Name: "hostid", Type: "uuid", Description: "Host to start the VM on (root admins).", Related: "listHosts"},
					{Name: "podid", Type: "uuid", Description: "Pod to start the VM in (root admins).", Related: "listPods"},
					{Name: "clusterid", Type: "uuid", Description: "Cluster to start the VM in (root admins).", Related: "listClusters"},
					{Name: "userdata", Type: "string", Description: "Base64 user data for cloud-init, at most 32 KiB."},
					{Name: "keypair", Type: "string", Description: "Name of an SSH key pair of the owner."},
					{Name: "keypairs", Type: "list", Description: "Names of SSH key pairs of the owner."},
					{Name: "details", Type: "map", Description: "Extra details; cpuNumber, cpuSpeed and memory size a customized offering."},
					{Name: "rootdisksize", Type: "long", Description: "Size of the root disk in GiB; at least the template's size."},
					{Name: "diskofferingid", Type: "uuid", Description: "Disk offering of a data disk to create and attach.", Related: "listDiskOfferings"},
					{Name: "size", Type: "long", Description: "Size in GiB of that data disk, for a customized disk offering."},
					{Name: "group", Type: "string", Description: "Free-form group name."},
					{Name: "ipaddress", Type: "string", Description: "Address of the default NIC: a free one of the zone's guest network; one is chosen when absent."},
					{Name: "networkids", Type: "list", Description: "Network of the VM's NIC: only the zone's guest network (its ID is the zone's), which it gets anyway.", Related: "listNetworks"},
					{Name: "affinitygroupids", Type: "list", Description: "Affinity groups of the VM, by ID.", Related: "listAffinityGroups"},
					{Name: "affinitygroupnames", Type: "list", Description: "Affinity groups of the VM, by name."},
					{Name: "account", Type: "string", Description: "Owning account (admins), with domainid."},
					{Name: "domainid", Type: "uuid", Description: "Domain of that account.", Related: "listDomains"},
				},
				Handler: deployVM,
			},
			vmJobCommand("startVirtualMachine", "Starts a stopped VM on a host the allocator picks, or on hostid.", startVM,
				ParamSpec{Name: "hostid", Type: "uuid", Description: "Host to start the VM on (root admins).", Related: "listHosts"}),
			vmJobCommand("stopVirtualMachine", "Stops a running VM: the guest is asked to shut down, or powered off at once with forced=true.", stopVM,
				ParamSpec{Name: "forced", Type: "boolean", Description: "Power the VM off at once instead of asking the guest."}),
			vmJobCommand("rebootVirtualMachine", "Reboots a running VM.", rebootVM),
			vmJobCommand("destroyVirtualMachine", "Destroys a VM: it stops and is kept, recoverable, until expunged; expunge=true removes it at once.", destroyVM,
				ParamSpec{Name: "expunge", Type: "boolean", Description: "Remove the VM and its root volume at once (admins, or when allow.user.expunge.recover.vm)."}),
			vmJobCommand("expungeVirtualMachine", "Removes a destroyed VM and its root volume for good.", expungeVM),
			{
				Name: "recoverVirtualMachine", Description: "Brings a destroyed VM that is not expunged yet back as Stopped.",
				Write: true, Access: AccessUser, ObjectName: "virtualmachine", Related: "listVirtualMachines", Response: vmFields,
				Params: []ParamSpec{vmIDParam("ID of the VM.")}, Handler: recoverVM,
			},
			{
				Name: "updateVirtualMachine", Description: "Changes a VM's display name, name (when stopped), group, HA flag, user data or details.",
				Write: true, Access: AccessUser, ObjectName: "virtualmachine", Related: "listVirtualMachines", Response: vmFields,
				Params: []ParamSpec{
					vmIDParam("ID of the VM."),
					{Name: "displayname", Type: "string", Description: "New display name."},
					{Name: "name", Type: "string", Description: "New host name; the VM must be stopped."},
					{Name: "group", Type: "string", Description: "New group."},
					{Name: "haenable", Type: "boolean", Description: "Restart the VM elsewhere when its host fails."},
					{Name: "userdata", Type: "string", Description: "New base64 user data."},
					{Name: "details", Type: "map", Description: "Details to set."},
					{Name: "cleanupdetails", Type: "boolean", Description: "Remove every detail."},
				},
				Handler: updateVM,
			},
			{
				Name: "changeServiceForVirtualMachine", Description: "Moves a stopped VM to another compute offering.",
				Write: true, Access: AccessUser, ObjectName: "virtualmachine", Related: "listVirtualMachines", Response: vmFields,
				Params: []ParamSpec{
					vmIDParam("ID of the VM."),
					{Name: "serviceofferingid", Type: "uuid", Required: true, Description: "The new compute offering.", Related: "listServiceOfferings"},
					{Name: "details", Type: "map", Description: "cpuNumber, cpuSpeed and memory for a customized offering."},
				},
				Handler: changeServiceForVM,
			},
			{
				Name: "scaleVirtualMachine", Description: "Moves a VM to another compute offering; a running VM must be stopped first, as dynamic scaling is not supported.",
				Async: true, Write: true, Access: AccessUser, Response: successResponse,
				Params: []ParamSpec{
					vmIDParam("ID of the VM."),
					{Name: "serviceofferingid", Type: "uuid", Required: true, Description: "The new compute offering.", Related: "listServiceOfferings"},
					{Name: "details", Type: "map", Description: "cpuNumber, cpuSpeed and memory for a customized offering."},
				},
				Handler: scaleVM,
			},
			{
				Name: "migrateVirtualMachine", Description: "Moves a running VM to another host of its cluster's shared storage: the allocator picks one unless hostid is given.",
				Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "virtualmachine", Related: "listVirtualMachines", Response: vmFields,
				Params: []ParamSpec{
					{Name: "virtualmachineid", Type: "uuid", Required: true, Description: "ID of the VM.", Related: "listVirtualMachines"},
					{Name: "hostid", Type: "uuid", Description: "Target host.", Related: "findHostsForMigration"},
					{Name: "autoselect", Type: "boolean", Description: "Let the allocator pick the host (the default without hostid)."},
				},
				Handler: migrateVM,
			},
			{
				Name: "findHostsForMigration", Description: "Lists the hosts a running VM could move to, with whether each has room.",
				Access: AccessRootAdmin, ObjectName: "host", Related: "migrateVirtualMachine", Response: hostFields,
				Params:  withPaging(ParamSpec{Name: "virtualmachineid", Type: "uuid", Required: true, Description: "ID of the VM.", Related: "listVirtualMachines"}),
				Handler: findHostsForMigration,
			},
			{
				Name: "listVirtualMachines", Description: "Lists VMs, oldest first.", Access: AccessUser,
				ObjectName: "virtualmachine", Related: "deployVirtualMachine", Response: vmFields,
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the VM with this ID.", Related: "listVirtualMachines"},
					ParamSpec{Name: "ids", Type: "list", Description: "Only VMs with these IDs."},
					ParamSpec{Name: "name", Type: "string", Description: "Only VMs with this name."},
					ParamSpec{Name: "state", Type: "string", Description: "Only VMs in this state."},
					ParamSpec{Name: "zoneid", Type: "uuid", Description: "Only VMs of this zone.", Related: "listZones"},
					ParamSpec{Name: "hostid", Type: "uuid", Description: "Only VMs on this host (admins).", Related: "listHosts"},
					ParamSpec{Name: "podid", Type: "uuid", Description: "Only VMs in this pod (admins).", Related: "listPods"},
					ParamSpec{Name: "clusterid", Type: "uuid", Description: "Only VMs in this cluster (admins).", Related: "listClusters"},
					ParamSpec{Name: "templateid", Type: "uuid", Description: "Only VMs made from this template.", Related: "listTemplates"},
					ParamSpec{Name: "serviceofferingid", Type: "uuid", Description: "Only VMs of this offering.", Related: "listServiceOfferings"},
					ParamSpec{Name: "affinitygroupid", Type: "uuid", Description: "Only VMs of this affinity group.", Related: "listAffinityGroups"},
					ParamSpec{Name: "haenable", Type: "boolean", Description: "Only VMs with (or without) HA."},
					ParamSpec{Name: "userdata", Type: "boolean", Description: "Include each VM's user data."},
					ParamSpec{Name: "tags", Type: "map", Description: "Only VMs with all these tags (tags[0].key, tags[0].value)."},
					ParamSpec{Name: "account", Type: "string", Description: "Only VMs of this account, with domainid."},
					ParamSpec{Name: "domainid", Type: "uuid", Description: "Only VMs of this domain.", Related: "listDomains"},
					ParamSpec{Name: "isrecursive", Type: "boolean", Description: "With domainid, include subdomains."},
					ParamSpec{Name: "listall", Type: "boolean", Description: "Admins: every VM they manage, not only their own."},
				),
				Handler: listVMs,
			},
		}
	})
}

func vmJobCommand(name, desc string, h func(*Request) (any, *Error), extra ...ParamSpec) *Command {
	c := &Command{Name: name, Description: desc, Async: true, Write: true, Access: AccessUser, ObjectName: "virtualmachine",
		Related: "listVirtualMachines", Response: vmFields, Params: append([]ParamSpec{vmIDParam("ID of the VM.")}, extra...), Handler: h}
	if name == "expungeVirtualMachine" {
		c.ObjectName, c.Response = "", successResponse
	}
	return c
}

// lookupVM resolves a VM parameter; another account's VM does not exist.
func lookupVM(r *Request, param string) (*fsm.VM, *Error) {
	return lookup(r, fsm.TableVMs, param, func(v *fsm.VM) bool { return r.canAccess(v.AccountID, v.DomainID) })
}

// submitVMJob commits a VM job with ops and answers its id.
func submitVMJob(r *Request, v *fsm.VM, params map[string]string, ops ...fsm.TxnOp) (any, *Error) {
	if params == nil {
		params = map[string]string{}
	}
	params[scheduler.VMParamID] = v.ID
	// Claim pins the VM: a request racing another change to it, or another
	// request that read it idle at the same time, is refused as stale
	// rather than queued behind it, so busyVM's answer holds at commit.
	jobID, e := r.submitJob(vmInstanceType, v.ID, params, append([]fsm.TxnOp{fsm.Claim(fsm.TableVMs, v)}, ops...)...)
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

// busyVM refuses a request while another job works on the VM.
func busyVM(r *Request, v *fsm.VM) *Error {
	return instanceBusy(r, vmInstanceType, v.ID, "virtual machine "+v.Name)
}

// instanceBusy refuses a request while a pending job works on the object
// (a job's instance type and ID); what names the object in the error.
func instanceBusy(r *Request, instanceType, id, what string) *Error {
	jobs, err := fsm.List[fsm.AsyncJob](r.State(), nil, fsm.TableJobs, "pending_instance", id)
	if err != nil {
		return ErrInternal("job scan failed")
	}
	for _, j := range jobs {
		if j.InstanceType == instanceType {
			return &Error{Code: ErrCodeInternal, CSCode: CSConcurrentOperation,
				Text: fmt.Sprintf("%s is busy with %s (job %s); wait for it to finish and retry", what, j.Cmd, j.ID)}
		}
	}
	return nil
}

func vmStateError(v *fsm.VM, verb string, want ...string) *Error {
	return ErrParam("virtual machine %s is %s; only a %s VM can be %s", v.Name, v.State, strings.Join(want, " or "), verb)
}

func startVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if v.State != fsm.VMStopped {
		return nil, vmStateError(v, "started", fsm.VMStopped)
	}
	params := map[string]string{}
	if given(r.Params, "hostid") {
		if !r.isRootAdmin() {
			return nil, ErrPermissionDenied("only root admins may choose the host")
		}
		h, e := lookup[fsm.Host](r, fsm.TableHosts, "hostid", nil)
		if e != nil {
			return nil, e
		}
		params[scheduler.VMParamHost] = h.ID
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	return submitVMJob(r, v, params)
}

func stopVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	forced, e := r.Params.Bool("forced", false)
	if e != nil {
		return nil, e
	}
	if v.State != fsm.VMRunning && v.State != fsm.VMError && v.State != fsm.VMStopped {
		return nil, vmStateError(v, "stopped", fsm.VMRunning)
	}
	if e := busyVM(r, v); e != nil && !forced {
		return nil, e
	}
	return submitVMJob(r, v, map[string]string{scheduler.VMParamForced: strconv.FormatBool(forced)})
}

func rebootVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if v.State != fsm.VMRunning {
		return nil, vmStateError(v, "rebooted", fsm.VMRunning)
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	return submitVMJob(r, v, nil)
}

func destroyVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	expunge, e := r.Params.Bool("expunge", false)
	if e != nil {
		return nil, e
	}
	if expunge && !r.mayExpunge() {
		return nil, ErrPermissionDenied("only admins may expunge at once; set allow.user.expunge.recover.vm to let users")
	}
	if expunge && !r.srv.permitted(r.Account, r.srv.cmds["expungeVirtualMachine"]) {
		return nil, ErrPermissionDenied("the caller's role does not allow expungeVirtualMachine, so destroy cannot expunge at once")
	}
	switch v.State {
	case fsm.VMDestroyed:
		if !expunge {
			return nil, ErrParam("virtual machine %s is already destroyed; expunge or recover it", v.Name)
		}
	case fsm.VMRunning, fsm.VMStopped, fsm.VMError:
	default:
		return nil, vmStateError(v, "destroyed", fsm.VMRunning, fsm.VMStopped)
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	return submitVMJob(r, v, map[string]string{scheduler.VMParamExpunge: strconv.FormatBool(expunge)})
}

// mayExpunge: admins always; users when the cloud allows it.
func (r *Request) mayExpunge() bool {
	return r.isRootAdmin() || r.isDomainAdmin() || r.State().SettingBool(fsm.SettingUserExpunge)
}

func expungeVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if !r.mayExpunge() {
		return nil, ErrPermissionDenied("only admins may expunge; set allow.user.expunge.recover.vm to let users")
	}
	if v.State != fsm.VMDestroyed {
		return nil, vmStateError(v, "expunged", fsm.VMDestroyed)
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	return submitVMJob(r, v, nil)
}

func recoverVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if !r.mayExpunge() {
		return nil, ErrPermissionDenied("only admins may recover a destroyed VM; set allow.user.expunge.recover.vm to let users")
	}
	if v.State != fsm.VMDestroyed {
		return nil, vmStateError(v, "recovered", fsm.VMDestroyed)
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	nv := v.Copy()
	nv.State, nv.Destroyed = fsm.VMStopped, time.Time{}
	if e := r.commit(fsm.Update(fsm.TableVMs, nv), r.event("VM.RECOVER", resVM, v.ID, "recovered virtual machine %s", v.Name)); e != nil {
		return nil, e
	}
	return vmBody(r, v.ID)
}

func migrateVM(r *Request) (any, *Error) {
	v, e := lookupVM(r, "virtualmachineid")
	if e != nil {
		return nil, e
	}
	if v.State != fsm.VMRunning {
		return nil, vmStateError(v, "migrated", fsm.VMRunning)
	}
	params := map[string]string{}
	if given(r.Params, "hostid") {
		h, e := lookup[fsm.Host](r, fsm.TableHosts, "hostid", nil)
		if e != nil {
			return nil, e
		}
		if h.ID == v.HostID {
			return nil, ErrParam("virtual machine %s already runs on host %s; choose another host", v.Name, h.Name)
		}
		params[scheduler.VMParamHost] = h.ID
	}
	if e := busyVM(r, v); e != nil {
		return nil, e
	}
	return submitVMJob(r, v, params)
}

func findHostsForMigration(r *Request) (any, *Error) {
	v, e := lookupVM(r, "virtualmachineid")
	if e != nil {
		return nil, e
	}
	if v.State != fsm.VMRunning {
		return nil, vmStateError(v, "migrated", fsm.VMRunning)
	}
	start, limit, e := r.Params.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	st := r.State()
	vols, err := fsm.List[fsm.Volume](st, nil, fsm.TableVolumes, "vm", v.ID)
	if err != nil {
		return nil, ErrInternal("volume scan failed")
	}
	req, err := scheduler.PlacementRequest(st, v, vols)
	if err != nil {
		return nil, ErrInternal("placement request failed")
	}
	req.AvoidHosts = []string{v.HostID}
	var out []hostResponse
	for _, c := range scheduler.Candidates(st, req) {
		if c.Host.ID == v.HostID {
			continue
		}
		resp, e := hostResponseOf(r, c.Host.ID)
		if e != nil {
			return nil, e
		}
		suitable := c.Suitable
		resp.SuitableForMigration = &suitable
		resp.RequiresStorageMotion = new(bool)
		out = append(out, resp)
	}
	return ListBody("host", len(out), Paginate(out, start, limit)), nil
}

// userDataParam checks base64 user data.
func userDataParam(p Params) (string, *Error) {
	ud := strings.TrimSpace(p.String("userdata"))
	if ud == "" {
		return "", nil
	}
	if len(ud) > maxUserDataBytes {
		return "", ErrParam("parameter userdata is %d bytes of base64; at most %d are allowed", len(ud), maxUserDataBytes)
	}
	if _, err := base64.StdEncoding.DecodeString(ud); err != nil {
		if _, err2 := base64.RawStdEncoding.DecodeString(ud); err2 != nil {
			return "", ErrParam("parameter userdata is not valid base64: %v", err)
		}
	}
	return ud, nil
}

// macOf derives a stable locally administered MAC address from an ID.
func macOf(id string) string {
	sum := sha256.Sum256([]byte(id))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", sum[0], sum[1], sum[2], sum[3], sum[4])
}
