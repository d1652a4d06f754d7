package storage

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
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
// DOWNLOAD_ERROR with the reason. http and https URLs are read, from
// public addresses only unless secstorage.allowed.internal.sites lets an
// internal network in (see allowAddress).
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
	t := &TemplateSync{c: c, logger: logger.Named("templates")}
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: t.allowAddress}
	t.client = &http.Client{Timeout: 10 * time.Minute, Transport: &http.Transport{
		DialContext: dialer.DialContext, TLSHandshakeTimeout: 30 * time.Second, ResponseHeaderTimeout: time.Minute}}
	t.LeaderTask = cluster.NewLeaderTask(t.loop)
	return t
}

// maxDownloads is how many downloads run at once, so one slow or stalled
// URL cannot hold every other template back.
const maxDownloads = 4

func (t *TemplateSync) loop(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]bool{}
	var mu sync.Mutex
	slots := make(chan struct{}, maxDownloads)
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
			mu.Lock()
			busy := running[c.ID]
			mu.Unlock()
			if busy || (c.DownloadState != fsm.DownloadNotDownloaded && c.DownloadState != fsm.DownloadInProgress) {
				continue
			}
			select {
			case slots <- struct{}{}:
			default:
				continue // all slots busy: picked up when one frees (its commit wakes the watch)
			}
			mu.Lock()
			running[c.ID] = true
			mu.Unlock()
			wg.Add(1)
			go func(c *fsm.TemplateZone) {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(running, c.ID)
					mu.Unlock()
					<-slots
				}()
				t.fetch(ctx, st, c)
			}(c)
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-st.Abandoned(): // a restore swapped the store
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
	// Mark the copy in progress first, so listTemplates shows the download
	// moving; the percentage follows as bytes arrive.
	start := c.Copy()
	start.DownloadState, start.DownloadPercent, start.ErrorText = fsm.DownloadInProgress, 0, ""
	if err := t.commitCopy(ctx, start); err != nil {
		return
	}
	progress := func(pct int) {
		if cur, _ := fsm.Get[fsm.TemplateZone](t.c.State(), nil, fsm.TableTemplateZones, c.ID); cur != nil && cur.DownloadPercent < pct {
			p := cur.Copy()
			p.DownloadPercent = pct
			_ = t.commitCopy(ctx, p)
		}
	}
	size, virtual, sum, err := t.measure(ctx, tmpl.URL, progress)
	cur, _ := fsm.Get[fsm.TemplateZone](t.c.State(), nil, fsm.TableTemplateZones, c.ID)
	if cur == nil {
		return
	}
	n := cur.Copy()
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
	if err := t.commitCopy(ctx, n); err != nil {
		t.logger.Warn("cannot record template download", "template", tmpl.ID, "error", err)
	}
}

// commitCopy commits a template copy row with compare-and-set; a lost
// race (the copy changed, say deleted) is left to the next pass.
func (t *TemplateSync) commitCopy(ctx context.Context, c *fsm.TemplateZone) error {
	_, err := t.c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Update(fsm.TableTemplateZones, c)}})
	if errors.Is(err, fsm.ErrStale) {
		return nil
	}
	return err
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
func (t *TemplateSync) measure(ctx context.Context, rawURL string, progress func(pct int)) (size, virtual int64, sum string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, 0, "", fmt.Errorf("bad URL: %w", err)
	}
	var body io.ReadCloser
	var total int64 // expected length, 0 when unknown
	switch u.Scheme {
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
		body, total = resp.Body, resp.ContentLength
	default:
		return 0, 0, "", fmt.Errorf("URL scheme %q is not supported: use http or https", u.Scheme)
	}
	defer body.Close()
	h := md5.New()
	head := make([]byte, 32)
	n, _ := io.ReadFull(body, head)
	h.Write(head[:n])
	rest, err := io.Copy(h, &progressReader{r: body, total: total, read: int64(n), report: progress})
	if err != nil {
		return 0, 0, "", fmt.Errorf("read image: %w", err)
	}
	if n == 32 && string(head[:4]) == "QFI\xfb" {
		virtual = int64(binary.BigEndian.Uint64(head[24:32]))
	}
	return int64(n) + rest, virtual, hex.EncodeToString(h.Sum(nil)), nil
}

// progressReader reports whole tens of percent read of a known total.
type progressReader struct {
	r      io.Reader
	total  int64
	read   int64
	last   int
	report func(pct int)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += int64(n)
	if p.total > 0 && p.report != nil {
		if pct := int(p.read * 100 / p.total / 10 * 10); pct > p.last && pct < 100 {
			p.last = pct
			p.report(pct)
		}
	}
	return n, err
}

// allowAddress refuses, at connect time (after DNS, so a name that
// resolves to an internal address is caught, and for every redirect too),
// addresses a user's template URL must not reach: loopback, link-local
// (cloud metadata services), private and unique-local ranges, unspecified
// and multicast; unless a CIDR of secstorage.allowed.internal.sites
// (CloudStack's setting, comma separated) holds the address.
func (t *TemplateSync) allowAddress(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("template download to %q: %w", address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("template download to %q: %w", address, err)
	}
	ip = ip.Unmap()
	for _, raw := range strings.Split(t.c.State().SettingValue(fsm.SettingAllowedInternalSites), ",") {
		if p, err := netip.ParsePrefix(strings.TrimSpace(raw)); err == nil && p.Contains(ip) {
			return nil
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() ||
		ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || inSpecialRanges(ip) {
		return fmt.Errorf("%w: %s is an internal address; add its network to %s to allow it", ErrInternalAddress, ip, fsm.SettingAllowedInternalSites)
	}
	return nil
}

// ErrInternalAddress refuses a template URL that leads to an internal
// address not allowed by secstorage.allowed.internal.sites.
var ErrInternalAddress = errors.New("template downloads from internal addresses are not allowed")

// specialRanges are internal networks netip does not classify: carrier-
// grade NAT (some clouds' metadata services live there), benchmarking,
// and NAT64 prefixes that can wrap any IPv4 address.
var specialRanges = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

func inSpecialRanges(ip netip.Addr) bool {
	for _, p := range specialRanges {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
