package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// Sessions: username and password login, as CloudStack's UI and cmk use it.
//
// login (POST only) checks the password and commits a Session row holding
// the session's ID, its user, its expiry and a hash of a fresh random
// session key. The reply sets two cookies, JSESSIONID (the session ID) and
// sessionkey, and carries the key in loginresponse. Every later request
// sends both cookies and the key again as the sessionkey parameter
// (CloudStack's CookieAndParameter check); any node can verify it, since
// the session is replicated. logout deletes the row and expires the
// cookies.

// Cookie names and path of a session.
const (
	sessionCookie    = "JSESSIONID"
	sessionKeyCookie = "sessionkey"
	sessionPath      = "/client"
	// maxPrunePerLogin bounds how many expired sessions a login removes.
	maxPrunePerLogin = 100
)

var loginFields = withJobFields(
	ResponseField{Name: "username", Type: "string", Description: "Login name."},
	ResponseField{Name: "userid", Type: "string", Description: "User ID."},
	ResponseField{Name: "domainid", Type: "string", Description: "ID of the user's domain."},
	ResponseField{Name: "timeout", Type: "integer", Description: "Seconds the session lives without use."},
	ResponseField{Name: "account", Type: "string", Description: "Name of the user's account."},
	ResponseField{Name: "firstname", Type: "string", Description: "Given name."},
	ResponseField{Name: "lastname", Type: "string", Description: "Family name."},
	ResponseField{Name: "type", Type: "string", Description: "Account type: 0 user, 1 root admin, 2 domain admin."},
	ResponseField{Name: "timezone", Type: "string", Description: "The user's time zone, if set."},
	ResponseField{Name: "timezoneoffset", Type: "string", Description: "That time zone's current offset from UTC, in hours."},
	ResponseField{Name: "registered", Type: "string", Description: "Always false."},
	ResponseField{Name: "sessionkey", Type: "string", Description: "Key to send as the sessionkey parameter with every request of the session."},
	ResponseField{Name: "is2faenabled", Type: "string", Description: "Always false: two-factor login is not offered."},
	ResponseField{Name: "is2faverified", Type: "string", Description: "Always false."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		never := func(*Request) (any, *Error) {
			return nil, ErrInternal("login and logout are answered before command dispatch")
		}
		return []*Command{
			{
				Name: "login", Description: "Signs a user in with its password and opens a session (POST only).",
				Write: true, Access: AccessUser, Response: loginFields, Handler: never,
				Params: []ParamSpec{
					{Name: "username", Type: "string", Required: true, Description: "Login name."},
					{Name: "password", Type: "string", Required: true, Description: "Password."},
					{Name: "domain", Type: "string", Description: "Path of the user's domain below ROOT, e.g. /eng/web/; ROOT when absent."},
					{Name: "domainId", Type: "long", Description: "ID of the user's domain, instead of domain."},
				},
			},
			{
				Name: "logout", Description: "Ends the caller's session.", Access: AccessUser, Handler: never,
				Response: withJobFields(ResponseField{Name: "description", Type: "string", Description: "success"}),
			},
		}
	})
}

// isSessionCommand reports whether handleAPI must pass the request to
// serveSession instead of authenticating it.
func isSessionCommand(cmd string) bool { return cmd == "login" || cmd == "logout" }

// serveSession answers login and logout and returns the HTTP status sent.
func (s *Server) serveSession(w http.ResponseWriter, r *http.Request, cmd string, values url.Values, format string) int {
	var body any
	var e *Error
	if cmd == "login" {
		body, e = s.login(w, r, values, format)
	} else {
		body, e = s.logout(w, r, values, format)
	}
	if e != nil {
		WriteError(w, format, cmd, e)
		return e.Code
	}
	WriteResponse(w, format, cmd+"response", body)
	return http.StatusOK
}

func loginFailed(username, domain string) *Error {
	return &Error{Code: ErrCodeAccount, CSCode: CSServerAPI, Text: fmt.Sprintf(
		"Failed to authenticate user %s in domain %s; please provide valid credentials", username, domain)}
}

// loginDomain finds the domain a login names: domainId (a UUID here, where
// CloudStack takes its numeric id too), else the domain path relative to
// ROOT with or without slashes ("/", "/eng/", "eng/web"), ROOT when absent.
// A path that already starts with ROOT/ is also understood.
func loginDomain(st *fsm.Store, p Params) (*fsm.Domain, string) {
	if id := p.String("domainId"); id != "" {
		if !IsUUID(id) {
			return nil, id
		}
		d, _ := st.Domain(nil, strings.ToLower(id))
		return d, id
	}
	rel := strings.Trim(strings.TrimSpace(p.String("domain")), "/")
	candidates := []string{"ROOT"}
	if rel != "" {
		candidates = []string{"ROOT/" + rel}
		if up := strings.ToUpper(rel); up == "ROOT" || strings.HasPrefix(up, "ROOT/") {
			candidates = append(candidates, rel)
		}
	}
	for _, path := range candidates {
		if ds, _ := fsm.List[fsm.Domain](st, nil, fsm.TableDomains, "path", path); len(ds) > 0 {
			return ds[0], ds[0].Path
		}
	}
	return nil, "/" + rel
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, values url.Values, format string) (any, *Error) {
	if r.Method != http.MethodPost {
		return nil, &Error{Code: ErrCodeMethodNotAllowed, Text: "Please use HTTP POST to authenticate using this API"}
	}
	p := Params{Cmd: "login", Values: values}
	if e := p.Validate([]ParamSpec{{Name: "username", Type: ParamString, Required: true}, {Name: "password", Type: ParamString, Required: true}}); e != nil {
		return nil, e
	}
	if err := s.c.ConsistentRead(r.Context()); err != nil {
		return nil, s.clusterError(err)
	}
	st := s.c.State()
	username, password := p.String("username"), p.String("password")
	dom, domLabel := loginDomain(st, p)
	var user *fsm.User
	if dom != nil {
		user = userByName(st, dom.ID, username)
	}
	if !passwordMatches(user, password) {
		return nil, loginFailed(username, domLabel)
	}
	acct, _ := st.Account(nil, user.AccountID)
	if acct == nil || credentialState(user, acct) != nil {
		return nil, loginFailed(username, domLabel)
	}
	now := s.now().UTC()
	timeout := sessionTimeout(st)
	key := fsm.NewKey(20)
	sess := &fsm.Session{ID: randomHex(16), UserID: user.ID, AccountID: acct.ID, KeyHash: sessionKeyHash(key),
		Created: now, Expires: now.Add(timeout)}
	req := &Request{Ctx: r.Context(), Params: p, Caller: user, Account: acct, Format: format, srv: s, state: st}
	ops := append([]fsm.TxnOp{fsm.Create(fsm.TableSessions, sess)}, pruneSessions(st, now)...)
	ops = append(ops, req.event("USER.LOGIN", "User", user.ID, "user %s signed in", user.Username))
	if e := req.commit(ops...); e != nil {
		return nil, e
	}
	secure := r.TLS != nil
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sess.ID, Path: sessionPath, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: sessionKeyCookie, Value: key, Path: sessionPath, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
	body := map[string]any{
		"username": user.Username, "userid": user.ID, "domainid": user.DomainID, "timeout": int(timeout / time.Second),
		"account": acct.Name, "firstname": user.FirstName, "lastname": user.LastName, "type": strconv.Itoa(acct.Type),
		"registered": "false", "sessionkey": key, "is2faenabled": "false", "is2faverified": "false",
	}
	if user.Timezone != "" {
		body["timezone"] = user.Timezone
		if loc, err := time.LoadLocation(user.Timezone); err == nil {
			_, off := now.In(loc).Zone()
			h := strconv.FormatFloat(float64(off)/3600, 'f', -1, 64)
			if !strings.Contains(h, ".") {
				h += ".0"
			}
			body["timezoneoffset"] = h
		}
	}
	if acct.Type == fsm.AccountTypeAdmin {
		body["managementserverid"] = mgmtServerID(s.c.ID())
	}
	return body, nil
}

// pruneSessions returns ops removing sessions that expired before now, at
// most maxPrunePerLogin of them.
func pruneSessions(st *fsm.Store, now time.Time) []fsm.TxnOp {
	all, _ := fsm.List[fsm.Session](st, nil, fsm.TableSessions, "create")
	var ops []fsm.TxnOp
	for _, old := range all {
		if len(ops) == maxPrunePerLogin {
			break
		}
		if !now.Before(old.Expires) {
			op := fsm.Delete(fsm.TableSessions, old.ID)
			op.IfExists = true
			ops = append(ops, op)
		}
	}
	return ops
}

func sessionTimeout(st *fsm.Store) time.Duration {
	secs := st.SettingInt(fsm.SettingSessionTimeout)
	if secs < 1 {
		d, _ := fsm.LookupSettingDef(fsm.SettingSessionTimeout)
		secs, _ = strconv.Atoi(d.Default)
	}
	return time.Duration(secs) * time.Second
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("api: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// requestSession finds the session a request's JSESSIONID cookie names,
// catching up with the leader once if this node does not know it yet, and
// checks the presented key against it. It returns the session and the
// store it was read from, or nil when there is no valid session.
func (s *Server) requestSession(r *http.Request, key string) (*fsm.Session, *fsm.Store) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" || key == "" {
		return nil, nil
	}
	// Jetty adds ".<worker>" to the session ID in the cookie; accept that.
	id, _, _ := strings.Cut(c.Value, ".")
	st := s.c.State()
	sess, err := fsm.Get[fsm.Session](st, nil, fsm.TableSessions, id)
	if err == nil && sess == nil {
		// The login may have happened through another node moments ago.
		if rerr := s.c.ConsistentRead(r.Context()); rerr == nil {
			st = s.c.State()
			sess, err = fsm.Get[fsm.Session](st, nil, fsm.TableSessions, id)
		}
	}
	if err != nil || sess == nil || !sessionKeyMatches(sess.KeyHash, key) {
		return nil, nil
	}
	return sess, st
}

// authenticateSession authenticates a request of a session: the JSESSIONID
// and sessionkey cookies plus the sessionkey parameter, all matching a
// live session of an enabled user.
func (s *Server) authenticateSession(r *http.Request, values url.Values) (*fsm.User, *fsm.Account, *Error) {
	key := Params{Values: values}.String("sessionkey")
	if ck, err := r.Cookie(sessionKeyCookie); err != nil || key == "" || ck.Value != key {
		return nil, nil, ErrUnauthorized("")
	}
	sess, st := s.requestSession(r, key)
	if sess == nil {
		return nil, nil, ErrUnauthorized("")
	}
	now := s.now().UTC()
	if !now.Before(sess.Expires) {
		return nil, nil, ErrUnauthorized("the session has expired; log in again")
	}
	user, _ := st.User(nil, sess.UserID)
	if user == nil {
		return nil, nil, ErrUnauthorized("")
	}
	acct, _ := st.Account(nil, user.AccountID)
	if acct == nil {
		return nil, nil, ErrUnauthorized("")
	}
	if e := credentialState(user, acct); e != nil {
		return nil, nil, e
	}
	// A session in use lives on: past half its lifetime, push the expiry
	// out again. Losing this write (a concurrent refresh won) is harmless.
	if timeout := sessionTimeout(st); sess.Expires.Sub(now) < timeout/2 {
		c := *sess
		c.Expires = now.Add(timeout)
		_, _ = s.c.Apply(r.Context(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableSessions, &c)}})
	}
	return user, acct, nil
}

// credentialState refuses users and accounts that are not enabled.
func credentialState(user *fsm.User, acct *fsm.Account) *Error {
	if user.State != fsm.StateEnabled || acct.State != fsm.StateEnabled {
		return ErrUnauthorized("the user or its account is disabled or locked")
	}
	return nil
}

// hasSessionCredentials reports whether a request presents a session
// rather than an API key.
func hasSessionCredentials(r *http.Request, values url.Values) bool {
	if (Params{Values: values}).String("sessionkey") != "" {
		return true
	}
	_, err := r.Cookie(sessionCookie)
	return err == nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, values url.Values, format string) (any, *Error) {
	key := Params{Values: values}.String("sessionkey")
	if key == "" {
		if ck, err := r.Cookie(sessionKeyCookie); err == nil {
			key = ck.Value
		}
	}
	if sess, st := s.requestSession(r, key); sess != nil {
		user, _ := st.User(nil, sess.UserID)
		acct, _ := st.Account(nil, sess.AccountID)
		if user != nil && acct != nil {
			req := &Request{Ctx: r.Context(), Params: Params{Cmd: "logout", Values: values}, Caller: user, Account: acct,
				Format: format, srv: s, state: st}
			del := fsm.Delete(fsm.TableSessions, sess.ID)
			del.IfExists = true
			if e := req.commit(del, req.event("USER.LOGOUT", "User", user.ID, "user %s signed out", user.Username)); e != nil {
				return nil, e
			}
		}
	}
	for _, name := range []string{sessionCookie, sessionKeyCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: sessionPath, MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil})
	}
	return map[string]any{"description": "success"}, nil
}
