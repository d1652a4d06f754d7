package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

type configResponse struct {
	Name         string `json:"name"`
	Value        string `json:"value"`
	DefaultValue string `json:"defaultvalue"`
	Category     string `json:"category"`
	Description  string `json:"description"`
	Type         string `json:"type"`
	Scope        string `json:"scope"`
	IsDynamic    bool   `json:"isdynamic"`
	DisplayText  string `json:"displaytext"`
	Component    string `json:"component"`
}

func toConfigResponse(st *fsm.Store, d fsm.SettingDef) configResponse {
	return configResponse{
		Name: d.Name, Value: st.SettingValue(d.Name), DefaultValue: d.Default, Category: d.Category,
		Description: d.Description, Type: d.Type, Scope: "global", IsDynamic: d.Dynamic,
		DisplayText: d.Name, Component: "stratus",
	}
}

var configFields = withJobFields(
	ResponseField{Name: "name", Type: "string", Description: "Setting name."},
	ResponseField{Name: "value", Type: "string", Description: "Value in force."},
	ResponseField{Name: "defaultvalue", Type: "string", Description: "Value when no operator has set one."},
	ResponseField{Name: "category", Type: "string", Description: "Group the setting belongs to."},
	ResponseField{Name: "description", Type: "string", Description: "What the setting does."},
	ResponseField{Name: "type", Type: "string", Description: "Value type: String, Integer or Boolean."},
	ResponseField{Name: "scope", Type: "string", Description: "Where the setting applies; global for every setting today."},
	ResponseField{Name: "isdynamic", Type: "boolean", Description: "True when a change takes effect without a restart."},
	ResponseField{Name: "displaytext", Type: "string", Description: "Name to show for the setting."},
	ResponseField{Name: "component", Type: "string", Description: "Part of the system that reads the setting."},
)

func configCommands() []*Command {
	list := &Command{
		Name: "listConfigurations", Description: "Lists global settings with the value in force and the default.",
		Access: AccessRootAdmin, ObjectName: "configuration", Related: "updateConfiguration", Response: configFields,
		Params: withPaging(
			ParamSpec{Name: "name", Type: "string", Description: "Only the setting with this name."},
			ParamSpec{Name: "category", Type: "string", Description: "Only settings of this category."},
		),
		Handler: listConfigurations,
	}
	update := &Command{
		Name: "updateConfiguration", Description: "Sets a global setting's value for the whole cloud; an empty value restores the default.",
		Write: true, Access: AccessRootAdmin, ObjectName: "configuration", Response: configFields,
		Params: []ParamSpec{
			{Name: "name", Type: "string", Required: true, Description: "Name of the setting."},
			{Name: "value", Type: "string", Length: 4096, Description: "New value; leave out or empty to go back to the default."},
		},
		Handler: updateConfiguration,
	}
	return []*Command{list, update}
}

func listConfigurations(r *Request) (any, *Error) {
	p := r.Params
	start, limit, e := p.Page(r.State().SettingInt(fsm.SettingDefaultPageSize))
	if e != nil {
		return nil, e
	}
	name, cat, kw := p.String("name"), p.String("category"), strings.ToLower(p.String("keyword"))
	var out []configResponse
	for _, d := range fsm.SettingDefs() {
		if (name != "" && d.Name != name) || (cat != "" && !strings.EqualFold(cat, d.Category)) {
			continue
		}
		if kw != "" && !strings.Contains(d.Name, kw) && !strings.Contains(strings.ToLower(d.Description), kw) {
			continue
		}
		out = append(out, toConfigResponse(r.State(), d))
	}
	return ListBody("configuration", len(out), Paginate(out, start, limit)), nil
}

func updateConfiguration(r *Request) (any, *Error) {
	p := r.Params
	def, ok := fsm.LookupSettingDef(p.String("name"))
	if !ok {
		return nil, ErrParam("configuration %s does not exist: listConfigurations shows the settings this cloud knows", p.String("name"))
	}
	if def.ReadOnly {
		return nil, ErrParam("configuration %s is kept by the servers and cannot be set", def.Name)
	}
	value := p.String("value")
	if value == "" {
		value = def.Default
	}
	if !def.ValidSettingValue(value) {
		return nil, ErrInvalidParamValue(p.Cmd, "value", value)
	}
	if def.Name == fsm.SettingDefaultPageSize {
		if n := atoiOr(value, 0); n == 0 || n < -1 {
			return nil, ErrParam("%s must be a positive number of items, or -1 for no limit", def.Name)
		}
	}
	req := fsm.ConfigSetRequest{Setting: fsm.Setting{Name: def.Name, Value: value, Updated: r.srv.now().UTC()}}
	if e := r.apply(fsm.ConfigSetRequestType, req); e != nil {
		return nil, e
	}
	return map[string]any{"configuration": toConfigResponse(r.State(), def)}, nil
}
