package api

import (
	"fmt"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Host maintenance and operator-declared host failure.
//
// prepareHostForMaintenance sets the host PrepareForMaintenance in the
// commit that makes its job, so the allocator keeps new VMs off it from
// then on; the leader's maintenance job (scheduler) migrates its running
// VMs off and sets it Maintenance, or ErrorInMaintenance with an error
// naming each VM that cannot move. cancelHostMaintenance sets it Enabled
// again, which also calls off a preparation under way.
//
// declareHostAsDegraded is the operator's confirmation that a host which
// stopped heartbeating is really down (the only way the VMs of a host with
// the none provider, or one whose fence failed, are restarted): the host
// goes Down with HA state Fenced, and the leader's HA controller restarts
// its HA VMs elsewhere. As in CloudStack its resource state becomes
// Degraded, which keeps the allocator off it, until cancelHostAsDegraded
// sets it Enabled; the host is then Disconnected until its agent
// reconnects (destroying its own copies of VMs now running elsewhere).

func init() {
	registerCommands(func(*Server) []*Command {
		idParam := []ParamSpec{{Name: "id", Type: "uuid", Required: true, Description: "ID of the host.", Related: "listHosts"}}
		hostCmd := func(name, desc string, h func(*Request) (any, *Error)) *Command {
			return &Command{Name: name, Description: desc, Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "host",
				Related: "listHosts", Response: hostFields, Params: idParam, Handler: h}
		}
		return []*Command{
			hostCmd("prepareHostForMaintenance", "Empties a host for maintenance: no new VMs go there, its running VMs are live-migrated "+
				"to other hosts, a few at a time, and stopped VMs forget it as their last host. The host is then in Maintenance, or "+
				"ErrorInMaintenance when a VM cannot move (the job's error says which and why).", prepareHostForMaintenance),
			hostCmd("cancelHostMaintenance", "Takes a host out of maintenance (or calls off its preparation): it is Enabled for new VMs again.",
				cancelHostMaintenance),
			hostCmd("declareHostAsDegraded", "Confirms that a Disconnected or Alert host is down: it goes Down with HA state Fenced, "+
				"and the leader restarts its HA VMs on other hosts. Be sure it runs no VMs: they would then run twice.", declareHostAsDegraded),
			hostCmd("cancelHostAsDegraded", "Undoes declareHostAsDegraded: the host is Enabled again and Disconnected until its agent reconnects.",
				cancelHostAsDegraded),
		}
	})
}

// hostJobResult is the result of a host command that completes at once:
// the host as the commit leaves it.
func hostJobResult(r *Request, h *fsm.Host) any {
	return map[string]any{"host": toHostResponse(newInfraNames(r.State()), h)}
}

func prepareHostForMaintenance(r *Request) (any, *Error) {
	h, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	switch h.ResourceState {
	case fsm.ResourceStateEnabled, fsm.ResourceStateDisabled, fsm.ResourceStateErrorInMaintenance:
	case fsm.ResourceStatePrepareMaintenance:
		return nil, ErrParam("host %s is already being prepared for maintenance", h.Name)
	case fsm.ResourceStateMaintenance:
		return nil, ErrParam("host %s is already in maintenance", h.Name)
	default:
		return nil, ErrParam("host %s is %s; only an Enabled, Disabled or ErrorInMaintenance host can be prepared for maintenance", h.Name, h.ResourceState)
	}
	if h.State != fsm.HostStateUp {
		vms, err := fsm.List[fsm.VM](r.State(), nil, fsm.TableVMs, "host", h.ID)
		if err != nil {
			return nil, ErrInternal("VM scan failed")
		}
		for _, v := range vms {
			if v.State == fsm.VMRunning {
				return nil, &Error{Code: ErrCodeResourceUnavailable, CSCode: CSResourceUnavailable, Text: fmt.Sprintf(
					"host %s is %s, so its running VMs (%s among them) cannot be live-migrated off it; retry once its agent is connected",
					h.Name, h.State, v.Name)}
			}
		}
	}
	nh := h.Copy()
	nh.ResourceState = fsm.ResourceStatePrepareMaintenance
	jobID, e := r.submitJob(resHost, h.ID, map[string]string{scheduler.HostParamID: h.ID},
		fsm.Update(fsm.TableHosts, nh), r.event("MAINT.PREPARE", resHost, h.ID, "preparing host %s for maintenance", h.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}

func cancelHostMaintenance(r *Request) (any, *Error) {
	h, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	switch h.ResourceState {
	case fsm.ResourceStatePrepareMaintenance, fsm.ResourceStateMaintenance, fsm.ResourceStateErrorInMaintenance:
	default:
		return nil, ErrParam("host %s is %s, not in maintenance", h.Name, h.ResourceState)
	}
	nh := h.Copy()
	nh.ResourceState = fsm.ResourceStateEnabled
	return r.finishedJob(resHost, h.ID, hostJobResult(r, nh), []fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)},
		"MAINT.CANCEL", "host %s is out of maintenance (was %s)", h.Name, h.ResourceState)
}

func declareHostAsDegraded(r *Request) (any, *Error) {
	h, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	if h.ResourceState == fsm.ResourceStateDegraded {
		return nil, ErrParam("host %s is already declared degraded", h.Name)
	}
	switch h.State {
	case fsm.HostStateDisconnected, fsm.HostStateAlert, fsm.HostStateDown:
	default:
		return nil, ErrParam("host %s is %s; only a Disconnected or Alert host can be declared degraded (a host whose agent heartbeats is not down)",
			h.Name, h.State)
	}
	nh := h.Copy()
	nh.State, nh.HAState, nh.ResourceState = fsm.HostStateDown, fsm.HAStateFenced, fsm.ResourceStateDegraded
	return r.finishedJob(resHost, h.ID, hostJobResult(r, nh), []fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)},
		"HOST.DECLARE.DEGRADED", "%s declared host %s (%s) down: its HA VMs are restarted on other hosts", r.Caller.Username, h.Name, h.State)
}

func cancelHostAsDegraded(r *Request) (any, *Error) {
	h, e := lookupHost(r, "id")
	if e != nil {
		return nil, e
	}
	if h.ResourceState != fsm.ResourceStateDegraded {
		return nil, ErrParam("host %s is %s, not Degraded", h.Name, h.ResourceState)
	}
	nh := h.Copy()
	nh.ResourceState = fsm.ResourceStateEnabled
	if nh.State == fsm.HostStateDown {
		nh.State = fsm.HostStateDisconnected
	}
	nh.HAState = fsm.HAStateDisabled
	if nh.HAEnabled {
		nh.HAState = fsm.HAStateAvailable
	}
	return r.finishedJob(resHost, h.ID, hostJobResult(r, nh), []fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)},
		"HOST.CANCEL.DEGRADED", "host %s is no longer declared degraded", h.Name)
}
