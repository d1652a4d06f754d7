package api

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
	"github.com/stratus-cloud/stratus/hypervisor/fence"
	"github.com/stratus-cloud/stratus/scheduler"
)

// Out-of-band management: a host's BMC (IPMI through ipmitool), which the
// ipmi HA provider fences with and operators drive power actions through.
// The settings live in the host row (fsm.Host.OutOfBand); the password is
// stored for ipmitool but never answered, logged or put in an event or a
// job's parameters. Power actions run as async jobs on the leader
// (scheduler's power action job), as CloudStack's 4.18 dump marks
// issueOutOfBandManagementPowerAction async.

const oobmDriverIPMITool = "ipmitool"

// hostOOBMResponse is a host's out-of-band management as host responses
// show it.
type hostOOBMResponse struct {
	Enabled    bool   `json:"enabled"`
	Driver     string `json:"driver,omitempty"`
	Address    string `json:"address,omitempty"`
	Port       string `json:"port,omitempty"`
	Username   string `json:"username,omitempty"`
	PowerState string `json:"powerstate"`
}

// oobmResponse is the answer of the out-of-band management commands.
type oobmResponse struct {
	HostID      string `json:"hostid"`
	Enabled     bool   `json:"enabled"`
	Driver      string `json:"driver,omitempty"`
	Address     string `json:"address,omitempty"`
	Port        string `json:"port,omitempty"`
	Username    string `json:"username,omitempty"`
	PowerState  string `json:"powerstate"`
	Action      string `json:"action,omitempty"`
	Description string `json:"description,omitempty"`
	Status      bool   `json:"status"`
}

var oobmFields = withJobFields(
	ResponseField{Name: "hostid", Type: "string", Description: "ID of the host."},
	ResponseField{Name: "enabled", Type: "boolean", Description: "Whether out-of-band management is on for the host."},
	ResponseField{Name: "driver", Type: "string", Description: "Driver: ipmitool."},
	ResponseField{Name: "address", Type: "string", Description: "Address of the host's BMC."},
	ResponseField{Name: "port", Type: "string", Description: "Port of the host's BMC."},
	ResponseField{Name: "username", Type: "string", Description: "User on the BMC; the password is never shown."},
	ResponseField{Name: "powerstate", Type: "powerstate", Description: "Power state as last checked: On, Off, Unknown; Disabled while out-of-band management is off."},
	ResponseField{Name: "action", Type: "string", Description: "The power action, if one was issued."},
	ResponseField{Name: "description", Type: "string", Description: "What the operation did."},
	ResponseField{Name: "status", Type: "boolean", Description: "Whether the operation succeeded."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		hostParam := ParamSpec{Name: "hostid", Type: "uuid", Required: true, Description: "ID of the host.", Related: "listHosts"}
		return []*Command{
			{
				Name: "configureOutOfBandManagement", Description: "Sets a host's out-of-band management (its BMC, through ipmitool). Enable it afterwards.",
				Write: true, Access: AccessRootAdmin, ObjectName: "outofbandmanagement", Related: "enableOutOfBandManagementForHost", Response: oobmFields,
				Params: []ParamSpec{
					hostParam,
					{Name: "driver", Type: "string", Required: true, Description: "Driver: ipmitool."},
					{Name: "address", Type: "string", Required: true, Description: "IP address or DNS name of the host's BMC."},
					{Name: "port", Type: "string", Required: true, Description: "Port of the BMC, usually 623."},
					{Name: "username", Type: "string", Required: true, Description: "User on the BMC."},
					{Name: "password", Type: "string", Required: true, Description: "That user's password; stored for ipmitool, never shown."},
				},
				Handler: configureOutOfBandManagement,
			},
			{
				Name: "enableOutOfBandManagementForHost", Description: "Turns a host's configured out-of-band management on.",
				Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "outofbandmanagement", Response: oobmFields,
				Params: []ParamSpec{hostParam}, Handler: func(r *Request) (any, *Error) { return setOOBMEnabled(r, true) },
			},
			{
				Name: "disableOutOfBandManagementForHost", Description: "Turns a host's out-of-band management off.",
				Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "outofbandmanagement", Response: oobmFields,
				Params: []ParamSpec{hostParam}, Handler: func(r *Request) (any, *Error) { return setOOBMEnabled(r, false) },
			},
			{
				Name: "issueOutOfBandManagementPowerAction", Description: "Runs a power action on a host's BMC, from the leader, and answers the power state it reports afterwards.",
				Async: true, Write: true, Access: AccessRootAdmin, ObjectName: "outofbandmanagement", Response: oobmFields,
				Params: []ParamSpec{
					hostParam,
					{Name: "action", Type: "string", Required: true, Description: "ON, OFF, CYCLE, RESET, SOFT or STATUS."},
					{Name: "timeout", Type: "long", Description: "Seconds the action may take; default 60."},
				},
				Handler: issuePowerAction,
			},
		}
	})
}

// hostOOBM is the out-of-band management part of a host response.
func hostOOBM(h *fsm.Host) hostOOBMResponse {
	o := h.OutOfBand
	if o == nil {
		return hostOOBMResponse{PowerState: "Disabled"}
	}
	out := hostOOBMResponse{Enabled: o.Enabled, Driver: o.Driver, Address: o.Address, Username: o.Username, PowerState: o.PowerState}
	if o.Port > 0 {
		out.Port = strconv.Itoa(o.Port)
	}
	switch {
	case !o.Enabled:
		out.PowerState = "Disabled"
	case out.PowerState == "":
		out.PowerState = fence.PowerUnknown
	}
	return out
}

func toOOBMResponse(h *fsm.Host, description string) oobmResponse {
	o := hostOOBM(h)
	return oobmResponse{HostID: h.ID, Enabled: o.Enabled, Driver: o.Driver, Address: o.Address, Port: o.Port, Username: o.Username,
		PowerState: o.PowerState, Description: description, Status: true}
}

func configureOutOfBandManagement(r *Request) (any, *Error) {
	p := r.Params
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	if d := strings.TrimSpace(p.String("driver")); !strings.EqualFold(d, oobmDriverIPMITool) {
		return nil, ErrParam("invalid value %q for parameter driver: use %s", d, oobmDriverIPMITool)
	}
	addr := strings.TrimSpace(p.String("address"))
	if a, err := netip.ParseAddr(addr); err == nil {
		addr = a.String()
	} else if !validHostname(addr) {
		return nil, ErrParam("invalid value %q for parameter address: give the BMC's IP address or DNS name", addr)
	}
	port, err := strconv.Atoi(strings.TrimSpace(p.String("port")))
	if err != nil || port < 1 || port > 65535 {
		return nil, ErrParam("invalid value %q for parameter port: give a port from 1 to 65535 (IPMI uses 623)", p.String("port"))
	}
	user := strings.TrimSpace(p.String("username"))
	if user == "" {
		return nil, ErrParam("parameter username must not be blank")
	}
	if p.String("password") == "" {
		return nil, ErrParam("parameter password must not be blank")
	}
	nh := h.Copy()
	o := &fsm.OutOfBand{}
	if nh.OutOfBand != nil {
		o = nh.OutOfBand // keeps Enabled and the last power state
	}
	o.Driver, o.Address, o.Port, o.Username, o.Password = oobmDriverIPMITool, addr, port, user, p.String("password")
	nh.OutOfBand = o
	if e := r.commit(fsm.Update(fsm.TableHosts, nh), r.event("HOST.OOBM.CONFIGURE", resHost, h.ID,
		"configured out-of-band management of host %s: %s at %s:%d as %s", h.Name, oobmDriverIPMITool, addr, port, user)); e != nil {
		return nil, e
	}
	return map[string]any{"outofbandmanagement": toOOBMResponse(nh, "out-of-band management configured")}, nil
}

func setOOBMEnabled(r *Request, enable bool) (any, *Error) {
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	if h.OutOfBand == nil || h.OutOfBand.Address == "" {
		if enable {
			return nil, ErrParam("host %s has no out-of-band management: configure it with configureOutOfBandManagement first", h.Name)
		}
		return r.finishedJob(resHost, h.ID, map[string]any{"outofbandmanagement": toOOBMResponse(h, "out-of-band management is off")},
			nil, "HOST.OOBM.DISABLE", "out-of-band management of host %s stays off: none is configured", h.Name)
	}
	if !enable && h.HAEnabled && h.HAProvider == fsm.HAProviderIPMI {
		return nil, ErrParam("host %s has host HA on with the ipmi provider, which fences through out-of-band management: "+
			"disable its HA or configure another provider first", h.Name)
	}
	nh := h.Copy()
	nh.OutOfBand.Enabled = enable
	verb, evType := "enabled", "HOST.OOBM.ENABLE"
	if !enable {
		verb, evType = "disabled", "HOST.OOBM.DISABLE"
	}
	desc := fmt.Sprintf("out-of-band management %s", verb)
	return r.finishedJob(resHost, h.ID, map[string]any{"outofbandmanagement": toOOBMResponse(nh, desc)},
		[]fsm.TxnOp{fsm.Update(fsm.TableHosts, nh)}, evType, "%s out-of-band management of host %s", verb, h.Name)
}

func issuePowerAction(r *Request) (any, *Error) {
	p := r.Params
	h, e := lookupHost(r, "hostid")
	if e != nil {
		return nil, e
	}
	action := strings.ToUpper(strings.TrimSpace(p.String("action")))
	valid := false
	for _, a := range fence.PowerActions() {
		valid = valid || a == action
	}
	if !valid {
		return nil, ErrParam("invalid value %q for parameter action: use one of %s", p.String("action"), strings.Join(fence.PowerActions(), ", "))
	}
	timeout, e := p.Int64("timeout", 0)
	if e != nil {
		return nil, e
	}
	if timeout < 0 || timeout > 3600 {
		return nil, ErrParam("invalid value %d for parameter timeout: give seconds from 1 to 3600", timeout)
	}
	if h.OutOfBand == nil || h.OutOfBand.Address == "" {
		return nil, ErrParam("host %s has no out-of-band management: configure it with configureOutOfBandManagement", h.Name)
	}
	if !h.OutOfBand.Enabled {
		return nil, ErrParam("out-of-band management is disabled for host %s: enable it with enableOutOfBandManagementForHost", h.Name)
	}
	params := map[string]string{scheduler.HostParamID: h.ID, scheduler.HostParamAction: action}
	if timeout > 0 {
		params[scheduler.HostParamTimeout] = strconv.FormatInt(timeout, 10)
	}
	jobID, e := r.submitJob(resHost, h.ID, params,
		r.event("HOST.OOBM.POWERACTION", resHost, h.ID, "requested out-of-band power action %s on host %s", action, h.Name))
	if e != nil {
		return nil, e
	}
	return jobAccepted(jobID, ""), nil
}
