package api

import (
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-cloud/stratus/fsm"
)

// commandGroups are the command sets files register from init; New adds
// every group to the server's registry.
var commandGroups []func(*Server) []*Command

// registerCommands adds a group of commands to every Server built later.
func registerCommands(group func(*Server) []*Command) {
	commandGroups = append(commandGroups, group)
}

// commit applies operations on registered tables atomically through raft
// and, on success, leaves r.State() at a state that includes them.
func (r *Request) commit(ops ...fsm.TxnOp) *Error {
	return r.apply(fsm.TxnRequestType, fsm.TxnRequest{Ops: ops})
}

// event builds the operation that records a completed action of the caller
// in listEvents. Put it in the same commit as the change it describes.
func (r *Request) event(typ, resourceType, resourceID, format string, args ...any) fsm.TxnOp {
	return fsm.Create(fsm.TableEvents, r.newEvent(typ, resourceType, resourceID, fmt.Sprintf(format, args...)))
}

func (r *Request) newEvent(typ, resourceType, resourceID, desc string) *fsm.Event {
	return &fsm.Event{
		ID: uuid.NewString(), Type: typ, Level: fsm.EventInfo, State: "Completed", Description: desc,
		AccountID: r.Account.ID, DomainID: r.Account.DomainID, UserID: r.Caller.ID,
		ResourceType: resourceType, ResourceID: resourceID, Created: r.srv.now().UTC(),
	}
}

// lookup resolves a uuid parameter to a row of a registered table. A missing
// row, and a row the caller may not see (visible returns false), both give
// CloudStack's "entity does not exist" error, so ids of other accounts'
// resources cannot be probed.
func lookup[T any](r *Request, table, param string, visible func(*T) bool) (*T, *Error) {
	raw := r.Params.String(param)
	obj, err := fsm.Get[T](r.State(), nil, table, strings.ToLower(raw))
	if err != nil {
		return nil, ErrInternal(table + " lookup failed")
	}
	if obj == nil || (visible != nil && !visible(obj)) {
		return nil, ErrEntityNotFound(r.Params.Cmd, param, raw)
	}
	return obj, nil
}

// newID returns a fresh UUID for an object the request creates.
func newID() string { return uuid.NewString() }

// readBack reads a row the request has just committed (r.State() includes
// the commit); a missing row is an internal error naming it.
func readBack[T any](r *Request, table, id string) (*T, *Error) {
	row, err := fsm.Get[T](r.State(), nil, table, id)
	if err != nil || row == nil {
		noun := table
		if d, ok := fsm.Table(table); ok {
			noun = d.Noun
		}
		return nil, ErrInternal(noun + " " + id + " was committed but cannot be read back")
	}
	return row, nil
}
