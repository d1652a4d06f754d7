package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/gorilla/mux"

	"github.com/stratus-cloud/stratus/fsm"
)

// Operator endpoints: /v1/operator/<name>, for `stratus operator`. They are
// signed exactly like /client/api requests (apiKey, signature, and
// signatureversion 3 with expires) and answer only root admins, on any
// server; the answer is plain JSON, and a failure is
// {"errorcode":N,"errortext":"..."} with HTTP status N. cmd registers the
// handlers, which reach into the cluster and ops packages.

// OperatorPathPrefix is where operator endpoints live.
const OperatorPathPrefix = "/v1/operator/"

// OperatorRequest is an authenticated operator call.
type OperatorRequest struct {
	HTTP   *http.Request
	Params Params
	Caller *fsm.User
}

// OperatorHandler serves one operator endpoint.
type OperatorHandler func(*OperatorRequest) (any, *Error)

// OperatorStreamHandler serves an operator endpoint whose body is not one
// JSON value: a download it writes itself, or an upload it reads from
// r.HTTP.Body. Its parameters (and the signature) come from the URL query
// only, so the body is left whole for the handler. A handler that fails
// before writing anything returns the *Error, sent as operator JSON.
type OperatorStreamHandler func(w http.ResponseWriter, r *OperatorRequest) *Error

// operatorRoutes holds the handlers by name; HandleOperator may be called
// after New, before the server serves.
type operatorRoutes struct {
	mu      sync.RWMutex
	h       map[string]OperatorHandler
	streams map[string]OperatorStreamHandler
}

// HandleOperator registers the operator endpoint name (GET and POST).
func (s *Server) HandleOperator(name string, h OperatorHandler) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	if s.ops.h == nil {
		s.ops.h = map[string]OperatorHandler{}
	}
	s.ops.h[name] = h
}

// HandleOperatorStream registers a streaming operator endpoint name (GET
// and POST), authenticated like the others.
func (s *Server) HandleOperatorStream(name string, h OperatorStreamHandler) {
	s.ops.mu.Lock()
	defer s.ops.mu.Unlock()
	if s.ops.streams == nil {
		s.ops.streams = map[string]OperatorStreamHandler{}
	}
	s.ops.streams[name] = h
}

func (s *Server) operatorRoute(r *mux.Router) {
	r.PathPrefix(OperatorPathPrefix).HandlerFunc(s.handleOperator).Methods(http.MethodGet, http.MethodPost)
}

func (s *Server) handleOperator(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, OperatorPathPrefix)
	fail := func(e *Error) {
		writeOperatorJSON(w, e.Code, map[string]any{"errorcode": e.Code, "errortext": e.Text})
	}
	s.ops.mu.RLock()
	stream := s.ops.streams[name]
	s.ops.mu.RUnlock()
	var values url.Values
	var e *Error
	if stream != nil {
		values = r.URL.Query()
	} else if values, e = readParams(w, r); e != nil {
		fail(e)
		return
	}
	// The signature must name this endpoint and expire: a signed request
	// for another endpoint or an API command (a legacy one never expires)
	// must not be replayable here.
	if values.Get("operator") != name || values.Get("command") != "" {
		fail(ErrUnauthorized("operator requests must sign operator=" + name + " and no command"))
		return
	}
	if values.Get("signatureversion") != "3" || values.Get("expires") == "" {
		fail(ErrUnauthorized("operator requests must be signed with signatureversion=3 and an expires time"))
		return
	}
	user, acct, e := s.authenticate(r, values)
	if e != nil {
		fail(e)
		return
	}
	if acct.Type != fsm.AccountTypeAdmin {
		fail(ErrUnauthorized("operator endpoints are for root admins"))
		return
	}
	req := &OperatorRequest{HTTP: r, Params: Params{Cmd: name, Values: values}, Caller: user}
	if stream != nil {
		if e := stream(w, req); e != nil {
			fail(e)
		}
		return
	}
	s.ops.mu.RLock()
	h := s.ops.h[name]
	s.ops.mu.RUnlock()
	if h == nil {
		fail(&Error{Code: http.StatusNotFound, Text: "no operator endpoint " + name + " on this server; is it the same version as the CLI?"})
		return
	}
	out, e := h(req)
	if e != nil {
		fail(e)
		return
	}
	writeOperatorJSON(w, http.StatusOK, out)
}

func writeOperatorJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, status = []byte(`{"errorcode":530,"errortext":"answer does not encode"}`), ErrCodeInternal
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
