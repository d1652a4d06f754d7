package api

import (
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

func get(t *testing.T, s http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func wantConsoleHeaders(t *testing.T, rec *httptest.ResponseRecorder, target, ctype string) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", target, rec.Code, rec.Body.String())
	}
	for k, want := range map[string]string{
		"Content-Type":            ctype,
		"Content-Security-Policy": ConsoleCSP,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-cache",
	} {
		if got := rec.Header().Get(k); got != want {
			t.Errorf("GET %s: %s = %q, want %q", target, k, got, want)
		}
	}
}

func TestConsoleIndexAtRoot(t *testing.T) {
	s, _ := newTestServer(t)
	rec := get(t, s, http.MethodGet, "/", nil)
	wantConsoleHeaders(t, rec, "/", "text/html; charset=utf-8")
	body := rec.Body.String()
	if !strings.Contains(body, `<script type="module" src="/ui/app.js"></script>`) {
		t.Fatalf("index does not load /ui/app.js as a module:\n%s", body)
	}
	// The CSP allows no inline code or style: every script has a src, and
	// there is no <style> element or style attribute.
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if !strings.Contains(m, "src=") {
			t.Errorf("inline script in index: %s", m)
		}
	}
	if strings.Contains(body, "<style") || strings.Contains(body, " style=") {
		t.Error("index has inline style, which the CSP refuses")
	}
	for _, ref := range regexp.MustCompile(`(?:src|href)="(/ui/[^"]+)"`).FindAllStringSubmatch(body, -1) {
		if r := get(t, s, http.MethodGet, ref[1], nil); r.Code != http.StatusOK {
			t.Errorf("index references %s, which answers %d", ref[1], r.Code)
		}
	}
	if head := get(t, s, http.MethodHead, "/", nil); head.Code != http.StatusOK || head.Body.Len() != 0 {
		t.Errorf("HEAD /: status %d, %d body bytes", head.Code, head.Body.Len())
	}
	if r := get(t, s, http.MethodGet, "/index.html", nil); r.Code != http.StatusOK || r.Body.String() != body {
		t.Errorf("/index.html: status %d, not the index", r.Code)
	}
}

// TestConsoleAssets serves every embedded file with its type and the
// console's headers, and checks that every module import resolves.
func TestConsoleAssets(t *testing.T) {
	s, _ := newTestServer(t)
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"\n;]*?(?:from\s*)?['"](\.{1,2}/[^'"]+)['"]`)
	total := 0
	seen := 0
	err := fs.WalkDir(consoleFiles, "web/ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		target := strings.TrimPrefix(p, "web")
		want, ok := types[path.Ext(p)]
		if !ok {
			t.Errorf("%s: an asset of a kind the console does not serve", p)
			return nil
		}
		seen++
		rec := get(t, s, http.MethodGet, target, nil)
		wantConsoleHeaders(t, rec, target, want)
		src, _ := consoleFiles.ReadFile(p)
		if rec.Body.String() != string(src) {
			t.Errorf("GET %s: body differs from the embedded file", target)
		}
		total += len(src)
		etag := rec.Header().Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", target)
		} else if r := get(t, s, http.MethodGet, target, map[string]string{"If-None-Match": etag}); r.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: status %d, want 304", target, r.Code)
		}
		if path.Ext(p) == ".js" {
			for _, m := range importRe.FindAllStringSubmatch(string(src), -1) {
				dep := path.Join(path.Dir(target), m[1])
				if r := get(t, s, http.MethodGet, dep, nil); r.Code != http.StatusOK {
					t.Errorf("%s imports %s, which answers %d", target, dep, r.Code)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"/ui/app.js", "/ui/core/api.js", "/ui/core/ui.js", "/ui/core/router.js", "/ui/style.css", "/ui/favicon.svg", "/ui/admin/index.js"} {
		if r := get(t, s, http.MethodGet, must, nil); r.Code != http.StatusOK {
			t.Errorf("%s: status %d", must, r.Code)
		}
	}
	if seen < 8 {
		t.Fatalf("only %d assets embedded", seen)
	}
	// A budget that keeps the console light (unminified, uncompressed).
	if total > 250<<10 {
		t.Errorf("console assets total %d bytes, over the 250 KiB budget", total)
	}
	t.Logf("%d assets, %d bytes", seen, total)
}

// TestConsoleViewsBuildDOMSafely keeps API text out of markup in every
// view: no innerHTML, outerHTML, insertAdjacentHTML or document.write, no
// code from strings (eval, new Function, a string handler), no inline
// style attributes; no session in localStorage or in a URL.
func TestConsoleViewsBuildDOMSafely(t *testing.T) {
	bad := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|setAttribute\(\s*['"](style|on)|\beval\(|new Function\(|set(Timeout|Interval)\(\s*['"\x60]|createContextualFragment|DOMParser|localStorage\.setItem|[?&]sessionkey=`)
	for _, dir := range []string{"web/ui/core", "web/ui/tenant", "web/ui/admin", "web/ui"} {
		entries, err := fs.ReadDir(consoleFiles, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() || path.Ext(e.Name()) != ".js" {
				continue
			}
			src, _ := consoleFiles.ReadFile(dir + "/" + e.Name())
			if m := bad.Find(src); m != nil {
				t.Errorf("%s/%s uses %s", dir, e.Name(), m)
			}
		}
	}
}

func TestConsoleUnknownPaths(t *testing.T) {
	s, _ := newTestServer(t)
	for _, target := range []string{"/ui/nope.js", "/ui/", "/ui/core/", "/ui", "/nothing", "/web/index.html", "/console.go", "/ui/core/api.js.map"} {
		rec := get(t, s, http.MethodGet, target, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", target, rec.Code)
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", target, got)
		}
	}
	// Dotted paths are cleaned by the router (a redirect) and then miss.
	for _, target := range []string{"/ui/../api/console.go", "/ui/core/../../console.go"} {
		rec := get(t, s, http.MethodGet, target, nil)
		loc := rec.Header().Get("Location")
		if rec.Code == http.StatusOK || (rec.Code != http.StatusNotFound && loc == "") {
			t.Fatalf("GET %s: status %d, Location %q", target, rec.Code, loc)
		}
		if loc != "" {
			if r := get(t, s, http.MethodGet, loc, nil); r.Code != http.StatusNotFound {
				t.Errorf("GET %s (from %s): status %d, want 404", loc, target, r.Code)
			}
		}
	}
	// The console takes only GET and HEAD.
	if rec := get(t, s, http.MethodPost, "/ui/app.js", nil); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/app.js: status %d, want 405", rec.Code)
	}
}

// TestConsoleLeavesAPIAlone checks the catch-all takes nothing from the
// API: sessions, ops endpoints and wrong methods answer as before.
func TestConsoleLeavesAPIAlone(t *testing.T) {
	f := newIdentityFixture(t)
	s := f.s
	rec := login(t, s, url.Values{"username": {"alice"}, "password": {testPassword}, "domain": {"eng/"}})
	key, _ := decode(t, rec, "loginresponse")["sessionkey"].(string)
	if rec.Code != http.StatusOK || key == "" {
		t.Fatalf("login through the router: %d %s", rec.Code, rec.Body.String())
	}
	z := inSession(t, s, rec.Result().Cookies(), key, map[string]string{"command": "listZones"})
	if z.Code != http.StatusOK || !strings.HasPrefix(z.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("listZones in the session: %d %s", z.Code, z.Body.String())
	}
	if z.Header().Get("Content-Security-Policy") != "" {
		t.Error("API answers carry the console's CSP")
	}
	if h := get(t, s, http.MethodGet, "/v1/health", nil); h.Code != http.StatusOK || !strings.Contains(h.Body.String(), `"status": "ok"`) {
		t.Errorf("/v1/health: %d %s", h.Code, h.Body.String())
	}
	for _, target := range []string{PathMetrics, "/v1/status"} {
		r := get(t, s, http.MethodGet, target, nil)
		if r.Code != http.StatusOK || strings.HasPrefix(r.Header().Get("Content-Type"), "text/html") {
			t.Errorf("GET %s: status %d, type %q: the console answered it", target, r.Code, r.Header().Get("Content-Type"))
		}
	}
	for _, target := range []string{"/client/api", "/v1/health"} {
		if r := get(t, s, http.MethodDelete, target, nil); r.Code != http.StatusMethodNotAllowed {
			t.Errorf("DELETE %s: status %d, want 405", target, r.Code)
		}
	}
}

// TestConsoleRoutesOfTheContract checks that the view modules app.js
// loads register every page of the console contract.
func TestConsoleRoutesOfTheContract(t *testing.T) {
	want := []string{"/login", "/vms", "/vms/:id", "/deploy", "/volumes", "/snapshots", "/jobs", "/keys",
		"/admin/infra", "/admin/hosts/:id", "/admin/templates", "/admin/offerings", "/admin/accounts", "/admin/events", "/admin/cluster"}
	routeRe := regexp.MustCompile(`\broute\(\s*'([^']+)'`)
	got := map[string]string{}
	err := fs.WalkDir(consoleFiles, "web/ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		src, _ := consoleFiles.ReadFile(p)
		for _, m := range routeRe.FindAllStringSubmatch(string(src), -1) {
			if prev, dup := got[m[1]]; dup {
				t.Errorf("route %s registered twice: %s and %s", m[1], prev, p)
			}
			got[m[1]] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Only modules app.js reaches through its imports take part.
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"\n;]*?(?:from\s*)?['"](\.{1,2}/[^'"]+)['"]`)
	reached := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		if reached[p] {
			return
		}
		reached[p] = true
		src, _ := consoleFiles.ReadFile(p)
		for _, m := range importRe.FindAllStringSubmatch(string(src), -1) {
			walk(path.Join(path.Dir(p), m[1]))
		}
	}
	walk("web/ui/app.js")
	for _, r := range want {
		if file, ok := got[r]; !ok {
			t.Errorf("no view module registers the contract's page #%s", r)
		} else if !reached[file] {
			t.Errorf("%s registers #%s but app.js does not import it", file, r)
		}
	}
}

// consoleJS answers every embedded .js file by its path under web/ui.
func consoleJS(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(consoleFiles, "web/ui", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".js" {
			return err
		}
		src, rerr := consoleFiles.ReadFile(p)
		out[p] = string(src)
		return rerr
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConsoleNamedImportsExist checks that every name a module imports is
// exported by the module it names: one missing export is a SyntaxError
// that stops the whole console from loading.
func TestConsoleNamedImportsExist(t *testing.T) {
	files := consoleJS(t)
	importRe := regexp.MustCompile(`(?s)\bimport\s*\{([^}]*)\}\s*from\s*['"](\.{1,2}/[^'"]+)['"]`)
	declRe := regexp.MustCompile(`(?m)^export\s+(?:async\s+)?(?:function\*?|const|let|var|class)\s+([A-Za-z_$][\w$]*)`)
	listRe := regexp.MustCompile(`(?m)^export\s*\{([^}]*)\}`)
	exports := map[string]map[string]bool{}
	for p, src := range files {
		names := map[string]bool{}
		for _, m := range declRe.FindAllStringSubmatch(src, -1) {
			names[m[1]] = true
		}
		for _, m := range listRe.FindAllStringSubmatch(src, -1) {
			for _, n := range strings.Split(m[1], ",") {
				f := strings.Fields(n)
				if len(f) > 0 {
					names[f[len(f)-1]] = true // "a as b" exports b
				}
			}
		}
		exports[p] = names
	}
	checked := 0
	for p, src := range files {
		for _, m := range importRe.FindAllStringSubmatch(src, -1) {
			dep := path.Join(path.Dir(p), m[2])
			names, ok := exports[dep]
			if !ok {
				t.Errorf("%s imports from %s, which is not embedded", p, dep)
				continue
			}
			for _, n := range strings.Split(m[1], ",") {
				f := strings.Fields(n)
				if len(f) == 0 {
					continue
				}
				checked++
				if !names[f[0]] {
					t.Errorf("%s imports %s from %s, which does not export it", p, f[0], dep)
				}
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d imported names found: the pattern no longer matches the modules", checked)
	}
}

// TestConsoleLinksAreSafe checks that no link or source is built from API
// text the console did not check: every href/src is a literal of the
// console's own (#/... or /ui/...) or a template that starts with '#',
// and h() passes every URL attribute through safeURL, which refuses
// javascript: and other schemes.
func TestConsoleLinksAreSafe(t *testing.T) {
	files := consoleJS(t)
	attrRe := regexp.MustCompile(`['{,]\s*'?(href|src)'?\s*:\s*(\S{1,12})`)
	literal := regexp.MustCompile("^(?:'[#/]|`#|homeFor\\(s\\))")
	links := 0
	for p, src := range files {
		for _, m := range attrRe.FindAllStringSubmatch(src, -1) {
			links++
			if v := strings.TrimSpace(m[2]); !literal.MatchString(v) {
				t.Errorf("%s: %s: %s is not a literal link of the console's own", p, m[1], v)
			}
		}
	}
	if links < 15 {
		t.Fatalf("only %d links found: the pattern no longer matches the modules", links)
	}
	ui := files["web/ui/core/ui.js"]
	for _, want := range []string{"URL_ATTRS.has(k)", "el.setAttribute(k, safeURL(v))", "export function safeURL", "must be a function"} {
		if !strings.Contains(ui, want) {
			t.Errorf("ui.js h() lost its URL or handler check (%q)", want)
		}
	}
}

// TestConsoleRootOnlyPagesLeaveTheNav checks that every page that refuses
// domain admins (rootOnly(el, ...)) is marked rootOnly in its route, so
// the navigation does not offer it to them, and that the router hides
// such pages.
func TestConsoleRootOnlyPagesLeaveTheNav(t *testing.T) {
	files := consoleJS(t)
	routeRe := regexp.MustCompile(`(?s)\broute\(\s*'([^']+)'\s*,\s*\{(.*?)\basync render\(el[^)]*\)\s*\{(.{0,200})`)
	gated := 0
	for p, src := range files {
		for _, m := range routeRe.FindAllStringSubmatch(src, -1) {
			refuses := strings.Contains(m[3], "rootOnly(el")
			marked := regexp.MustCompile(`\brootOnly:\s*true`).MatchString(m[2])
			if refuses != marked {
				t.Errorf("%s: route %s: refuses non-root admins %v, marked rootOnly %v", p, m[1], refuses, marked)
			}
			if refuses {
				gated++
			}
		}
	}
	if gated < 4 {
		t.Errorf("only %d root-only pages found (infrastructure, host, offerings, cluster)", gated)
	}
	if !strings.Contains(files["web/ui/core/router.js"], "r.rootOnly && !(s && s.isRootAdmin)") {
		t.Error("router.js does not hide root-only pages from other accounts")
	}
}

// TestConsoleBadgeTones checks that every state the API can answer has a
// tone in badge() (ui.js TONES), and that every tone has a style.
func TestConsoleBadgeTones(t *testing.T) {
	src, err := consoleFiles.ReadFile("web/ui/core/ui.js")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile(`(?s)const TONES = \{(.*?)\n\};`).FindSubmatch(src)
	if body == nil {
		t.Fatal("ui.js has no TONES table")
	}
	tones := map[string]string{}
	for _, line := range regexp.MustCompile(`(?s)(\w+):\s*\[(.*?)\]`).FindAllSubmatch(body[1], -1) {
		for _, st := range regexp.MustCompile(`'([^']+)'`).FindAllSubmatch(line[2], -1) {
			k := strings.ToLower(string(st[1]))
			if prev, dup := tones[k]; dup && prev != string(line[1]) {
				t.Errorf("state %s has two tones: %s and %s", st[1], prev, line[1])
			}
			tones[k] = string(line[1])
		}
	}
	states := []string{
		fsm.VMStarting, fsm.VMRunning, fsm.VMStopping, fsm.VMStopped, fsm.VMMigrating, fsm.VMDestroyed, fsm.VMExpunging, fsm.VMError,
		fsm.VolumeAllocated, fsm.VolumeCreating, fsm.VolumeReady, fsm.VolumeDestroy, fsm.SnapshotCreating, fsm.SnapshotBackedUp,
		fsm.HostStateUp, fsm.HostStateDown, fsm.HostStateDisconnected, fsm.HostStateAlert, fsm.HostStateConnecting,
		fsm.ResourceStateEnabled, fsm.ResourceStateDisabled, fsm.ResourceStatePrepareMaintenance, fsm.ResourceStateErrorInMaintenance,
		fsm.ResourceStateMaintenance, fsm.ResourceStateDegraded,
		fsm.HAStateDisabled, fsm.HAStateAvailable, fsm.HAStateSuspect, fsm.HAStateFencing, fsm.HAStateFenced, fsm.HAStateIneligible,
		fsm.PoolStateUp, fsm.PoolStateDisabled, fsm.OfferingStateActive, fsm.StateEnabled, fsm.StateDisabled, fsm.StateLocked,
		fsm.DownloadNotDownloaded, fsm.DownloadInProgress, fsm.DownloadDownloaded, fsm.DownloadError, fsm.DownloadAbandoned,
		fsm.EventInfo, fsm.EventError, "WARN", "Completed", // event levels and states
		"Pending", "Succeeded", "Failed", // job statuses as the jobs page names them
		"Up", "Down", "leader", "follower", "candidate", "shutdown", "unknown", // management servers, raft roles
		"alive", "suspect", "dead", "left", // gossip
		"On", "Off", "Unknown", // out-of-band power
	}
	for _, st := range states {
		if _, ok := tones[strings.ToLower(st)]; !ok {
			t.Errorf("state %q has no badge tone (it shows grey as if it meant nothing)", st)
		}
	}
	for want, tone := range map[string]string{fsm.ResourceStateDegraded: "warn", fsm.VMRunning: "ok", fsm.HostStateAlert: "bad", fsm.VMError: "bad",
		fsm.ResourceStatePrepareMaintenance: "busy", fsm.ResourceStateErrorInMaintenance: "bad", fsm.HostStateDisconnected: "bad",
		fsm.VMExpunging: "busy", fsm.VMMigrating: "busy", fsm.VMDestroyed: "bad", fsm.ResourceStateMaintenance: "off"} {
		if tones[strings.ToLower(want)] != tone {
			t.Errorf("state %s has tone %q, want %q", want, tones[strings.ToLower(want)], tone)
		}
	}
	css, _ := consoleFiles.ReadFile("web/ui/style.css")
	for _, tone := range tones {
		if !strings.Contains(string(css), fmt.Sprintf(".badge-%s {", tone)) {
			t.Errorf("tone %s has no .badge-%s style", tone, tone)
		}
	}
}

// TestConsoleFetchesNothingFromElsewhere checks that no embedded file
// loads anything from another origin: no remote module, style sheet,
// font, image or fetch (the CSP would refuse it, and the console must
// work on a cloud without internet access).
func TestConsoleFetchesNothingFromElsewhere(t *testing.T) {
	remote := regexp.MustCompile(`(?i)(?:\bimport\s*\(?\s*['"]|\bfrom\s*['"]|url\(\s*['"]?|\bfetch\(\s*['"` + "`" + `]|\b(?:src|href)\s*=\s*['"]|@import\s+['"]?)(?:[a-z][a-z0-9+.-]*:)?//`)
	n := 0
	err := fs.WalkDir(consoleFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, rerr := consoleFiles.ReadFile(p)
		if rerr != nil {
			return rerr
		}
		n++
		if m := remote.Find(src); m != nil {
			t.Errorf("%s loads from another origin: %s", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("only %d files checked", n)
	}
}
