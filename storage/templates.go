package storage

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/fsm"
)

// Cluster is what the storage controllers need of the replicated core.
type Cluster interface {
	State() *fsm.Store
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
}

// TemplateSync is the leader's template download controller: every
// template or ISO copy registered in a zone (NOT_DOWNLOADED) is fetched
// from its URL, measured (size, the virtual size in a qcow2 header, the
// checksum when one was given) and marked DOWNLOADED and ready, or
// DOWNLOAD_ERROR with the reason. http, https and file URLs are read.
//
// The bytes are read and checked, not yet written to the zone's NFS image
// store: hosts fetch nothing from secondary storage until the storage
// work that mounts it lands (libvirt's test driver needs no image).
type TemplateSync struct {
	*cluster.LeaderTask // Establish and Revoke are leadership hooks
	c                   Cluster
	logger              hclog.Logger
	client              *http.Client
}

// NewTemplateSync returns the controller; cmd starts it on the leader.
func NewTemplateSync(c Cluster, logger hclog.Logger) *TemplateSync {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	t := &TemplateSync{c: c, logger: logger.Named("templates"), client: &http.Client{Timeout: 10 * time.Minute}}
	t.LeaderTask = cluster.NewLeaderTask(t.loop)
	return t
}

func (t *TemplateSync) loop(ctx context.Context) {
	for ctx.Err() == nil {
		st := t.c.State()
		changed, err := st.Watch(fsm.TableTemplateZones)
		if err != nil {
			t.logger.Error("cannot watch template copies", "error", err)
			return
		}
		copies, err := fsm.List[fsm.TemplateZone](st, nil, fsm.TableTemplateZones, "create")
		if err != nil {
			t.logger.Error("cannot list template copies", "error", err)
			return
		}
		for _, c := range copies {
			if c.DownloadState == fsm.DownloadNotDownloaded || c.DownloadState == fsm.DownloadInProgress {
				t.fetch(ctx, st, c)
			}
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-time.After(30 * time.Second):
		}
	}
}

// fetch downloads one copy and commits its outcome; a lost race (the copy
// changed meanwhile) is simply looked at again on the next pass.
func (t *TemplateSync) fetch(ctx context.Context, st *fsm.Store, c *fsm.TemplateZone) {
	tmpl, err := fsm.Get[fsm.Template](st, nil, fsm.TableTemplates, c.TemplateID)
	if err != nil || tmpl == nil {
		return
	}
	n := c.Copy()
	size, virtual, sum, err := t.measure(ctx, tmpl.URL)
	switch {
	case ctx.Err() != nil:
		return
	case err == nil && tmpl.Checksum != "" && !checksumMatches(tmpl.Checksum, sum):
		err = fmt.Errorf("checksum mismatch: the image's MD5 is %s, the template says %s", sum, tmpl.Checksum)
	}
	if err != nil {
		n.DownloadState, n.ErrorText, n.IsReady = fsm.DownloadError, err.Error(), false
		t.logger.Warn("template download failed", "template", tmpl.ID, "zone", c.ZoneID, "error", err)
	} else {
		n.DownloadState, n.ErrorText, n.IsReady, n.DownloadPercent = fsm.DownloadDownloaded, "", true, 100
		n.PhysicalSize, n.Size = size, max(size, virtual)
		t.logger.Info("template downloaded", "template", tmpl.ID, "zone", c.ZoneID, "bytes", size)
	}
	if _, err := t.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableTemplateZones, n)}}); err != nil && !errors.Is(err, fsm.ErrStale) {
		t.logger.Warn("cannot record template download", "template", tmpl.ID, "error", err)
	}
}

// checksumMatches compares an MD5 given as hex, optionally as
// "{MD5}hex" the way CloudStack writes it.
func checksumMatches(want, got string) bool {
	want = strings.TrimSpace(want)
	if i := strings.Index(want, "}"); strings.HasPrefix(want, "{") && i > 0 {
		if !strings.EqualFold(want[1:i], "md5") {
			return true // another algorithm: not checked here
		}
		want = want[i+1:]
	}
	return strings.EqualFold(want, got)
}

// measure reads the image at rawURL: its size, the virtual size of a qcow2
// image (0 otherwise) and its MD5.
func (t *TemplateSync) measure(ctx context.Context, rawURL string) (size, virtual int64, sum string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, 0, "", fmt.Errorf("bad URL: %w", err)
	}
	var body io.ReadCloser
	switch u.Scheme {
	case "file":
		body, err = os.Open(u.Path)
		if err != nil {
			return 0, 0, "", fmt.Errorf("open %s: %w", u.Path, err)
		}
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return 0, 0, "", fmt.Errorf("request: %w", err)
		}
		resp, err := t.client.Do(req)
		if err != nil {
			return 0, 0, "", fmt.Errorf("download: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return 0, 0, "", fmt.Errorf("download: the server answered %s", resp.Status)
		}
		body = resp.Body
	default:
		return 0, 0, "", fmt.Errorf("URL scheme %q is not supported: use http, https or file", u.Scheme)
	}
	defer body.Close()
	h := md5.New()
	head := make([]byte, 32)
	n, _ := io.ReadFull(body, head)
	h.Write(head[:n])
	rest, err := io.Copy(h, body)
	if err != nil {
		return 0, 0, "", fmt.Errorf("read image: %w", err)
	}
	if n == 32 && string(head[:4]) == "QFI\xfb" {
		virtual = int64(binary.BigEndian.Uint64(head[24:32]))
	}
	return int64(n) + rest, virtual, hex.EncodeToString(h.Sum(nil)), nil
}
