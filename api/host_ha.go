package api

import (
	"fmt"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// Host HA commands. A host's HA configuration lives on its row: HAProvider
// (how the leader fences it: lease, ipmi, command or none), HAEnabled, and
// HAState, which the leader's HA controller moves (Available, Suspect,
// Fencing, Fenced, Ineligible) while HA is on. These commands only switch
// the configuration; CloudStack runs them as async jobs, and here each
// completes in the commit that makes its job.
//
// Providers. CloudStack has one KVM provider, "kvmhaprovider", which fences
// a host through its out-of-band management (an IPMI power-off) and counts
// a host eligible only with out-of-band management enabled: it is accepted
// here as another name of ipmi, and stored (and answered) as ipmi. It is
// not taken as lease, because lease trusts the agent's own self-fence,
// which a CloudStack-managed KVM host never promised.

type hostHAResource struct {
	HostID     string `json:"hostid,omitempty"`
	HAEnable   bool   `json:"haenable"`
	HAProvider string `json:"haprovider,omitempty"`
	HAState    string `json:"hastate,omitempty"`
	Status     *bool  `json:"status,omitempty"`
}

var hostHAFields = withJobFields(
	ResponseField{Name: "hostid", Type: "string", Description: "ID of the host."},
	ResponseField{Name: "haenable", Type: "boolean", Description: "Whether host HA is on for the host."},
	ResponseField{Name: "haprovider", Type: "string", Description: "How the leader fences the host: lease, ipmi, command or none."},
	ResponseField{Name: "hastate", Type: "hastate", Description: "HA state: Disabled, Available, Suspect, Fencing, Fenced, Ineligible."},
	ResponseField{Name: "status", Type: "boolean", Description: "Whether the operation succeeded."},
)

// haProviders are the providers of KVM hosts, in listHostHAProviders'
// order.
var haProviders = []string{fsm.HAProviderLease, fsm.HAProviderIPMI, fsm.HAProviderCommand, fsm.HAProviderNone}

// kvmHAProviderAlias is CloudStack's KVM provider's name: it fences through
// IPMI.
const kvmHAProviderAlias = "kvmhaprovider"

func init() {
	registerCommands(func(*Server) []*Command {
		hostParam := ParamSpec{Name: "hostid", Type: "uuid", Required: true, Description: "ID of the host.", Related: "listHosts"}
		haCmd := func(name, desc string, h func(*Request) (any, *Error), extra ...ParamSpec) *Command {
			return &Command{Name: name, Description: desc, Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "hostha",
				Related: "listHostHAResources,listHostHAProviders", Response: hostHAFields, Params: append([]ParamSpec{hostParam}, extra...), Handler: h}
		}
		scopeCmd := func(name, desc, param string, enable bool) *Command {
			return &Command{Name: name, Description: desc, Async: true, Write: true, Access: AccessRootAdmin, Response: successResponse,
				Params:  []ParamSpec{{Name: param, Type: "uuid", Required: true, Description: "ID of the " + strings.TrimSuffix(param, "id") + "."}},
				Handler: func(r *Request) (any, *Error) { return setHAForScope(r, param, enable) }}
		}
		return []*Command{
			haCmd("configureHAForHost", "Sets how the leader fences a host before it restarts the host's HA VMs elsewhere: "+
				"lease (the agent's own self-fence), ipmi (power-off through out-of-band management), command (this cloud's fence script) "+
				"or none (an operator confirms with declareHostAsDegraded).", configureHAForHost,
				ParamSpec{Name: "provider", Type: "string", Required: true, Description: "lease, ipmi, command or none; kvmhaprovider means ipmi."}),
			haCmd("enableHAForHost", "Turns host HA on for a host with a provider.", enableHAForHost),
			haCmd("disableHAForHost", "Turns host HA off for a host: its VMs are no longer restarted elsewhere when it fails.", disableHAForHost),
			scopeCmd("enableHAForCluster", "Turns host HA on for every host of a cluster that has a provider it qualifies for.", "clusterid", true),
			scopeCmd("disableHAForCluster", "Turns host HA off for every host of a cluster.", "clusterid", false),
			scopeCmd("enableHAForZone", "Turns host HA on for every host of a zone that has a provider it qualifies for.", "zoneid", true),
			scopeCmd("disableHAForZone", "Turns host HA off for every host of a zone.", "zoneid", false),
			{
				Name: "listHostHAResources", Description: "Lists the HA configuration of hosts that have one, or of the given host.",
				Access: AccessRootAdmin, ObjectName: "hostha", Related: "configureHAForHost", Response: hostHAFields,
				Params:  []ParamSpec{{Name: "hostid", Type: "uuid", Description: "Only this host.", Related: "listHosts"}},
				Handler: listHostHAResources,
			},
			{
				Name: "listHostHAProviders", Description: "Lists the host HA providers of a hypervisor.",
				Access: AccessRootAdmin, ObjectName: "haprovider", Related: "configureHAForHost", Response: hostHAFields,
				Params:  []ParamSpec{{Name: "hypervisor", Type: "string", Required: true, Description: "The hypervisor: KVM."}},
				Handler: listHostHAProviders,
			},
		}
	})
}

func toHostHAResource(h *fsm.Host, status bool) hostHAResource {
	out := hostHAResource{HostID: h.ID, HAEnable: h.HAEnabled, HAProvider: h.HAProvider, HAState: h.HAState}
	if out.HAState == "" {
		out.HAState = fsm.HAStateDisabled
	}
	if status {
		out.Status = &status
	}
	return out
}

// haProviderParam reads a provider name, in any case.
func haProviderParam(p Params, param string) (string, *Error) {
	v := strings.ToLower(strings.TrimSpace(p.String(param)))
	if v == kvmHAProviderAlias {
		return fsm.HAProviderIPMI, nil
	}
	for _, name := range haProviders {
		if v == name {
			return name, nil
		}
	}
	return "", ErrParam("invalid value %q for parameter %s: use one of %s (%s, CloudStack's KVM provider, means %s)",
		p.String(param), param, strings.Join(haProviders, ", "), kvmHAProviderAlias, fsm.HAProviderIPMI)
}

// haIneligible says why host HA with provider cannot be on for h, or ""
// when it can.
func haIneligible(h *fsm.Host, provider string) string {
	switch provider {
	case "":
		return fmt.Sprintf("host %s has no HA provider: set one with configureHAForHost", h.Name)
	case fsm.HAProviderLease:
		if !h.SelfFence {
			return fmt.Sprintf("host %s's agent has not said it self-fences (no watchdog armed), so its lease cannot be trusted: "+
				"use provider ipmi, command or none", h.Name)
		}
	case fsm.HAProviderIPMI:
		if h.OutOfBand == nil || h.OutOfBand.Address == "" {
			return fmt.Sprintf("host %s has no out-of-band management for the ipmi provider: configure it with configureOutOfBandManagement", h.Name)
		}
		if !h.OutOfBand.Enabled {
			return fmt.Sprintf("out-of-band management of host %s is disabled, so the ipmi provider cannot fence it: "+
				"enable it with enableOutOfBandManagementForHost", h.Name)
		}
	}
	return ""
}

// enableHA returns h with host HA on.
func enableHA(h *fsm.Host) *fsm.Host {
	nh := h.Copy()
	nh.HAEnabled = true
	if nh.HAState == "" || nh.HAState == fsm.HAStateDisabled {
		nh.HAState = fsm.HAStateAvailable
	}
	return nh
}

// disableHA returns h with host HA off. A Fenced host stays Fenced: it is
// known off, and the HA controller may still be restarting its VMs.
func disableHA(h *fsm.Host) *fsm.Host {
	nh := h.Copy()
	nh.HAEnabled = false
	if nh.HAState != fsm.HAStateFenced {
		nh.HAState = fsm.HAStateDisabled
	}
	return nh
}

func configureHAForHost(r *Request) (any, *Error) {
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	provider, e := haProviderParam(r.Params, "provider")
	if e != nil {
		return nil, e
	}
	if h.HAEnabled {
		if why := haIneligible(h, provider); why != "" {
			return nil, ErrParam("host HA is on for host %s and %s; disable its HA first to change the provider anyway", h.Name, why)
		}
	}
	nh := h.Copy()
	nh.HAProvider = provider
	return r.finishedJob(resHost, h.ID, map[string]any{"hostha": toHostHAResource(nh, true)},
		[]fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)}, "HA.RESOURCE.CONFIGURE", "host %s fences with provider %s", h.Name, provider)
}

func enableHAForHost(r *Request) (any, *Error) {
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	if why := haIneligible(h, h.HAProvider); why != "" {
		return nil, ErrParam("cannot enable host HA: %s", why)
	}
	nh := enableHA(h)
	return r.finishedJob(resHost, h.ID, map[string]any{"hostha": toHostHAResource(nh, true)},
		[]fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)}, "HA.RESOURCE.ENABLE", "enabled host HA on host %s (provider %s)", h.Name, h.HAProvider)
}

func disableHAForHost(r *Request) (any, *Error) {
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	nh := disableHA(h)
	return r.finishedJob(resHost, h.ID, map[string]any{"hostha": toHostHAResource(nh, true)},
		[]fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)}, "HA.RESOURCE.DISABLE", "disabled host HA on host %s", h.Name)
}

// setHAForScope turns host HA on or off for every host of a cluster or
// zone. CloudStack keeps a separate switch per cluster and zone; here the
// switch is each host's own, so this sets it on each host (a host that
// cannot have HA on is skipped, and the answer's displaytext says why).
func setHAForScope(r *Request, param string, enable bool) (any, *Error) {
	var hosts []*fsm.Host
	var err error
	var scope, name, resType, id string
	if param == "clusterid" {
		c, e := lookupCluster(r, param)
		if e != nil {
			return nil, e
		}
		scope, name, resType, id = "cluster", c.Name, resCluster, c.ID
		hosts, err = fsm.List[fsm.Host](r.State(), nil, fsm.TableHosts, "cluster", c.ID)
	} else {
		z, e := lookupZone(r, param)
		if e != nil {
			return nil, e
		}
		scope, name, resType, id = "zone", z.Name, "Zone", z.ID
		hosts, err = fsm.List[fsm.Host](r.State(), nil, fsm.TableHosts, "zone", z.ID)
	}
	if err != nil {
		return nil, ErrInternal("host scan failed")
	}
	var ops []fsm.TxnOp
	var changed, skipped []string
	for _, h := range hosts {
		switch {
		case enable && h.HAEnabled, !enable && !h.HAEnabled:
			continue
		case enable:
			if why := haIneligible(h, h.HAProvider); why != "" {
				skipped = append(skipped, why)
				continue
			}
			ops = append(ops, fsm.Update(fsm.TableHosts, enableHA(h)),
				r.event("HA.RESOURCE.ENABLE", resHost, h.ID, "enabled host HA on host %s with its %s %s", h.Name, scope, name))
		default:
			ops = append(ops, fsm.Update(fsm.TableHosts, disableHA(h)),
				r.event("HA.RESOURCE.DISABLE", resHost, h.ID, "disabled host HA on host %s with its %s %s", h.Name, scope, name))
		}
		changed = append(changed, h.Name)
	}
	verb, evType := "enabled", "HA.RESOURCE.ENABLE"
	if !enable {
		verb, evType = "disabled", "HA.RESOURCE.DISABLE"
	}
	text := fmt.Sprintf("%s host HA on %d hosts of %s %s", verb, len(changed), scope, name)
	if len(changed) > 0 {
		text += " (" + strings.Join(changed, ", ") + ")"
	}
	if len(skipped) > 0 {
		text += "; skipped: " + strings.Join(skipped, "; ")
	}
	return r.finishedJob(resType, id, map[string]any{"success": true, "displaytext": text}, ops, evType, "%s", text)
}

func listHostHAResources(r *Request) (any, *Error) {
	var hosts []*fsm.Host
	if given(r.Params, "hostid") {
		h, e := lookupHost(r, "hostid")
		if e != nil {
			return nil, e
		}
		hosts = []*fsm.Host{h}
	} else {
		all, e := listRows[fsm.Host](r, fsm.TableHosts)
		if e != nil {
			return nil, e
		}
		for _, h := range all {
			if h.HAProvider != "" || h.HAEnabled {
				hosts = append(hosts, h)
			}
		}
	}
	out := make([]hostHAResource, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, toHostHAResource(h, false))
	}
	return ListBody("hostha", len(out), out), nil
}

func listHostHAProviders(r *Request) (any, *Error) {
	if _, e := hypervisorParam(r.Params, "hypervisor"); e != nil {
		return nil, e
	}
	out := make([]map[string]string, 0, len(haProviders))
	for _, p := range haProviders {
		out = append(out, map[string]string{"haprovider": p})
	}
	return ListBody("haprovider", len(out), out), nil
}
