package e2e

import (
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// The leader downloads every registered template and ISO. Tests may only
// talk to loopback, so they register images on an imageServer: an HTTP
// server on 127.0.0.1 serving small but valid images.

const (
	testQcow2Len     = 4 << 10 // bytes of the qcow2 file the image server serves
	testQcow2Virtual = 2 << 30 // virtual size its header announces
	testISOLen       = 64 << 10

	statusNotDownloaded = "Not Downloaded"
	statusComplete      = "Download Complete"
)

// testQcow2 is a qcow2 version 3 image: a real header (magic, version,
// 64 KiB clusters, a 2 GiB virtual size, header length) and zeros.
func testQcow2() []byte {
	b := make([]byte, testQcow2Len)
	copy(b, "QFI\xfb")
	binary.BigEndian.PutUint32(b[4:], 3)                 // version
	binary.BigEndian.PutUint32(b[20:], 16)               // cluster_bits
	binary.BigEndian.PutUint64(b[24:], testQcow2Virtual) // size
	binary.BigEndian.PutUint32(b[100:], 104)             // header_length (v3)
	return b
}

// testISO is 64 KiB with an ISO 9660 primary volume descriptor at 32 KiB.
func testISO() []byte {
	b := make([]byte, testISOLen)
	b[0x8000] = 1
	copy(b[0x8001:], "CD001")
	b[0x8006] = 1
	for i := 0; i < 0x8000; i++ {
		b[i] = byte(i) // some content, so the MD5 is not that of zeros
	}
	return b
}

// imageServer serves the images registered with it; any other path is
// 404 Not Found. Until sendHalf it holds every image request before
// answering; until sendRest it holds each image after its first half, so
// a test can see a download that has not started and one half way.
type imageServer struct {
	srv                *httptest.Server
	mu                 sync.Mutex
	images             map[string][]byte
	fetches            map[string]int
	half, rest         chan struct{}
	halfOnce, restOnce sync.Once
}

func newImageServer(t *testing.T) *imageServer {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("image server: listen on loopback: %v", err)
	}
	s := &imageServer{images: map[string][]byte{}, fetches: map[string]int{}, half: make(chan struct{}), rest: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(func() {
		// Nothing stays held, or Close would wait for it forever.
		s.sendHalf()
		s.sendRest()
		s.srv.Close()
	})
	return s
}

func (s *imageServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	img, ok := s.images[r.URL.Path]
	s.fetches[r.URL.Path]++
	s.mu.Unlock()
	if !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if !s.wait(r, s.half) {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(img)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(img[:len(img)/2])
	http.NewResponseController(w).Flush()
	if !s.wait(r, s.rest) {
		return
	}
	_, _ = w.Write(img[len(img)/2:])
}

func (s *imageServer) wait(r *http.Request, gate chan struct{}) bool {
	select {
	case <-gate:
		return true
	case <-r.Context().Done():
		return false
	}
}

// sendHalf lets every image request have its first half; sendRest the rest.
func (s *imageServer) sendHalf() { s.halfOnce.Do(func() { close(s.half) }) }
func (s *imageServer) sendRest() { s.restOnce.Do(func() { close(s.rest) }) }

// add serves img at /name and returns its URL.
func (s *imageServer) add(name string, img []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.images["/"+name] = img
	return s.srv.URL + "/" + name
}

// missing returns a URL on the server that answers 404 Not Found.
func (s *imageServer) missing(name string) string { return s.srv.URL + "/missing/" + name }

// fetched says how many times path was asked for.
func (s *imageServer) fetched(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches["/"+name]
}

// downloadSettled: the status is no longer one of a download to come or
// under way (Download Complete, or the reason it failed).
func downloadSettled(status string) bool {
	return status != statusNotDownloaded && !strings.HasSuffix(status, "% Downloaded") && status != "Installing Template"
}

// notDownloadedYet: what a copy shows before its bytes arrive (the leader
// may already have marked it in progress).
func notDownloadedYet(status string) bool {
	return status == statusNotDownloaded || status == "0% Downloaded"
}

// waitFor polls get until done holds, failing the test after a minute.
// An error from get is fatal: nothing fails over in these tests.
func waitFor[T any](t *testing.T, what string, get func() (T, error), done func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		v, err := get()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %+v after a minute", what, v)
		}
		<-tick.C
	}
}

// waitTemplate lists template id with filter (in zone, when given) until
// done holds for it.
func waitTemplate(t *testing.T, cs *cloudstack.CloudStackClient, filter, id, zone string, done func(*cloudstack.Template) bool) *cloudstack.Template {
	t.Helper()
	return waitFor(t, "listTemplates templatefilter="+filter+" id="+id, func() (*cloudstack.Template, error) {
		p := cs.Template.NewListTemplatesParams(filter)
		p.SetId(id)
		if zone != "" {
			p.SetZoneid(zone)
		}
		l, err := cs.Template.ListTemplates(p)
		if err != nil {
			return nil, err
		}
		if l.Count != 1 || len(l.Templates) != 1 {
			t.Fatalf("listTemplates templatefilter=%s id=%s lists %v, want that one", filter, id, templateIDs(l.Templates))
		}
		return l.Templates[0], nil
	}, done)
}

// waitTemplateSettled waits until template id's download is over.
func waitTemplateSettled(t *testing.T, cs *cloudstack.CloudStackClient, filter, id, zone string) *cloudstack.Template {
	t.Helper()
	return waitTemplate(t, cs, filter, id, zone, func(tpl *cloudstack.Template) bool { return downloadSettled(tpl.Status) })
}

// waitIsoSettled lists ISO id with isofilter=all until its download is over.
func waitIsoSettled(t *testing.T, cs *cloudstack.CloudStackClient, id string) *cloudstack.Iso {
	t.Helper()
	return waitFor(t, "listIsos isofilter=all id="+id, func() (*cloudstack.Iso, error) {
		p := cs.ISO.NewListIsosParams()
		p.SetId(id)
		p.SetIsofilter("all")
		l, err := cs.ISO.ListIsos(p)
		if err != nil {
			return nil, err
		}
		if l.Count != 1 || len(l.Isos) != 1 {
			t.Fatalf("listIsos isofilter=all id=%s lists %d ISOs, want that one: %+v", id, l.Count, l.Isos)
		}
		return l.Isos[0], nil
	}, func(iso *cloudstack.Iso) bool { return downloadSettled(iso.Status) })
}

// checkTemplateDownloaded: the copy is ready, complete, and measured as
// the image server's qcow2 image.
func checkTemplateDownloaded(t *testing.T, who string, tpl *cloudstack.Template) {
	t.Helper()
	if !tpl.Isready || tpl.Status != statusComplete || tpl.Size != testQcow2Virtual || tpl.Physicalsize != testQcow2Len {
		t.Fatalf("%s: template %s downloaded: isready=%v status=%q size=%d physicalsize=%d; want ready, %q, size %d (the qcow2 virtual size), physicalsize %d",
			who, tpl.Id, tpl.Isready, tpl.Status, tpl.Size, tpl.Physicalsize, statusComplete, testQcow2Virtual, testQcow2Len)
	}
}
