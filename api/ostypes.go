package api

import (
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// OS types and categories: a fixed built-in list (fsm.OSTypes), served
// from memory to every caller. There are no commands to add or remove
// them.

type osTypeResponse struct {
	ID            string `json:"id"`
	Description   string `json:"description"`
	OSCategoryID  string `json:"oscategoryid"`
	IsUserDefined bool   `json:"isuserdefined"`
}

type osCategoryResponse struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func init() {
	registerCommands(func(*Server) []*Command {
		return []*Command{
			{
				Name: "listOsTypes", Description: "Lists the guest operating system types templates and ISOs can declare.",
				Access: AccessUser, ObjectName: "ostype", Handler: listOsTypes,
				Response: withJobFields(
					ResponseField{Name: "id", Type: "string", Description: "OS type ID."},
					ResponseField{Name: "description", Type: "string", Description: "Name of the operating system."},
					ResponseField{Name: "oscategoryid", Type: "string", Description: "ID of its category."},
					ResponseField{Name: "isuserdefined", Type: "boolean", Description: "Whether an operator added it; always false: the list is built in."},
				),
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the OS type with this ID."},
					ParamSpec{Name: "oscategoryid", Type: "uuid", Related: "listOsCategories", Description: "Only OS types of this category."},
					ParamSpec{Name: "description", Type: "string", Description: "Only OS types whose name contains this text."},
				),
			},
			{
				Name: "listOsCategories", Description: "Lists the categories of guest operating system types.",
				Access: AccessUser, ObjectName: "oscategory", Handler: listOsCategories,
				Response: withJobFields(
					ResponseField{Name: "id", Type: "string", Description: "Category ID."},
					ResponseField{Name: "name", Type: "string", Description: "Category name."},
				),
				Params: withPaging(
					ParamSpec{Name: "id", Type: "uuid", Description: "Only the category with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only the category with this name."},
				),
			},
		}
	})
}

func listOsTypes(r *Request) (any, *Error) {
	p := r.Params
	id, cat := strings.ToLower(p.String("id")), strings.ToLower(p.String("oscategoryid"))
	if id != "" {
		if _, ok := fsm.OSTypeByID(id); !ok {
			return nil, ErrEntityNotFound(p.Cmd, "id", p.String("id"))
		}
	}
	if cat != "" {
		if _, ok := fsm.OSCategoryByID(cat); !ok {
			return nil, ErrEntityNotFound(p.Cmd, "oscategoryid", p.String("oscategoryid"))
		}
	}
	desc, kw := p.String("description"), p.String("keyword")
	out := []osTypeResponse{}
	for _, t := range fsm.OSTypes() {
		if (id != "" && t.ID != id) || (cat != "" && t.CategoryID != cat) || !catalogMatch(desc, t.Description) || !catalogMatch(kw, t.Description) {
			continue
		}
		out = append(out, osTypeResponse{ID: t.ID, Description: t.Description, OSCategoryID: t.CategoryID})
	}
	return catalogPage(r, "ostype", out)
}

func listOsCategories(r *Request) (any, *Error) {
	p := r.Params
	id := strings.ToLower(p.String("id"))
	if id != "" {
		if _, ok := fsm.OSCategoryByID(id); !ok {
			return nil, ErrEntityNotFound(p.Cmd, "id", p.String("id"))
		}
	}
	name, kw := p.String("name"), p.String("keyword")
	out := []osCategoryResponse{}
	for _, c := range fsm.OSCategories() {
		if (id != "" && c.ID != id) || (name != "" && !strings.EqualFold(c.Name, name)) || !catalogMatch(kw, c.Name) {
			continue
		}
		out = append(out, osCategoryResponse{ID: c.ID, Name: c.Name})
	}
	return catalogPage(r, "oscategory", out)
}
