package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/cluster/metrics"
	"github.com/stratus-cloud/stratus/fsm"
)

// Internal endpoint paths, served on the API listener.
const (
	PathApply     = "/internal/v1/apply"
	PathReadIndex = "/internal/v1/read-index"
)

// authHeader carries "<unix seconds>.<hex HMAC-SHA256>" over the method,
// path, timestamp and body digest, keyed with the cluster secret: the secret
// itself never crosses the network.
const authHeader = "X-Stratus-Auth"

// authWindow bounds clock skew between servers and replay of a captured request.
const authWindow = 60 * time.Second

// maxInternalBody caps a forwarded command.
const maxInternalBody = 16 << 20

func signInternal(secret, method, path string, ts int64, body []byte) string {
	sum := sha256.Sum256(body)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%s\n%s\n%d\n%s", method, path, ts, hex.EncodeToString(sum[:]))
	return strconv.FormatInt(ts, 10) + "." + hex.EncodeToString(mac.Sum(nil))
}

func verifyInternal(secret string, r *http.Request, body []byte, now time.Time) error {
	tsPart, sig, ok := strings.Cut(r.Header.Get(authHeader), ".")
	if !ok {
		return ErrUnauthorized
	}
	ts, err := strconv.ParseInt(tsPart, 10, 64)
	if err != nil {
		return ErrUnauthorized
	}
	if d := now.Sub(time.Unix(ts, 0)); d > authWindow || d < -authWindow {
		return fmt.Errorf("%w: timestamp outside the %s window (check clocks)", ErrUnauthorized, authWindow)
	}
	want := signInternal(secret, r.Method, r.URL.Path, ts, body)
	if !hmac.Equal([]byte(want), []byte(tsPart+"."+sig)) {
		return ErrUnauthorized
	}
	return nil
}

type applyReply struct {
	Index uint64          `json:"index"`
	Error *fsm.StateError `json:"error,omitempty"`
}

type readIndexReply struct {
	Index uint64 `json:"index"`
}

type errorReply struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Error codes of the internal protocol, so the caller can rebuild sentinels.
var internalCodes = map[string]error{
	"not_leader": ErrNotLeader, "no_leader": ErrNoLeader, "not_ready": ErrNotReady,
	"uncertain": ErrUncertain, "shutdown": ErrShutdown, "unauthorized": ErrUnauthorized,
}

func codeOf(err error) string {
	for code, sentinel := range internalCodes {
		if errors.Is(err, sentinel) {
			return code
		}
	}
	return "internal"
}

// InternalHandler serves the leader's side of forwarding: apply and
// read-index. Mount it on the API listener under /internal/.
func (n *Node) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathApply, n.authed(n.handleApply))
	mux.HandleFunc("POST "+PathReadIndex, n.authed(n.handleReadIndex))
	return mux
}

func (n *Node) authed(fn func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxInternalBody+1))
		if err != nil || len(body) > maxInternalBody {
			writeInternalError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("internal request body unreadable or over %d bytes", maxInternalBody))
			return
		}
		if err := verifyInternal(n.cfg.Secret, r, body, time.Now()); err != nil {
			n.logger.Warn("rejected internal request", "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
			writeInternalError(w, http.StatusUnauthorized, err)
			return
		}
		fn(w, r, body)
	}
}

func writeInternalError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorReply{Error: err.Error(), Code: codeOf(err)})
}

func writeInternalJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (n *Node) handleApply(w http.ResponseWriter, r *http.Request, body []byte) {
	if !n.IsLeader() {
		writeInternalError(w, http.StatusMisdirectedRequest, ErrNotLeader)
		return
	}
	idx, err := n.applyLocal(body)
	var se *fsm.StateError
	switch {
	case errors.As(err, &se):
		writeInternalJSON(w, applyReply{Index: idx, Error: se})
	case err != nil:
		writeInternalError(w, http.StatusServiceUnavailable, err)
	default:
		writeInternalJSON(w, applyReply{Index: idx})
	}
}

func (n *Node) handleReadIndex(w http.ResponseWriter, r *http.Request, _ []byte) {
	if !n.IsLeader() {
		writeInternalError(w, http.StatusMisdirectedRequest, ErrNotLeader)
		return
	}
	idx, err := n.reads.do(r.Context())
	if err != nil {
		writeInternalError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeInternalJSON(w, readIndexReply{Index: idx})
}

// errNotSent marks a call that failed before the request left this node, so
// retrying it cannot duplicate a write.
var errNotSent = errors.New("request not sent")

// call POSTs body to another server's internal endpoint and decodes the
// reply into out. Errors keep the protocol's sentinels.
func (n *Node) call(ctx context.Context, baseURL, path string, body []byte, out any) (err error) {
	defer func() { metrics.Forwarded.WithLabelValues(forwardEndpoint(path), forwardOutcome(err)).Inc() }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(baseURL, "/")+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build internal request: %w", err)
	}
	req.Header.Set(authHeader, signInternal(n.cfg.Secret, http.MethodPost, path, time.Now().Unix(), body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := n.cfg.HTTPClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("%w: %w", errNotSent, err)
		}
		return fmt.Errorf("call %s%s: %w", baseURL, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxInternalBody))
	if err != nil {
		return fmt.Errorf("read reply of %s%s: %w", baseURL, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var er errorReply
		_ = json.Unmarshal(data, &er)
		if sentinel, ok := internalCodes[er.Code]; ok {
			return fmt.Errorf("%s: %w", baseURL, sentinel)
		}
		return fmt.Errorf("call %s%s: status %d: %s", baseURL, path, resp.StatusCode, er.Error)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode reply of %s%s: %w", baseURL, path, err)
	}
	return nil
}
