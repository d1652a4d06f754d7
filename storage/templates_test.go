package storage

import (
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratus-cloud/stratus/fsm"
)

// memCluster applies commands straight to an FSM: the controller's logic
// without raft.
type memCluster struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (m *memCluster) State() *fsm.Store { return m.f.State() }

func (m *memCluster) Apply(_ context.Context, t fsm.MessageType, body any) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.index++
	return m.index, m.f.ApplyCommand(m.index, t, body)
}

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *memCluster {
	t.Helper()
	m := &memCluster{f: fsm.New(nil)}
	boot := &fsm.BootstrapRequest{
		Meta:    fsm.Meta{ClusterID: "c", Created: now, AdminUserID: "u-admin"},
		Domain:  fsm.Domain{ID: "d-root", Name: "ROOT", Path: "ROOT", Created: now},
		Account: fsm.Account{ID: "a-admin", Name: "admin", DomainID: "d-root", Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: now},
		User:    fsm.User{ID: "u-admin", AccountID: "a-admin", DomainID: "d-root", Username: "admin", State: fsm.StateEnabled, APIKey: "k", SecretKey: "s", Created: now},
	}
	if _, err := m.Apply(context.Background(), fsm.BootstrapRequestType, boot); err != nil {
		t.Fatal(err)
	}
	z := &fsm.Zone{ID: "z-1", Name: "one", NetworkType: "Advanced", AllocationState: fsm.AllocationEnabled, ZoneToken: "t", Created: now}
	if _, err := m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{fsm.Create("zones", z)}}); err != nil {
		t.Fatal(err)
	}
	// The tests' image servers listen on loopback, an internal address
	// the controller refuses unless the operator allows it.
	allowInternal(t, m, "127.0.0.0/8")
	return m
}

func allowInternal(t *testing.T, m *memCluster, cidrs string) {
	t.Helper()
	set := fsm.ConfigSetRequest{Setting: fsm.Setting{Name: fsm.SettingAllowedInternalSites, Value: cidrs}}
	if _, err := m.Apply(context.Background(), fsm.ConfigSetRequestType, set); err != nil {
		t.Fatal(err)
	}
}

// register commits a template with one copy in zone z-1, NOT_DOWNLOADED.
func register(t *testing.T, m *memCluster, id, url, checksum string) {
	t.Helper()
	tmpl := &fsm.Template{ID: id, Name: id, DisplayText: id, Kind: fsm.ImageKindTemplate, TemplateType: fsm.TemplateTypeUser,
		Format: "QCOW2", Hypervisor: "KVM", OSTypeID: fsm.OSTypeOtherLinux64, URL: url, Checksum: checksum,
		AccountID: "a-admin", DomainID: "d-root", Created: now}
	copyRow := &fsm.TemplateZone{ID: "tz-" + id, TemplateID: id, ZoneID: "z-1", DownloadState: fsm.DownloadNotDownloaded, Created: now}
	if _, err := m.Apply(context.Background(), fsm.TxnRequestType, fsm.TxnRequest{Ops: []fsm.TxnOp{
		fsm.Create(fsm.TableTemplates, tmpl), fsm.Create(fsm.TableTemplateZones, copyRow)}}); err != nil {
		t.Fatal(err)
	}
}

// waitCopy waits until the copy of template id leaves NOT_DOWNLOADED.
func waitCopy(t *testing.T, m *memCluster, id string) *fsm.TemplateZone {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		st := m.State()
		ch, _ := st.Watch(fsm.TableTemplateZones)
		c, _ := fsm.Get[fsm.TemplateZone](st, nil, fsm.TableTemplateZones, "tz-"+id)
		if c != nil && c.DownloadState != fsm.DownloadNotDownloaded && c.DownloadState != fsm.DownloadInProgress {
			return c
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("copy of %s still %+v", id, c)
		}
	}
}

// qcow2 returns a tiny image that starts with a qcow2 header declaring
// virtual bytes.
func qcow2(virtual uint64) []byte {
	img := make([]byte, 4096)
	copy(img, "QFI\xfb")
	binary.BigEndian.PutUint32(img[4:], 3)
	binary.BigEndian.PutUint64(img[24:], virtual)
	return img
}

func TestTemplateSyncDownloadsMeasuresAndReportsErrors(t *testing.T) {
	img := qcow2(8 << 30)
	sum := md5.Sum(img)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok.qcow2":
			_, _ = w.Write(img)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	m := newFixture(t)
	register(t, m, "good", srv.URL+"/ok.qcow2", "{MD5}"+hex.EncodeToString(sum[:]))
	register(t, m, "missing", srv.URL+"/gone.qcow2", "")
	register(t, m, "badsum", srv.URL+"/ok.qcow2", "0123456789abcdef0123456789abcdef")
	register(t, m, "ftp", "ftp://images.example/x.qcow2", "")

	sync := NewTemplateSync(m, nil)
	if err := sync.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sync.Revoke()

	good := waitCopy(t, m, "good")
	if good.DownloadState != fsm.DownloadDownloaded || !good.IsReady || good.PhysicalSize != int64(len(img)) || good.Size != 8<<30 {
		t.Errorf("good copy = %+v, want DOWNLOADED, ready, physical %d, virtual 8 GiB", good, len(img))
	}
	for id, want := range map[string]string{
		"missing": "404 Not Found",
		"badsum":  "checksum mismatch",
		"ftp":     `scheme "ftp" is not supported`,
	} {
		c := waitCopy(t, m, id)
		if c.DownloadState != fsm.DownloadError || c.IsReady || !strings.Contains(c.ErrorText, want) {
			t.Errorf("%s copy = %+v, want DOWNLOAD_ERROR containing %q", id, c, want)
		}
	}
}

func TestTemplateSyncStopsOnRevokeAndResumesOnTheNextLeader(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
			_, _ = w.Write(qcow2(1 << 30))
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	defer open()
	m := newFixture(t)
	register(t, m, "slow", srv.URL+"/slow.qcow2", "")

	first := NewTemplateSync(m, nil)
	if err := first.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.Revoke() // leadership lost mid-download: no outcome is recorded
	// The download may or may not have been marked started before the
	// revoke; either way no byte arrived, so no outcome and no progress.
	c, _ := fsm.Get[fsm.TemplateZone](m.State(), nil, fsm.TableTemplateZones, "tz-slow")
	if (c.DownloadState != fsm.DownloadNotDownloaded && c.DownloadState != fsm.DownloadInProgress) || c.DownloadPercent != 0 || c.IsReady {
		t.Fatalf("after revoke the copy is %s at %d%% (ready %v), want NOT_DOWNLOADED or DOWNLOAD_IN_PROGRESS at 0%%", c.DownloadState, c.DownloadPercent, c.IsReady)
	}
	second := NewTemplateSync(m, nil)
	if err := second.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer second.Revoke()
	// Open the server for every request: the first leader's request may
	// still be waiting in the handler (its cancel not seen yet), and a
	// single release could go to it instead of the next leader's.
	open()
	if got := waitCopy(t, m, "slow"); got.DownloadState != fsm.DownloadDownloaded || got.Size != 1<<30 {
		t.Fatalf("copy after the next leader = %+v", got)
	}
}

func TestTemplateSyncShowsProgress(t *testing.T) {
	img := qcow2(1 << 30)
	img = append(img, make([]byte, 60<<10)...) // 64 KiB in all
	half := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		_, _ = w.Write(img[:len(img)/2])
		w.(http.Flusher).Flush()
		select {
		case <-half:
		case <-r.Context().Done():
			return
		}
		_, _ = w.Write(img[len(img)/2:])
	}))
	defer srv.Close()
	m := newFixture(t)
	register(t, m, "big", srv.URL+"/big.qcow2", "")
	s := NewTemplateSync(m, nil)
	if err := s.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Revoke()
	deadline := time.After(10 * time.Second)
	for {
		st := m.State()
		ch, _ := st.Watch(fsm.TableTemplateZones)
		c, _ := fsm.Get[fsm.TemplateZone](st, nil, fsm.TableTemplateZones, "tz-big")
		if c.DownloadState == fsm.DownloadInProgress && c.DownloadPercent >= 50 {
			break
		}
		if c.DownloadState != fsm.DownloadNotDownloaded && c.DownloadState != fsm.DownloadInProgress {
			t.Fatalf("copy finished as %+v before the second half was sent", c)
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no progress shown: %+v", c)
		}
	}
	close(half)
	if c := waitCopy(t, m, "big"); c.DownloadState != fsm.DownloadDownloaded || c.PhysicalSize != int64(len(img)) {
		t.Fatalf("finished copy = %+v", c)
	}
}

func TestTemplateSyncRefusesInternalAddresses(t *testing.T) {
	hits := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.Path
		_, _ = w.Write(qcow2(1 << 30))
	}))
	defer srv.Close()
	m := newFixture(t)
	allowInternal(t, m, "") // back to the default: no internal network allowed
	register(t, m, "inside", srv.URL+"/inside.qcow2", "")
	// A public name is no way around it: localhost resolves to loopback.
	register(t, m, "byname", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/byname.qcow2", "")
	s := NewTemplateSync(m, nil)
	if err := s.Establish(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Revoke()
	for _, id := range []string{"inside", "byname"} {
		c := waitCopy(t, m, id)
		if c.DownloadState != fsm.DownloadError || !strings.Contains(c.ErrorText, "internal address") ||
			!strings.Contains(c.ErrorText, fsm.SettingAllowedInternalSites) {
			t.Errorf("%s copy = %+v, want DOWNLOAD_ERROR naming the internal address and the setting", id, c)
		}
	}
	select {
	case p := <-hits:
		t.Fatalf("the image server was reached (%s) although loopback is not allowed", p)
	default:
	}
}

func TestAllowAddress(t *testing.T) {
	m := newFixture(t) // allows 127.0.0.0/8
	s := NewTemplateSync(m, nil)
	for addr, allowed := range map[string]bool{
		"127.0.0.1:80":            true, // allowed by the setting
		"93.184.216.34:443":       true, // public
		"10.0.0.5:80":             false,
		"192.168.1.1:80":          false,
		"169.254.169.254:80":      false, // cloud metadata
		"100.100.100.200:80":      false, // CGNAT metadata
		"198.18.0.1:80":           false,
		"[::1]:80":                false,
		"[fd00::1]:80":            false,
		"[64:ff9b::a9fe:a9fe]:80": false, // NAT64 of 169.254.169.254
	} {
		err := s.allowAddress("tcp", addr, nil)
		if allowed != (err == nil) {
			t.Errorf("%s: err = %v, want allowed %v", addr, err, allowed)
		}
	}
}
