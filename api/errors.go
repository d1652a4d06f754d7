package api

import (
	"fmt"
	"strings"
)

// HTTP status codes of CloudStack API errors. CloudStack sends the error
// code as the HTTP status too, so each of these is both the "errorcode"
// field of the error body and the status line of the reply.
const (
	ErrCodeUnauthorized         = 401 // bad or missing credentials or signature
	ErrCodeMethodNotAllowed     = 405 // e.g. login over GET
	ErrCodeMalformedParam       = 430 // a parameter that cannot be decoded at all
	ErrCodeParam                = 431 // missing or invalid parameter
	ErrCodeUnsupported          = 432 // unknown or unavailable command
	ErrCodeServiceUnavailable   = 503 // no raft leader right now: retry
	ErrCodeInternal             = 530 // anything unexpected
	ErrCodeAccount              = 531 // permission denied, failed login
	ErrCodeResourceLimit        = 532 // account resource limit reached
	ErrCodeInsufficientCapacity = 533 // no host or storage can take it
	ErrCodeResourceUnavailable  = 534 // a resource is down or unreachable
	ErrCodeResourceAllocation   = 535 // allocating a resource failed
	ErrCodeResourceInUse        = 536 // still used by something else
)

// CloudStack's "cserrorcode" values: a number per Java exception class
// that clients may log or show. Only the ones Stratus uses are listed.
const (
	CSCloudRuntime         = 4250 // generic runtime failure
	CSAccountLimit         = 4280 // account limit exceeded
	CSConcurrentOperation  = 4300 // another operation holds the resource
	CSInsufficientCapacity = 4325
	CSInvalidParameter     = 4350 // a parameter value the command rejects
	CSPermissionDenied     = 4365
	CSResourceAllocation   = 4370
	CSResourceInUse        = 4375 // checked against CloudStack's exception code table
	CSResourceUnavailable  = 4380
	CSUnavailableCommand   = 4555
	CSOperationTimedOut    = 4560
	CSServerAPI            = 9999 // a plain server API error with no more specific class
)

// defaultUnauthorizedText is CloudStack's answer to any credential failure.
const defaultUnauthorizedText = "unable to verify user credentials and/or request signature"

// Error is a CloudStack-style API error. The HTTP status of the reply is
// Code.
type Error struct {
	// Code is both the "errorcode" field and the HTTP status.
	Code int
	// CSCode is the "cserrorcode" field; 0 omits it, as CloudStack does for
	// errors built from a bare HTTP status (401s).
	CSCode int
	// Text is the "errortext" field.
	Text string
	// TopLevel makes the envelope key "errorresponse" instead of
	// "<command>response".
	TopLevel bool
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	if e.CSCode != 0 {
		return fmt.Sprintf("cloudstack api error %d (cs %d): %s", e.Code, e.CSCode, e.Text)
	}
	return fmt.Sprintf("cloudstack api error %d: %s", e.Code, e.Text)
}

// cmdLower is the command name as CloudStack's parameter errors spell it:
// the response name without "response", which is the lower-cased API name.
func cmdLower(cmd string) string { return strings.ToLower(cmd) }

// ErrMissingParam reports a required parameter that was not sent.
func ErrMissingParam(cmd, name string) *Error {
	return &Error{
		Code:   ErrCodeParam,
		CSCode: CSServerAPI,
		Text:   fmt.Sprintf("Unable to execute API command %s due to missing parameter %s", cmdLower(cmd), name),
	}
}

// ErrInvalidParamValue reports a value that does not parse as the
// parameter's type.
func ErrInvalidParamValue(cmd, name, value string) *Error {
	return &Error{
		Code:   ErrCodeParam,
		CSCode: CSServerAPI,
		Text:   fmt.Sprintf("Unable to execute API command %s due to invalid value %s for parameter %s", cmdLower(cmd), value, name),
	}
}

// ErrEntityNotFound reports a UUID that names no entity. The Go SDK and the
// Terraform provider match part of this text to mean "not found", so it must
// stay exactly as CloudStack words it.
func ErrEntityNotFound(cmd, name, value string) *Error {
	return &Error{
		Code:   ErrCodeParam,
		CSCode: CSServerAPI,
		Text: fmt.Sprintf("Unable to execute API command %s due to invalid value. Invalid parameter %s value=%s"+
			" due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation"+
			" for the field in api cmd class.", cmdLower(cmd), name, value),
	}
}

// ErrParam is a parameter error in the command's own words, as CloudStack's
// InvalidParameterValueException gives.
func ErrParam(format string, args ...any) *Error {
	return &Error{Code: ErrCodeParam, CSCode: CSInvalidParameter, Text: fmt.Sprintf(format, args...)}
}

// ErrUnauthorized is a credential failure. An empty text gives CloudStack's
// standard wording. Like CloudStack's bare-status errors it has no
// cserrorcode; its envelope key is still the command's when the command is
// known.
func ErrUnauthorized(text string) *Error {
	if text == "" {
		text = defaultUnauthorizedText
	}
	return &Error{Code: ErrCodeUnauthorized, Text: text}
}

// ErrUnknownCommand reports a command name the server does not have.
// CloudStack raises it as a plain ServerApiException, so the cserrorcode is
// 9999 (not UnavailableCommand's 4555), under the "errorresponse" key.
func ErrUnknownCommand(cmd string) *Error {
	return &Error{Code: ErrCodeUnsupported, CSCode: CSServerAPI, Text: "Unknown API command: " + cmd, TopLevel: true}
}

// ErrInternal is an unexpected failure.
func ErrInternal(text string) *Error {
	if text == "" {
		text = "internal error"
	}
	return &Error{Code: ErrCodeInternal, CSCode: CSCloudRuntime, Text: text}
}

// ErrInUse reports a resource that cannot change because something else
// still uses it.
func ErrInUse(text string) *Error {
	return &Error{Code: ErrCodeResourceInUse, CSCode: CSResourceInUse, Text: text}
}

// ErrPermissionDenied reports a caller that may not touch the resource.
func ErrPermissionDenied(text string) *Error {
	return &Error{Code: ErrCodeAccount, CSCode: CSPermissionDenied, Text: text}
}

// ErrUnavailable reports a transient cluster condition (no leader, leader
// change under way, request timed out waiting for raft) that the client
// should retry.
//
// CloudStack itself has no such condition, since its database is always
// there. We answer 503 rather than a 5xx CloudStack code: every CloudStack
// client treats any non-200 as an error and reads the body the same way, and
// 503 is the status that load balancers, proxies and generic HTTP retry
// logic already treat as "try again". The cserrorcode is that of
// ResourceUnavailableException, the closest CloudStack meaning.
func ErrUnavailable(text string) *Error {
	switch {
	case text == "":
		text = "the cluster has no leader right now; retry the request shortly"
	case !strings.Contains(strings.ToLower(text), "retry"):
		text += "; retry the request shortly"
	}
	return &Error{Code: ErrCodeServiceUnavailable, CSCode: CSResourceUnavailable, Text: text}
}
