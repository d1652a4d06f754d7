package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

func listVMs(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	scope, e := r.listScope()
	if e != nil {
		return nil, e
	}
	withUserData, e := p.Bool("userdata", false)
	if e != nil {
		return nil, e
	}
	st := r.State()
	var vms []*fsm.VM
	var err error
	switch {
	case given(p, "id"):
		v, e := lookupVM(r, "id")
		if e != nil {
			return nil, e
		}
		vms = []*fsm.VM{v}
	case given(p, "hostid") && r.isRootAdmin():
		vms, err = fsm.List[fsm.VM](st, nil, fsm.TableVMs, "host", strings.ToLower(p.String("hostid")))
	case given(p, "affinitygroupid"):
		vms, err = fsm.List[fsm.VM](st, nil, fsm.TableVMs, "affinity", strings.ToLower(p.String("affinitygroupid")))
	case given(p, "zoneid"):
		vms, err = fsm.List[fsm.VM](st, nil, fsm.TableVMs, "zone", strings.ToLower(p.String("zoneid")))
	default:
		vms, err = fsm.List[fsm.VM](st, nil, fsm.TableVMs, "create")
	}
	if err != nil {
		return nil, ErrInternal("virtual machine scan failed")
	}
	keep, e := vmFilter(r)
	if e != nil {
		return nil, e
	}
	var matched []*fsm.VM
	for _, v := range vms {
		// Given an explicit id, the caller's own VM is shown whatever the
		// scope parameters say; otherwise the scope applies.
		if (!given(p, "id") && !scope(v.AccountID, v.DomainID)) || !keep(v) {
			continue
		}
		matched = append(matched, v)
	}
	vr := newVMRenderer(r)
	page := Paginate(matched, start, limit)
	out := make([]vmResponse, 0, len(page))
	for _, v := range page {
		out = append(out, vr.render(v, withUserData))
	}
	return ListBody("virtualmachine", len(matched), out), nil
}

// vmFilter builds the per-VM filter of listVirtualMachines' parameters.
func vmFilter(r *Request) (func(*fsm.VM) bool, *Error) {
	p := r.Params
	ids := map[string]bool{}
	for _, id := range p.List("ids") {
		ids[strings.ToLower(id)] = true
	}
	var haOnly *bool
	if given(p, "haenable") {
		b, e := p.Bool("haenable", false)
		if e != nil {
			return nil, e
		}
		haOnly = &b
	}
	tags := p.Map("tags")
	name, state, kw := p.String("name"), p.String("state"), strings.ToLower(p.String("keyword"))
	eq := func(param, v string) bool { return !given(p, param) || strings.EqualFold(p.String(param), v) }
	admin := r.isRootAdmin()
	st := r.State()
	return func(v *fsm.VM) bool {
		if v.State == fsm.VMExpunging || (len(ids) > 0 && !ids[v.ID]) || (name != "" && !strings.EqualFold(v.Name, name)) ||
			(state != "" && !strings.EqualFold(v.State, state)) || !eq("zoneid", v.ZoneID) || !eq("templateid", v.TemplateID) ||
			!eq("serviceofferingid", v.ServiceOfferingID) || (haOnly != nil && v.HAEnabled != *haOnly) {
			return false
		}
		if admin && (!eq("hostid", v.HostID) || !eq("podid", v.PodID) || !eq("clusterid", v.ClusterID)) {
			return false
		}
		if given(p, "affinitygroupid") && !catalogContainsFold(v.AffinityGroupIDs, p.String("affinitygroupid")) {
			return false
		}
		if kw != "" && !strings.Contains(strings.ToLower(v.Name+" "+v.DisplayName+" "+v.IPAddress), kw) &&
			!strings.EqualFold(v.State, kw) && !(admin && strings.Contains(strings.ToLower(v.InstanceName), kw)) {
			return false
		}
		for _, t := range tags {
			found := false
			if vt, _ := fsm.List[fsm.Tag](st, nil, fsm.TableTags, "key", v.ID, t["key"]); len(vt) > 0 {
				found = t["value"] == "" || vt[0].Value == t["value"]
			}
			if !found {
				return false
			}
		}
		return true
	}, nil
}

func updateVM(r *Request) (any, *Error) {
	p := r.Params
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, e
	}
	if v.State == fsm.VMDestroyed || v.State == fsm.VMExpunging {
		return nil, ErrParam("virtual machine %s is %s; recover it first", v.Name, v.State)
	}
	nv := v.Copy()
	if given(p, "displayname") {
		nv.DisplayName = strings.TrimSpace(p.String("displayname"))
	}
	if given(p, "name") {
		name := strings.TrimSpace(p.String("name"))
		if !hostnameRE.MatchString(name) {
			return nil, ErrParam("invalid value %q for parameter name: use letters, digits and hyphens, at most 63, not starting or ending with a hyphen", name)
		}
		if name != v.Name && v.State != fsm.VMStopped {
			return nil, ErrParam("virtual machine %s is %s; stop it before renaming it", v.Name, v.State)
		}
		nv.Name = name
	}
	if p.Has("group") {
		nv.Group = strings.TrimSpace(p.String("group"))
	}
	if given(p, "haenable") {
		ha, e := p.Bool("haenable", false)
		if e != nil {
			return nil, e
		}
		nv.HAEnabled = ha
	}
	if given(p, "userdata") {
		ud, e := userDataParam(p)
		if e != nil {
			return nil, e
		}
		nv.UserData = ud
	}
	cleanup, e := p.Bool("cleanupdetails", false)
	if e != nil {
		return nil, e
	}
	if cleanup {
		nv.Details = nil
	}
	for k, val := range detailsParam(p, "details") {
		if nv.Details == nil {
			nv.Details = map[string]string{}
		}
		nv.Details[k] = val
	}
	if e := r.commit(fsm.Update(fsm.TableVMs, nv), r.event("VM.UPDATE", resVM, v.ID, "updated virtual machine %s", nv.Name)); e != nil {
		return nil, e
	}
	return vmBody(r, v.ID)
}

// resizedVM checks a stopped VM and a new offering and returns the VM with
// the offering's size.
func resizedVM(r *Request) (*fsm.VM, *fsm.ServiceOffering, *Error) {
	v, e := lookupVM(r, "id")
	if e != nil {
		return nil, nil, e
	}
	off, e := usableServiceOffering(r, "serviceofferingid")
	if e != nil {
		return nil, nil, e
	}
	if v.State != fsm.VMStopped {
		return nil, nil, ErrParam("virtual machine %s is %s; stop it first: a running VM cannot change its offering (dynamic scaling is not supported)", v.Name, v.State)
	}
	if off.ID == v.ServiceOfferingID && !off.Customized {
		return nil, nil, ErrParam("virtual machine %s already has offering %s", v.Name, off.Name)
	}
	cpus, speed, mem, e := vmSize(r.Params, off)
	if e != nil {
		return nil, nil, e
	}
	nv := v.Copy()
	nv.ServiceOfferingID, nv.CPUNumber, nv.CPUSpeed, nv.MemoryMiB, nv.HAEnabled = off.ID, cpus, speed, mem, off.OfferHA
	return nv, off, nil
}

func changeServiceForVM(r *Request) (any, *Error) {
	nv, off, e := resizedVM(r)
	if e != nil {
		return nil, e
	}
	if e := r.commit(fsm.Check(fsm.TableServiceOfferings, off), fsm.Update(fsm.TableVMs, nv),
		r.event("VM.UPGRADE", resVM, nv.ID, "moved virtual machine %s to offering %s", nv.Name, off.Name)); e != nil {
		return nil, e
	}
	return vmBody(r, nv.ID)
}

func scaleVM(r *Request) (any, *Error) {
	nv, off, e := resizedVM(r)
	if e != nil {
		return nil, e
	}
	ops := []fsm.TxnOp{fsm.Check(fsm.TableServiceOfferings, off), fsm.Update(fsm.TableVMs, nv)}
	return r.finishedJob(vmInstanceType, nv.ID, successBody(), ops, "VM.SCALE", "scaled virtual machine %s to offering %s", nv.Name, off.Name)
}
