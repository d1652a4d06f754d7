package api

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

// The web console: api/web/index.html at "/" and the ES modules, style
// sheet and icon under /ui/, embedded in the binary so that every node
// serves the same console with no build step. The console only talks to
// /client/api with a session, like any other API client.

//go:embed web
var consoleFiles embed.FS

// ConsoleCSP is the Content-Security-Policy of every console answer: no
// inline scripts or styles, nothing from elsewhere, no framing.
const ConsoleCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"

// consoleTypes are the content types of the files the console holds; a
// file of any other kind is not served.
var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

// consoleAsset is one embedded file ready to serve.
type consoleAsset struct {
	body  []byte
	ctype string
	etag  string
}

// consoleHandler serves the embedded console.
type consoleHandler struct {
	assets map[string]consoleAsset // by URL path: "/" and "/ui/..."
}

// newConsoleHandler reads the embedded files once.
func newConsoleHandler() *consoleHandler {
	h := &consoleHandler{assets: map[string]consoleAsset{}}
	_ = fs.WalkDir(consoleFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := consoleTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		body, rerr := consoleFiles.ReadFile(p)
		if rerr != nil {
			return rerr
		}
		sum := sha256.Sum256(body)
		a := consoleAsset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		rel := strings.TrimPrefix(p, "web")
		switch {
		case rel == "/index.html":
			h.assets["/"] = a
		case strings.HasPrefix(rel, "/ui/"):
			h.assets[rel] = a
		}
		return nil
	})
	return h
}

// sharedConsole is built once: the embedded files never change.
var sharedConsole = sync.OnceValue(newConsoleHandler)

// consoleRoute registers the console as the last, catch-all route: only
// GET and HEAD, so a wrong method on an API path still gets its 405.
func (s *Server) consoleRoute(r *mux.Router) {
	r.PathPrefix("/").Handler(sharedConsole()).Methods(http.MethodGet, http.MethodHead)
}

func (h *consoleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ConsoleCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	p := r.URL.Path
	if p == "/index.html" {
		p = "/"
	}
	a, ok := h.assets[p]
	if !ok {
		hd.Set("Cache-Control", "no-store")
		http.Error(w, "404 not found (the console is at /, the API at /client/api)", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", a.ctype)
	// No asset name is versioned, so nothing may be cached without asking:
	// the ETag makes the re-check cheap (304) and an upgrade shows at once.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
