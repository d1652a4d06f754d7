package api

import (
	"iter"
	"slices"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

func listVMs(r *Request) (any, *Error) {
	p := r.Params
	pg, e := pageParams[*fsm.VM](r)
	if e != nil {
		return nil, e
	}
	q, e := r.listScopeQuery()
	if e != nil {
		return nil, e
	}
	withUserData, e := p.Bool("userdata", false)
	if e != nil {
		return nil, e
	}
	rows, e := vmCandidates(r, q)
	if e != nil {
		return nil, e
	}
	keep, e := vmFilter(r)
	if e != nil {
		return nil, e
	}
	byID := given(p, "id")
	// With no filter, the total is the scope's tally and the walk ends
	// with the page instead of visiting every VM to count it.
	total, tallied := scopeTally(r, q, fsm.TableVMs, !byID && vmUnfiltered(p))
	for v := range rows {
		if tallied && pg.filled() {
			pg.total = total
			break
		}
		// Given an explicit id, the caller's own VM is shown whatever the
		// scope parameters say; otherwise the scope applies.
		if (!byID && !q.keep(v.AccountID, v.DomainID)) || !keep(v) {
			continue
		}
		pg.add(v)
	}
	vr := newVMRenderer(r)
	out := make([]vmResponse, 0, len(pg.page))
	for _, v := range pg.page {
		out = append(out, vr.render(v, withUserData))
	}
	return ListBody("virtualmachine", pg.total, out), nil
}

// vmCandidates walks, oldest first, the VMs that can match the request:
// through the index of its most selective parameter, else those of the
// accounts in scope. vmFilter and the scope still judge every row.
func vmCandidates(r *Request, q scopeQuery) (iter.Seq[*fsm.VM], *Error) {
	p, st := r.Params, r.State()
	var rows iter.Seq[*fsm.VM]
	var err error
	switch {
	case given(p, "id"):
		v, e := lookupVM(r, "id")
		if e != nil {
			return nil, e
		}
		rows = slices.Values([]*fsm.VM{v})
	case len(p.List("ids")) > 0:
		var found []*fsm.VM
		for _, id := range p.List("ids") {
			if v, _ := fsm.Get[fsm.VM](st, nil, fsm.TableVMs, strings.ToLower(id)); v != nil {
				found = append(found, v)
			}
		}
		rows = createOrdered(found)
	case given(p, "name"):
		rows, err = fsm.Rows[fsm.VM](st, nil, fsm.TableVMs, "name", p.String("name"))
	case given(p, "hostid") && r.isRootAdmin():
		rows, err = fsm.Rows[fsm.VM](st, nil, fsm.TableVMs, "host", strings.ToLower(p.String("hostid")))
	case !q.all && len(q.accounts) <= 1:
		rows, err = scopedRows[fsm.VM](r, q, fsm.TableVMs, false)
	case given(p, "affinitygroupid"):
		var found []*fsm.VM
		if found, err = fsm.List[fsm.VM](st, nil, fsm.TableVMs, "affinity", strings.ToLower(p.String("affinitygroupid"))); err == nil {
			rows = createOrdered(found)
		}
	default: // zoneid and state have no index of their own: vmFilter judges them
		rows, err = scopedRows[fsm.VM](r, q, fsm.TableVMs, false)
	}
	if err != nil {
		return nil, ErrInternal("virtual machine scan failed")
	}
	return rows, nil
}

// vmFilterParams are the parameters vmFilter (or vmCandidates) picks rows by.
var vmFilterParams = []string{"id", "ids", "name", "state", "zoneid", "templateid", "serviceofferingid", "hostid", "podid",
	"clusterid", "affinitygroupid", "haenable", "keyword"}

// vmUnfiltered reports whether a listVirtualMachines request shows every
// VM of its scope that the VM tally counts (all but those being expunged).
func vmUnfiltered(p Params) bool {
	for _, name := range vmFilterParams {
		if given(p, name) {
			return false
		}
	}
	return len(p.List("ids")) == 0 && len(p.Map("tags")) == 0
}

// vmFilter builds the per-VM filter of listVirtualMachines' parameters.
// It allocates nothing per VM (but for keyword matches in non-ASCII
// names), and serves one request at a time.
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
	// A parameter given (not blank) filters on its value, ignoring case.
	filterOf := func(param string) string {
		if given(p, param) {
			return p.String(param)
		}
		return ""
	}
	zoneID, templateID, offeringID := filterOf("zoneid"), filterOf("templateid"), filterOf("serviceofferingid")
	hostID, podID, clusterID, groupID := filterOf("hostid"), filterOf("podid"), filterOf("clusterid"), filterOf("affinitygroupid")
	admin := r.isRootAdmin()
	st := r.State()
	words := newKeywordMatcher(kw)
	return func(v *fsm.VM) bool {
		if v.State == fsm.VMExpunging || (len(ids) > 0 && !ids[v.ID]) || (name != "" && !strings.EqualFold(v.Name, name)) ||
			(state != "" && !strings.EqualFold(v.State, state)) || !eqFold(zoneID, v.ZoneID) || !eqFold(templateID, v.TemplateID) ||
			!eqFold(offeringID, v.ServiceOfferingID) || (haOnly != nil && v.HAEnabled != *haOnly) {
			return false
		}
		if admin && (!eqFold(hostID, v.HostID) || !eqFold(podID, v.PodID) || !eqFold(clusterID, v.ClusterID)) {
			return false
		}
		if groupID != "" && !catalogContainsFold(v.AffinityGroupIDs, groupID) {
			return false
		}
		if kw != "" && !words.match(v.Name, v.DisplayName, v.IPAddress) &&
			!strings.EqualFold(v.State, kw) && !(admin && words.match(v.InstanceName)) {
			return false
		}
		for _, t := range tags {
			found := false
			if vt, _ := fsm.First[fsm.Tag](st, nil, fsm.TableTags, "key", v.ID, t["key"]); vt != nil {
				found = t["value"] == "" || vt.Value == t["value"]
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
