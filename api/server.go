package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Cluster is what the API needs of the replicated core.
type Cluster interface {
	ID() string
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
	ConsistentRead(ctx context.Context) error
	State() *fsm.Store
	Status() cluster.Status
	Ready(ctx context.Context) (bool, string)
	InternalHandler() http.Handler
}

// MaxBodyBytes caps an API request body.
const MaxBodyBytes = 1 << 20

// Config configures a Server.
type Config struct {
	Cluster Cluster
	Logger  hclog.Logger
	Version string
	// Now is the clock for signature expiry; nil means time.Now.
	Now func() time.Time
	// RegistrationToken lets host agents register themselves (and be
	// added to the cluster they name); empty turns that off, leaving only
	// the host tokens of addHost.
	RegistrationToken string
	// Heartbeats, when set, takes agents' heartbeats on the leader (the
	// HA controller); followers pass heartbeats on to the leader.
	Heartbeats HeartbeatSink
	// ForwardClient relays heartbeats to the leader (TLS settings); nil
	// means a plain client with a 10 s timeout.
	ForwardClient *http.Client
}

// Server is the HTTP API of one Stratus node.
type Server struct {
	c      Cluster
	logger hclog.Logger
	ver    string
	now    func() time.Time
	cmds   registry
	router *mux.Router
	// regToken is the host registration token (see Config).
	regToken      string
	hb            HeartbeatSink
	forwardClient *http.Client
	ops           operatorRoutes
	replays       replayGuard
	peers         peerCache // agents' peer lists by cluster
}

// New builds the server and its routes.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{c: cfg.Cluster, logger: cfg.Logger.Named("api"), ver: cfg.Version, now: cfg.Now, cmds: registry{}, regToken: cfg.RegistrationToken,
		hb: cfg.Heartbeats, forwardClient: relayClient(cfg.ForwardClient)}
	s.cmds.add(zoneCommands()...)
	s.cmds.add(configCommands()...)
	s.cmds.add(userCommands()...)
	s.cmds.add(discoveryCommands(s)...)
	for _, group := range commandGroups {
		s.cmds.add(group(s)...)
	}

	r := mux.NewRouter()
	r.HandleFunc("/client/api", s.handleAPI).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/client/api/", s.handleAPI).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/v1/health", s.handleHealth).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v1/ready", s.handleReady).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/v1/status", s.handleStatus).Methods(http.MethodGet)
	r.PathPrefix("/internal/").Handler(cfg.Cluster.InternalHandler())
	s.agentRoutes(r)
	s.operatorRoute(r)
	s.metricsRoute(r)
	s.consoleRoute(r) // last: the catch-all for the web console
	s.router = r
	return s
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.router.ServeHTTP(w, r)
}

// Commands returns the names of every command, for docs and tests.
func (s *Server) Commands() []*Command { return s.cmds.sorted() }

// readParams gathers query and form parameters, first value of each name.
func readParams(w http.ResponseWriter, r *http.Request) (url.Values, *Error) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, ErrParam("request body exceeds the limit of %d bytes; send fewer or shorter parameters", MaxBodyBytes)
		}
		return nil, &Error{Code: ErrCodeMalformedParam, CSCode: CSServerAPI, Text: fmt.Sprintf("malformed request parameters: %v", err), TopLevel: true}
	}
	return r.Form, nil
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	values, perr := readParams(w, r)
	format := "xml"
	if values != nil {
		format = ResponseFormat(values)
	}
	cmdName := ""
	if values != nil {
		cmdName = values.Get("command")
	}
	status := http.StatusOK
	defer func() {
		d := time.Since(start)
		s.logger.Debug("api request", "command", cmdName, "method", r.Method, "status", status, "duration", d)
		s.observeAPI(cmdName, status, d.Seconds())
	}()
	fail := func(cmd string, e *Error) {
		status = e.Code
		WriteError(w, format, cmd, e)
	}
	if perr != nil {
		fail("", perr)
		return
	}
	if cmdName == "" {
		e := ErrParam("missing parameter command: name the API command to run, e.g. command=listZones")
		e.TopLevel = true
		fail("", e)
		return
	}
	if isSessionCommand(cmdName) {
		status = s.serveSession(w, r, cmdName, values, format)
		return
	}
	user, acct, aerr := s.authenticate(r, values)
	if aerr != nil {
		fail(cmdName, aerr)
		return
	}
	cmd, ok := s.cmds[cmdName]
	if !ok {
		fail("", ErrUnknownCommand(cmdName))
		return
	}
	if !s.permitted(acct, cmd) {
		fail(cmdName, ErrUnauthorized(fmt.Sprintf("The API %s does not exist or is not available for the account %s.", cmdName, acct.Name)))
		return
	}
	if e := s.enforcePost(r, values, cmd); e != nil {
		fail(cmdName, e)
		return
	}
	params := Params{Cmd: cmdName, Values: values}
	if e := params.Validate(cmd.Params); e != nil {
		fail(cmdName, e)
		return
	}
	req := &Request{Ctx: r.Context(), Params: params, Caller: user, Account: acct, Format: format, srv: s}
	// Writes too: their handlers validate against the local state (the
	// cluster a host joins, the zone a pod goes in), which on a follower
	// may not yet hold a write acknowledged a moment ago by another server.
	if cmd.Write || values.Get("consistency") != "stale" {
		if err := s.c.ConsistentRead(r.Context()); err != nil {
			fail(cmdName, s.clusterError(err))
			return
		}
	}
	req.state = s.c.State()
	body, herr := s.run(cmd, req)
	if herr != nil {
		fail(cmdName, herr)
		return
	}
	WriteResponse(w, format, strings.ToLower(cmdName)+"response", body)
}

// run calls the handler and turns a panic into a 530 instead of a dropped
// connection; the panic is logged for a bug report.
func (s *Server) run(cmd *Command, req *Request) (body any, e *Error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("command handler panicked", "command", cmd.Name, "panic", fmt.Sprint(p))
			body, e = nil, ErrInternal("internal error while running "+cmd.Name+"; the server log has details")
		}
	}()
	return cmd.Handler(req)
}

// enforcePost applies enforce.post.requests.and.timestamps.
func (s *Server) enforcePost(r *http.Request, values url.Values, cmd *Command) *Error {
	st := s.c.State()
	if !st.SettingBool(fsm.SettingEnforcePostAndTime) {
		return nil
	}
	if values.Get("sessionkey") == "" && values.Get("signatureversion") != "3" {
		return ErrUnauthorized("this cloud requires signatureversion=3 with an expires parameter on signed requests")
	}
	if exp := values.Get("expires"); exp != "" {
		if t, err := ParseExpires(exp); err == nil {
			max := time.Duration(st.SettingInt(fsm.SettingExpiresMaxAhead)) * time.Minute
			if t.Sub(s.now()) > max {
				return ErrUnauthorized(fmt.Sprintf("expires lies more than %s in the future", max))
			}
		}
	}
	if cmd.Write && r.Method != http.MethodPost {
		return &Error{Code: ErrCodeMethodNotAllowed, CSCode: CSServerAPI, Text: fmt.Sprintf("%s changes state and must be sent as an HTTP POST on this cloud", cmd.Name)}
	}
	return nil
}

// authenticate checks the caller's credentials and returns it: an API key
// with a valid signature, or a session (cookies plus the sessionkey
// parameter, see sessions.go). Disabled or locked users and accounts are
// refused either way.
func (s *Server) authenticate(r *http.Request, values url.Values) (*fsm.User, *fsm.Account, *Error) {
	apiKey := values.Get("apiKey")
	if apiKey == "" && hasSessionCredentials(r, values) {
		return s.authenticateSession(r, values)
	}
	if apiKey == "" || values.Get("signature") == "" {
		return nil, nil, ErrUnauthorized("unable to verify user credentials and/or request signature: send apiKey and signature")
	}
	st := s.c.State()
	user, err := st.UserByAPIKey(nil, apiKey)
	if err == nil && user == nil {
		// The key may be newer than this node's state: catch up and look again.
		if rerr := s.c.ConsistentRead(r.Context()); rerr == nil {
			st = s.c.State()
			user, err = st.UserByAPIKey(nil, apiKey)
		}
	}
	if err != nil || user == nil {
		return nil, nil, ErrUnauthorized("")
	}
	if e := Verify(values, user.SecretKey, s.now()); e != nil {
		return nil, nil, e
	}
	acct, err := st.Account(nil, user.AccountID)
	if err != nil || acct == nil {
		return nil, nil, ErrUnauthorized("")
	}
	if e := credentialState(user, acct); e != nil {
		return nil, nil, e
	}
	return user, acct, nil
}

// clusterError maps an error from the cluster to an API error.
func (s *Server) clusterError(err error) *Error {
	var se *fsm.StateError
	switch {
	case errors.As(err, &se):
		switch se.Kind {
		case fsm.KindInUse:
			return ErrInUse(se.Msg)
		case fsm.KindStale:
			// Another request changed the object between our read and our
			// write; CloudStack reports such races as a concurrent operation.
			return &Error{Code: ErrCodeInternal, CSCode: CSConcurrentOperation, Text: se.Msg}
		default:
			return ErrParam("%s", se.Msg)
		}
	case cluster.Retriable(err):
		return ErrUnavailable(err.Error())
	case errors.Is(err, cluster.ErrVersionGate):
		return ErrInternal(err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrUnavailable("the request was cancelled or timed out before the cluster answered; retry it")
	}
	s.logger.Error("cluster call failed", "error", err)
	return ErrInternal("internal error; the server log has details")
}

// apply commits a command for a handler and maps its errors.
func (r *Request) apply(t fsm.MessageType, body any) *Error {
	if _, err := r.srv.c.Apply(r.Ctx, t, body); err != nil {
		return r.srv.clusterError(err)
	}
	r.state = r.srv.c.State()
	return nil
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "id": s.c.ID(), "version": s.ver})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ok, why := s.c.Ready(r.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "reason": why, "id": s.c.ID()})
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.c.Status())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
