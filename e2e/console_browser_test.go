package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web console's browser harness: a real headless Chromium driven over
// the DevTools protocol with chromedp. Each tab records what a user would
// notice going wrong (uncaught exceptions, console.error, failed or
// refused asset loads, CSP violations) so that the test can fail on them.

const (
	chromiumPath   = "/usr/bin/chromium"
	envScreenshots = "STRATUS_SCREENSHOTS_DIR" // where console-*.png go (make screenshots: docs/img)

	uiTimeout    = 15 * time.Second // a view renders, a button answers
	uiPollEvery  = 100 * time.Millisecond
	browserStart = 30 * time.Second
)

// browser is one Chromium process; its first tab lives as long as it.
type browser struct {
	base    string // the console's URL, e.g. http://127.0.0.1:PORT (no trailing slash)
	shotDir string

	allocCancel context.CancelFunc
	first       *tab

	mu   sync.Mutex
	tabs []*tab
}

// tab is one page with its own event record.
type tab struct {
	b      *browser
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	problems []string                     // what fails the test: JS errors, failed asset loads
	notes    []string                     // expected noise (API errors the user was shown), for the log
	requests map[network.RequestID]string // URL of each request, for LoadingFailed
	docCSP   string                       // Content-Security-Policy of the last document loaded
}

// startBrowser starts headless Chromium for the console at base. It skips
// the test when Chromium is not installed (make deps installs it).
func startBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() {
		t.Skipf("browser test: %s is not installed (make deps installs Debian's chromium): %v", chromiumPath, err)
	}
	shots := os.Getenv(envScreenshots)
	if shots == "" {
		shots = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	profile := t.TempDir() // removed after the cleanup below has stopped Chromium
	b := &browser{base: strings.TrimSuffix(base, "/"), shotDir: shots}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b.allocCancel = allocCancel
	t.Cleanup(b.close)
	b.first = b.newTab("admin", allocCtx)
	// The first Do starts the browser; its context must not carry a timeout
	// (that would end the browser with it), so the start is bounded by a
	// watchdog instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(b.first.ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", chromiumPath, err)
		}
	case <-time.After(browserStart):
		t.Fatalf("%s did not start within %s", chromiumPath, browserStart)
	}
	// The viewport is the screenshot size, whatever the window decorations.
	if err := chromedp.Do(b.first.ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("set the viewport: %v", err)
	}
	return b
}

// newTab opens a tab under parent: the browser's first tab when parent is
// the allocator, else a tab in a new browser context (its own cookies, as a
// second user on another machine would have).
func (b *browser) newTab(name string, parent context.Context) *tab {
	tb := &tab{b: b, name: name, requests: map[network.RequestID]string{}}
	var opts []chromedp.ContextOption
	if b.first != nil {
		opts = append(opts, chromedp.WithNewBrowserContext())
	}
	opts = append(opts, chromedp.WithListener(tb.onEvent))
	tb.ctx, tb.cancel = chromedp.NewContext(parent, opts...)
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

// isolatedTab opens a tab with its own cookies and the console's size.
func (b *browser) isolatedTab(t *testing.T, name string) *tab {
	t.Helper()
	tb := b.newTab(name, b.first.ctx)
	if err := chromedp.Do(tb.ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("open tab %s: %v", name, err)
	}
	return tb
}

func (b *browser) close() {
	b.mu.Lock()
	tabs := append([]*tab(nil), b.tabs...)
	b.mu.Unlock()
	for i := len(tabs) - 1; i >= 0; i-- {
		tabs[i].cancel()
	}
	b.allocCancel() // waits until Chromium has exited
}

// isAPI reports whether u is the CloudStack API endpoint: its HTTP errors
// are answers the console shows to the user, not failed asset loads.
func isAPI(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.Path == "/client/api"
}

// onEvent runs in the tab's event loop: it must return fast.
func (tb *tab) onEvent(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		tb.problems = append(tb.problems, fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			switch {
			case a.Value != nil:
				var s string
				if json.Unmarshal(a.Value, &s) == nil {
					parts = append(parts, s)
				} else {
					parts = append(parts, string(a.Value))
				}
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		msg := fmt.Sprintf("console.%s: %s", ev.Type, strings.Join(parts, " "))
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			tb.problems = append(tb.problems, msg)
		} else if ev.Type == runtime.ConsoleAPICalledTypeWarning {
			tb.notes = append(tb.notes, msg)
		}
	case *log.EventEntryAdded:
		e := ev.Entry
		msg := fmt.Sprintf("browser log %s/%s: %s %s", e.Source, e.Level, e.Text, e.URL)
		switch {
		case e.Level != log.EntryLevelError:
			if e.Level == log.EntryLevelWarning {
				tb.notes = append(tb.notes, msg)
			}
		case e.Source == log.EntrySourceNetwork && isAPI(e.URL):
			tb.notes = append(tb.notes, msg) // an API error answer: the test checks what the page showed
		default:
			tb.problems = append(tb.problems, msg)
		}
	case *network.EventRequestWillBeSent:
		tb.requests[ev.RequestID] = ev.Request.URL
	case *network.EventResponseReceived:
		r := ev.Response
		if ev.Type == network.ResourceTypeDocument {
			tb.docCSP = headerValue(r.Headers, "Content-Security-Policy")
		}
		switch {
		case r.Status < 400:
		case isAPI(r.URL) && r.Status == 431:
			// The console sent a parameter the API refuses: a console bug
			// whatever the page then shows.
			tb.problems = append(tb.problems, fmt.Sprintf("API refused a parameter (HTTP 431) for %s", r.URL))
		case isAPI(r.URL):
			tb.notes = append(tb.notes, fmt.Sprintf("API answered HTTP %d", r.Status))
		default:
			tb.problems = append(tb.problems, fmt.Sprintf("HTTP %d for %s (%s)", r.Status, r.URL, ev.Type))
		}
	case *network.EventLoadingFailed:
		u := tb.requests[ev.RequestID]
		msg := fmt.Sprintf("load of %s (%s) failed: %s canceled=%v blocked=%q", u, ev.Type, ev.ErrorText, ev.Canceled, ev.BlockedReason)
		if isAPI(u) {
			tb.notes = append(tb.notes, msg) // a server being killed; the page must cope
		} else {
			tb.problems = append(tb.problems, msg)
		}
	}
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// report returns what went wrong in the tab and the expected noise.
func (tb *tab) report() (problems, notes []string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.problems...), append([]string(nil), tb.notes...)
}

// open loads the console at hash (e.g. "#/vms") as a user typing the URL.
func (tb *tab) open(t *testing.T, hash string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(tb.b.base+"/"+hash)); err != nil {
		t.Fatalf("%s: open %s%s: %v", tb.name, tb.b.base, hash, err)
	}
}

// setHash changes the route as a user editing the address bar's fragment
// would: no reload.
func (tb *tab) setHash(t *testing.T, hash string) {
	t.Helper()
	tb.eval(t, fmt.Sprintf("location.hash = %s; true", jsString(hash)))
}

// eval runs a JavaScript expression and decodes its result into T.
func evalJS[T any](t *testing.T, tb *tab, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("%s: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

func (tb *tab) eval(t *testing.T, expr string) {
	t.Helper()
	evalJS[bool](t, tb, "(() => { "+expr+"; return true })()")
}

// waitFor polls the JavaScript expression expr until it yields a non-empty
// string and returns it; what says what the test waits for. On timeout it
// fails the test with what the page shows.
func (tb *tab) waitFor(t *testing.T, what string, timeout time.Duration, expr string) string {
	t.Helper()
	got, err := tb.poll(timeout, expr)
	if err != nil {
		t.Fatalf("%s: waiting %s for %s: %v\n%s", tb.name, timeout, what, err, tb.describe())
	}
	return got
}

// poll is waitFor without failing: it returns the error instead.
func (tb *tab) poll(timeout time.Duration, expr string) (string, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	wrapped := fmt.Sprintf(`(() => { try { const v = (%s); return v ? String(v) : false } catch (e) { return false } })()`, expr)
	return chromedp.Run(ctx, chromedp.Poll[string](wrapped,
		chromedp.WithPollingInterval(uiPollEvery), chromedp.WithPollingTimeout(timeout)))
}

// describe is what the page shows, for failure messages.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const alerts = [...document.querySelectorAll('[role=alert]')].map(e => e.textContent.trim()).filter(Boolean);
		const page = document.querySelector('[data-page]');
		return 'location: ' + location.href + '\npage: ' + (page ? page.dataset.page : '(none)') +
			'\nalerts: ' + JSON.stringify(alerts) + '\ntext: ' + (document.body ? document.body.innerText : '').slice(0, 1500);
	})()`))
	if err != nil {
		return "(page unreadable: " + err.Error() + ")"
	}
	problems, _ := tb.report()
	if len(problems) > 0 {
		s += "\nbrowser problems so far:\n  " + strings.Join(problems, "\n  ")
	}
	return s
}

// visible is a JavaScript expression true when sel matches an element that
// is rendered (has a box).
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 })()`, jsString(sel))
}

// textOf is a JavaScript expression for the trimmed text of sel (empty when
// absent).
func textOf(sel string) string {
	return fmt.Sprintf(`((document.querySelector(%s) || {}).textContent || '').trim()`, jsString(sel))
}

// click clicks the element sel with the mouse once it is visible.
func (tb *tab) click(t *testing.T, sel string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible)); err != nil {
		t.Fatalf("%s: click %s: %v\n%s", tb.name, sel, err, tb.describe())
	}
}

// typeText focuses the input sel, clears it and types text key by key.
func (tb *tab) typeText(t *testing.T, sel, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	clear := fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = '';
		e.dispatchEvent(new Event('input', {bubbles: true})); return true })()`, jsString(sel))
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](clear),
		chromedp.SendKeys(chromedp.CSS(sel), text),
	); err != nil {
		t.Fatalf("%s: type into %s: %v\n%s", tb.name, sel, err, tb.describe())
	}
}

// choose picks value in the control named name: a <select> (once it offers
// the value) or a radio group. It fires input and change as a user's pick.
func (tb *tab) choose(t *testing.T, name, value string) {
	t.Helper()
	expr := fmt.Sprintf(`(() => {
		const name = %s, value = %s;
		const els = [...document.querySelectorAll('[name="' + name + '"]')];
		const sel = els.find(e => e.tagName === 'SELECT');
		if (sel) {
			if (![...sel.options].some(o => o.value === value && !o.disabled) || sel.disabled) return false;
			if (sel.value === value) return 'select'; // already chosen: a user's pick fires no change
			sel.value = value;
			sel.dispatchEvent(new Event('input', {bubbles: true}));
			sel.dispatchEvent(new Event('change', {bubbles: true}));
			return 'select';
		}
		const radio = els.find(e => e.type === 'radio' && e.value === value);
		if (radio && !radio.disabled) { radio.click(); return radio.checked ? 'radio' : false; }
		return false;
	})()`, jsString(name), jsString(value))
	tb.waitFor(t, fmt.Sprintf("control [name=%s] to offer %s", name, value), uiTimeout, expr)
}

// screenshot saves the viewport as console-<name>.png.
func (tb *tab) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	// A view the test photographs has finished rendering: it must not show
	// a value the code failed to fill in.
	if junk := evalJS[[]string](t, tb, junkTextJS); len(junk) > 0 {
		t.Errorf("%s: the %s view shows placeholder text where values belong: %q", tb.name, name, junk)
	}
	// For the picture only: the page from its top, without the toasts of
	// earlier steps (they fade after a few seconds anyway), after the layout
	// has settled.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`new Promise(r => {
		window.scrollTo(0, 0);
		const toasts = document.getElementById('toasts');
		if (toasts) toasts.replaceChildren();
		requestAnimationFrame(() => requestAnimationFrame(r));
	})`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatalf("%s: screenshot %s: %v", tb.name, name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("%s: screenshot %s: %v", tb.name, name, err)
	}
	path := filepath.Join(tb.b.shotDir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	t.Logf("e2e: screenshot %s (%d KiB)", path, len(png)/1024)
}

// junkTextJS lists the visible text nodes that are only "null",
// "undefined", "NaN" or "[object Object]": a value rendered without a
// check, which a user sees as garbage.
const junkTextJS = `(() => {
	const out = [];
	const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = w.nextNode(); n; n = w.nextNode()) {
		const t = n.textContent.trim();
		if (/^(null|undefined|NaN|\[object Object\])$/.test(t) && n.parentElement && n.parentElement.getClientRects().length) {
			out.push(t + ' in <' + n.parentElement.tagName.toLowerCase() + ' class="' + n.parentElement.className + '">');
		}
	}
	return out;
})()`

// apiCookies returns the cookies the browser holds for the API endpoint.
func (tb *tab) apiCookies(t *testing.T) []*network.Cookie {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, uiTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.b.base + "/client/api"}})
	if err != nil {
		t.Fatalf("%s: read the browser's cookies: %v", tb.name, err)
	}
	return res.Cookies
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
