package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testCloud is the server side of the agent protocol for tests: it checks
// every request's signature, date and nonce as a management server must,
// signs its answers with the key the request was signed with, serves each
// host's desired state from a map with long polling and records what the
// agents send. Several httptest servers may share one cloud, as servers
// behind a load balancer share the replicated state.
type testCloud struct {
	t        *testing.T
	regToken string

	mu        sync.Mutex
	index     uint64
	changed   chan struct{} // closed and replaced on every change
	hosts     map[string]*cloudHost
	nextHost  int
	nonces    map[string]bool
	reports   []Report
	regs      []string // "registration" or "token" per registration
	badProof  bool     // sign answers with a wrong key
	failAll   int      // answer 503 to everything when > 0 (HTTP status)
	desiredOK bool     // false: answer 500 to desired-state requests
	badSent   int      // answers sent with a wrong proof
	failSent  int      // answers failed on purpose
	perServer map[string]int
	// onReport lets a test react as the servers would (mark a crashed
	// VM stopped); it runs under mu.
	onReport func(hostID string, r VMReport)
	leaseTTL Millis              // answered lease TTL; 0 means 1000
	peers    []Peer              // Desired.Peers of every host
	calls    []string            // authenticated requests: path, "?" and query
	regReqs  []RegisterRequest   // every registration request
	hbState  string              // answered host state; "" means Up
	onBeat   func(hostID string) // runs under mu before a heartbeat is answered
}

// cloudHost is one host record.
type cloudHost struct {
	id, token, address string
	vms                map[string]DesiredVM
	beats              []Heartbeat
}

func newCloud(t *testing.T) *testCloud {
	return &testCloud{
		t: t, regToken: "reg-secret", changed: make(chan struct{}), hosts: map[string]*cloudHost{},
		nonces: map[string]bool{}, desiredOK: true, perServer: map[string]int{}, index: 1,
	}
}

// serve starts one more server of the cloud, named for perServer counts.
func (c *testCloud) serve(name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.handle(name, w, r)
	}))
	c.t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return srv
}

// bump records a change. Callers hold c.mu.
func (c *testCloud) bump() {
	c.index++
	close(c.changed)
	c.changed = make(chan struct{})
}

// addHost adds a host as addHost would, with its token.
func (c *testCloud) addHost(id, token, address string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hosts[id] = &cloudHost{id: id, token: token, address: address, vms: map[string]DesiredVM{}}
	c.bump()
}

// deleteHost forgets a host.
func (c *testCloud) deleteHost(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.hosts, id)
	c.bump()
}

// setVM places or changes a desired VM on a host.
func (c *testCloud) setVM(hostID string, vm DesiredVM) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hosts[hostID].vms[vm.ID] = vm
	c.bump()
}

// editVM changes a desired VM in place.
func (c *testCloud) editVM(hostID, id string, edit func(*DesiredVM)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	vm := c.hosts[hostID].vms[id]
	edit(&vm)
	c.hosts[hostID].vms[id] = vm
	c.bump()
}

// removeVM takes a VM out of a host's desired state.
func (c *testCloud) removeVM(hostID, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.hosts[hostID].vms, id)
	c.bump()
}

// with runs f under the cloud's lock.
func (c *testCloud) with(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f()
}

// vmReports returns every report of VM id, oldest first.
func (c *testCloud) vmReports(id string) []VMReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []VMReport
	for _, r := range c.reports {
		for _, v := range r.VMs {
			if v.ID == id {
				out = append(out, v)
			}
		}
	}
	return out
}

// lastVM returns the newest report of VM id.
func (c *testCloud) lastVM(id string) (VMReport, bool) {
	rs := c.vmReports(id)
	if len(rs) == 0 {
		return VMReport{}, false
	}
	return rs[len(rs)-1], true
}

// volume returns the newest report of volume id.
func (c *testCloud) volume(id string) (VolumeReport, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out VolumeReport
	found := false
	for _, r := range c.reports {
		for _, v := range r.Volumes {
			if v.ID == id {
				out, found = v, true
			}
		}
	}
	return out, found
}

// beats returns how many heartbeats a host sent.
func (c *testCloud) beats(hostID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.hosts[hostID]; ok {
		return len(h.beats)
	}
	return 0
}

// fail answers an error without a proof, as a server that cannot tell who
// asked must.
func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// answer sends v with the proof of key for nonce.
func (c *testCloud) answer(w http.ResponseWriter, key, nonce string, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		c.t.Errorf("encode answer: %v", err)
	}
	c.mu.Lock()
	if c.badProof {
		key = "not-the-key"
		c.badSent++
	}
	c.mu.Unlock()
	w.Header().Set(HeaderProof, Proof(key, nonce, body))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// authenticate checks date, nonce and signature and returns the host (nil
// for a registration with the registration token) and the key.
func (c *testCloud) authenticate(r *http.Request, body []byte) (*cloudHost, string, int, error) {
	date, nonce, sig := r.Header.Get(HeaderDate), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)
	ts, err := time.Parse(time.RFC3339, date)
	if err != nil || time.Since(ts).Abs() > MaxClockSkew {
		return nil, "", http.StatusUnauthorized, fmt.Errorf("bad date %q", date)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if nonce == "" || c.nonces[nonce] {
		return nil, "", http.StatusUnauthorized, fmt.Errorf("missing or reused nonce")
	}
	c.nonces[nonce] = true
	canon := Canonical(r.Method, r.URL.RequestURI(), date, nonce, body)
	if id := r.Header.Get(HeaderHost); id != "" {
		h, ok := c.hosts[id]
		if !ok {
			return nil, "", http.StatusNotFound, fmt.Errorf("unknown host %s", id)
		}
		if !Equal(sig, Sign(h.token, canon)) {
			return nil, "", http.StatusUnauthorized, fmt.Errorf("bad signature")
		}
		return h, h.token, 0, nil
	}
	if r.URL.Path != PathRegister {
		return nil, "", http.StatusUnauthorized, fmt.Errorf("no host")
	}
	if Equal(sig, Sign(c.regToken, canon)) {
		return nil, c.regToken, 0, nil
	}
	for _, h := range c.hosts {
		if Equal(sig, Sign(h.token, canon)) {
			return h, h.token, 0, nil
		}
	}
	return nil, "", http.StatusUnauthorized, fmt.Errorf("bad signature")
}

func (c *testCloud) handle(server string, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	c.mu.Lock()
	c.perServer[server]++
	down := c.failAll
	c.mu.Unlock()
	if down > 0 {
		c.with(func() { c.failSent++ })
		fail(w, down, "servers down")
		return
	}
	h, key, status, err := c.authenticate(r, body)
	if err != nil {
		fail(w, status, err.Error())
		return
	}
	nonce := r.Header.Get(HeaderNonce)
	c.with(func() { c.calls = append(c.calls, r.URL.Path+"?"+r.URL.RawQuery) })
	switch r.URL.Path {
	case PathRegister:
		c.register(w, h, key, nonce, body)
	case PathHeartbeat:
		var hb Heartbeat
		if err := json.Unmarshal(body, &hb); err != nil || hb.HostID != h.id {
			fail(w, http.StatusBadRequest, "bad heartbeat")
			return
		}
		state := "Up"
		c.with(func() {
			h.beats = append(h.beats, hb)
			if c.hbState != "" {
				state = c.hbState
			}
			if c.onBeat != nil {
				c.onBeat(h.id)
			}
		})
		c.answer(w, key, nonce, http.StatusOK, HeartbeatResponse{State: state, HeartbeatInterval: 50, LeaseTTL: c.ttl()})
	case PathDesired:
		c.desired(w, r, h, key, nonce)
	case PathReport:
		var rep Report
		if err := json.Unmarshal(body, &rep); err != nil || rep.HostID != h.id {
			fail(w, http.StatusBadRequest, "bad report")
			return
		}
		var index uint64
		c.with(func() {
			c.reports = append(c.reports, rep)
			for _, v := range rep.VMs {
				if c.onReport != nil {
					c.onReport(h.id, v)
				}
			}
			c.bump()
			index = c.index
		})
		c.answer(w, key, nonce, http.StatusOK, ReportResponse{Index: index})
	default:
		fail(w, http.StatusNotFound, "no such path")
	}
}

func (c *testCloud) register(w http.ResponseWriter, h *cloudHost, key, nonce string, body []byte) {
	var req RegisterRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Address == "" || req.URI == "" {
		fail(w, http.StatusBadRequest, "bad registration")
		return
	}
	resp := RegisterResponse{HeartbeatInterval: 50, LeaseTTL: c.ttl()}
	c.mu.Lock()
	c.regReqs = append(c.regReqs, req)
	if h == nil {
		c.regs = append(c.regs, "registration")
		for _, o := range c.hosts {
			if o.address == req.Address {
				h = o
			}
		}
		if h == nil {
			c.nextHost++
			h = &cloudHost{id: "host-" + strconv.Itoa(c.nextHost), address: req.Address, vms: map[string]DesiredVM{}}
			c.hosts[h.id] = h
		}
		h.token = "token-of-" + h.id + "-" + strconv.Itoa(len(c.regs))
		resp.Token = h.token
		c.bump()
	} else {
		c.regs = append(c.regs, "token")
	}
	resp.HostID = h.id
	c.mu.Unlock()
	c.answer(w, key, nonce, http.StatusOK, resp)
}

// desired answers the host's desired state at once when the cloud's index
// passed the asked one, else when it changes or the wait runs out.
func (c *testCloud) desired(w http.ResponseWriter, r *http.Request, h *cloudHost, key, nonce string) {
	index, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	waitMS, _ := strconv.Atoi(r.URL.Query().Get("wait"))
	deadline := time.NewTimer(time.Duration(waitMS) * time.Millisecond)
	defer deadline.Stop()
wait:
	for {
		c.mu.Lock()
		ok, cur, ch := c.desiredOK, c.index, c.changed
		c.mu.Unlock()
		if !ok {
			c.with(func() { c.failSent++ })
			fail(w, http.StatusInternalServerError, "desired state unavailable")
			return
		}
		if cur > index {
			break
		}
		select {
		case <-ch:
		case <-deadline.C:
			break wait
		case <-r.Context().Done():
			return
		}
	}
	c.mu.Lock()
	d := Desired{Index: c.index, HostState: "Up", ResourceState: "Enabled", VMs: []DesiredVM{}, Peers: c.peers}
	for _, vm := range h.vms {
		d.VMs = append(d.VMs, vm)
	}
	c.mu.Unlock()
	sort.Slice(d.VMs, func(i, j int) bool { return d.VMs[i].ID < d.VMs[j].ID })
	c.answer(w, key, nonce, http.StatusOK, d)
}

// ttl is the lease TTL the cloud answers.
func (c *testCloud) ttl() Millis {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaseTTL > 0 {
		return c.leaseTTL
	}
	return 1000
}

// logWriter routes agent logs through t.Log.
type logWriter struct{ t *testing.T }

func (l logWriter) Write(p []byte) (int, error) {
	l.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
