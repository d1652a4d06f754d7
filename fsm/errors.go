package fsm

import (
	"errors"
	"fmt"
)

// ErrorKind classifies a business failure of a command. The API layer maps
// each kind to a CloudStack error code.
type ErrorKind string

// The kinds of business failure an applier can report.
const (
	KindNotFound ErrorKind = "not_found"
	KindConflict ErrorKind = "conflict"
	KindInUse    ErrorKind = "in_use"
	KindInvalid  ErrorKind = "invalid"
	// KindStale: a row changed since the proposer read it (compare-and-set
	// lost); reading again and retrying is the cure.
	KindStale ErrorKind = "stale"
)

// StateError is a business failure: the command was committed but changed
// nothing. It travels as the applier's response and across forwarding, so it
// must stay a plain, serialisable value.
type StateError struct {
	Kind ErrorKind `json:"kind"`
	Msg  string    `json:"msg"`
}

func (e *StateError) Error() string { return e.Msg }

// Is lets errors.Is match a StateError against a sentinel of the same kind.
func (e *StateError) Is(target error) bool {
	var t *StateError
	if errors.As(target, &t) {
		return t.Kind == e.Kind && (t.Msg == "" || t.Msg == e.Msg)
	}
	return false
}

// Sentinels to match with errors.Is.
var (
	ErrNotFound           = &StateError{Kind: KindNotFound}
	ErrConflict           = &StateError{Kind: KindConflict}
	ErrInUse              = &StateError{Kind: KindInUse}
	ErrInvalid            = &StateError{Kind: KindInvalid}
	ErrStale              = &StateError{Kind: KindStale}
	ErrAlreadyInitialized = &StateError{Kind: KindConflict, Msg: "cluster is already initialized"}
)

func stateErr(kind ErrorKind, format string, args ...any) *StateError {
	return &StateError{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
