package api

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"
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

// TestConsoleViewsBuildDOMSafely keeps API text out of markup in the core
// and tenant views: no innerHTML, outerHTML, insertAdjacentHTML or
// document.write, and no inline style attributes.
func TestConsoleViewsBuildDOMSafely(t *testing.T) {
	bad := regexp.MustCompile(`\.innerHTML|\.outerHTML|insertAdjacentHTML|document\.write|setAttribute\(\s*['"]style`)
	for _, dir := range []string{"web/ui/core", "web/ui/tenant", "web/ui"} {
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
