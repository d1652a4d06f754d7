package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Errors of the client; match them with errors.Is.
var (
	// ErrBadProof means a response carried no valid X-Stratus-Proof: it
	// did not come from a server that knows the key, and was ignored.
	ErrBadProof = errors.New("response without a valid proof")
	// ErrNoServers means the client has no server URL to talk to.
	ErrNoServers = errors.New("no management server URLs")
)

// maxResponse bounds the size of a response body the client reads.
const maxResponse = 32 << 20

// StatusError is a proven 4xx answer (or a 5xx one that survived every
// retry): the server's {"error": "..."} text and the HTTP status.
type StatusError struct {
	Status  int
	Message string
	// Proven is false when the response carried no valid proof: such an
	// answer may only make the agent retry or register again.
	Proven bool
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("server answered %d", e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if !e.Proven {
		s += " (unproven)"
	}
	return s
}

// Unwrap lets errors.Is(err, ErrBadProof) match unproven answers.
func (e *StatusError) Unwrap() error {
	if !e.Proven {
		return ErrBadProof
	}
	return nil
}

// statusOf returns the HTTP status of err and whether it was proven, or 0.
func statusOf(err error) (int, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status, se.Proven
	}
	return 0, false
}

// isNotFound reports whether err is a 404: the server does not know the
// host. An unproven 404 counts too: a server that lost the host may no
// longer know its token to prove anything, and all the agent does about
// it is register again, which harms nothing.
func isNotFound(err error) bool {
	st, _ := statusOf(err)
	return st == http.StatusNotFound
}

// isRejected reports whether err is a proven 400 or 422: the request
// itself is wrong and sending it again cannot help.
func isRejected(err error) bool {
	st, proven := statusOf(err)
	return proven && (st == http.StatusBadRequest || st == http.StatusUnprocessableEntity)
}

// Credentials sign a request: the host ID (empty when registering) and the
// key (the host's token or the registration token).
type Credentials struct {
	HostID string
	Key    string
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Servers are base URLs of management servers or of a load balancer
	// in front of them, e.g. http://10.0.0.1:8080.
	Servers []string
	// HTTPClient sends the requests; default a client without timeout
	// (each request gets its own deadline).
	HTTPClient *http.Client
	// Now is the clock for X-Stratus-Date; default time.Now.
	Now    func() time.Time
	Logger hclog.Logger
	// Attempts bounds the tries of one call over all servers; default
	// twice the number of servers, at least 3.
	Attempts int
	// BackoffBase and BackoffMax bound the wait between tries (capped
	// exponential with jitter); default 200ms and 5s.
	BackoffBase, BackoffMax time.Duration
	// Timeout bounds one try unless the call sets its own; default 15s.
	Timeout time.Duration
}

// Client speaks the agent protocol to a list of servers. It signs every
// request, checks the proof of every response, sticks to the server that
// last answered and moves on to the next one on connection errors, 5xx
// answers and answers without a valid proof. It is safe for concurrent use.
type Client struct {
	servers []*url.URL
	http    *http.Client
	now     func() time.Time
	logger  hclog.Logger
	cfg     ClientConfig

	mu  sync.Mutex
	cur int
}

// NewClient validates the server URLs and returns a client.
func NewClient(cfg ClientConfig) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, ErrNoServers
	}
	c := &Client{http: cfg.HTTPClient, now: cfg.Now, logger: cfg.Logger, cfg: cfg}
	for _, s := range cfg.Servers {
		u, err := url.Parse(strings.TrimRight(strings.TrimSpace(s), "/"))
		if err != nil {
			return nil, fmt.Errorf("server url %q: %w", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("server url %q: want http(s)://host[:port]", s)
		}
		c.servers = append(c.servers, u)
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = hclog.NewNullLogger()
	}
	if c.cfg.Attempts <= 0 {
		c.cfg.Attempts = max(3, 2*len(c.servers))
	}
	if c.cfg.BackoffBase <= 0 {
		c.cfg.BackoffBase = 200 * time.Millisecond
	}
	if c.cfg.BackoffMax <= 0 {
		c.cfg.BackoffMax = 5 * time.Second
	}
	if c.cfg.Timeout <= 0 {
		c.cfg.Timeout = 15 * time.Second
	}
	return c, nil
}

// Backoff returns the wait before retry number attempt (0-based): capped
// exponential growth from base, with jitter in its upper half.
func Backoff(attempt int, base, limit time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + mrand.N(half+1)
}

// backoff is Backoff with the client's bounds.
func (c *Client) backoff(attempt int) time.Duration {
	return Backoff(attempt, c.cfg.BackoffBase, c.cfg.BackoffMax)
}

// Call is one protocol request.
type Call struct {
	Method string
	Path   string
	Query  url.Values
	In     any // marshalled as the JSON body when not nil
	Out    any // the JSON answer is decoded into it when not nil
	// Timeout bounds each try; default the client's.
	Timeout time.Duration
}

// Do sends call, signed with creds, trying the servers in turn until one
// answers with a valid proof or the attempts run out. A proven 4xx answer
// ends the call at once with a *StatusError.
func (c *Client) Do(ctx context.Context, creds Credentials, call Call) error {
	var body []byte
	if call.In != nil {
		b, err := json.Marshal(call.In)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", call.Path, err)
		}
		body = b
	}
	var lastErr error
	for attempt := 0; attempt < c.cfg.Attempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(c.backoff(attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s %s: %w (last error: %w)", call.Method, call.Path, ctx.Err(), lastErr)
			case <-t.C:
			}
		}
		idx, base := c.server()
		retry, err := c.try(ctx, base, creds, call, body)
		if err == nil {
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", call.Method, call.Path, err)
		}
		if !retry {
			return err
		}
		c.logger.Debug("request failed, trying the next server", "server", base.Redacted(), "path", call.Path, "attempt", attempt+1, "error", err)
		c.next(idx)
	}
	return fmt.Errorf("%s %s: %d attempts failed: %w", call.Method, call.Path, c.cfg.Attempts, lastErr)
}

// server returns the index and URL of the server to try.
func (c *Client) server() (int, *url.URL) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.servers[c.cur]
}

// next moves on from server idx unless another call already did.
func (c *Client) next(idx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == idx {
		c.cur = (idx + 1) % len(c.servers)
	}
}

// try sends one attempt to base. It returns whether another server should
// be tried after an error.
func (c *Client) try(ctx context.Context, base *url.URL, creds Credentials, call Call, body []byte) (bool, error) {
	timeout := call.Timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	u := *base
	u.Path = base.Path + call.Path
	u.RawPath = ""
	u.RawQuery = call.Query.Encode()
	req, err := http.NewRequestWithContext(ctx, call.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	nonce, err := newNonce()
	if err != nil {
		return false, err
	}
	date := c.now().UTC().Format(time.RFC3339)
	req.Header.Set(HeaderHost, creds.HostID)
	req.Header.Set(HeaderDate, date)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, Sign(creds.Key, Canonical(call.Method, req.URL.RequestURI(), date, nonce, body)))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return true, err // a *url.Error: method, URL and cause
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return true, fmt.Errorf("read answer of %s: %w", base.Redacted(), err)
	}
	proven := Equal(resp.Header.Get(HeaderProof), Proof(creds.Key, nonce, rb))
	if resp.StatusCode >= 500 {
		return true, &StatusError{Status: resp.StatusCode, Message: errorText(rb), Proven: proven}
	}
	if !proven {
		// Whoever answered does not know the key: ignore what it said
		// and ask another server.
		return true, &StatusError{Status: resp.StatusCode, Message: errorText(rb)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, &StatusError{Status: resp.StatusCode, Message: errorText(rb), Proven: true}
	}
	if call.Out != nil && len(bytes.TrimSpace(rb)) > 0 {
		if err := json.Unmarshal(rb, call.Out); err != nil {
			return true, fmt.Errorf("decode answer of %s: %w", base.Redacted(), err)
		}
	}
	return false, nil
}

// errorText extracts the message of an {"error": "..."} body.
func errorText(b []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// newNonce returns 16 random bytes in hex.
func newNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
