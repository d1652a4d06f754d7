package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// testPKI is a throwaway CA and one certificate for 127.0.0.1 it signed,
// usable by a server and as a client certificate.
type testPKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	cert                      tls.Certificate
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stratus e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "stratus server"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server-key.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", der)
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	if p.cert, err = tls.LoadX509KeyPair(p.certFile, p.keyFile); err != nil {
		t.Fatal(err)
	}
	return p
}

// httpsClient trusts the test CA and presents the certificate when asked.
func (p *testPKI) httpsClient(withCert bool) *http.Client {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.cert}
	}
	tr := newTransport()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// tlsProbe speaks TLS on the harness's http:// URLs, so the harness's
// readiness and status polling works unchanged against TLS servers.
func (p *testPKI) tlsProbe(withCert bool) *http.Client {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.cert}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 2 * time.Second}, Config: cfg}
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func startTLSCluster(t *testing.T, clientAuth string) (*testCluster, *testPKI) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	pki := newTestPKI(t, c.dir)
	for _, s := range c.servers {
		s.args = append(s.args, "-tls-cert", pki.certFile, "-tls-key", pki.keyFile, "-tls-ca", pki.caFile)
		if clientAuth != "" {
			s.args = append(s.args, "-tls-client-auth", clientAuth)
		}
	}
	c.probe = pki.tlsProbe(clientAuth != "")
	c.startAll()
	return c, pki
}

func httpsURL(s *server) string { return "https://" + s.api }

// checkForwardingOverTLS writes through a follower (forwarded to the
// leader over TLS) and reads it back there with a consistent read (a
// read-index call to the leader over TLS), with the SDK over https.
func checkForwardingOverTLS(t *testing.T, c *testCluster, hc *http.Client) {
	t.Helper()
	leader := c.leader()
	var follower *server
	for _, s := range c.servers {
		if s != leader {
			follower = s
			break
		}
	}
	before := c.metrics(t, follower)
	cs := cloudstack.NewAsyncClient(httpsURL(follower)+"/client/api", c.keys.APIKey, c.keys.SecretKey, true, cloudstack.WithHTTPClient(hc))
	name := "tls-zone"
	if _, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", name, "Advanced")); err != nil {
		t.Fatalf("createZone over https through follower %s: %v", follower.id, err)
	}
	zones := listZoneNames(t, cs, follower.id)
	if _, ok := zones[name]; !ok {
		t.Fatalf("follower %s does not list zone %s after writing it: %v", follower.id, name, zones)
	}
	after := c.metrics(t, follower)
	for _, ep := range []string{"apply", "read_index"} {
		key := `stratus_cluster_forwarded_requests_total{endpoint="` + ep + `",outcome="ok"}`
		if b, a := max(metricValue(before, key), 0), metricValue(after, key); a <= b {
			t.Errorf("follower %s: %s went from %v to %v, want it to grow (forwarded over TLS)", follower.id, key, b, a)
		}
	}
	t.Logf("write and consistent read through follower %s over https, forwarded to leader %s", follower.id, leader.id)
}

// TestTLS runs three servers with TLS on the API and internal endpoints.
func TestTLS(t *testing.T) {
	c, pki := startTLSCluster(t, "")
	hc := pki.httpsClient(false)
	checkForwardingOverTLS(t, c, hc)

	// Servers advertise https URLs to each other.
	resp, err := hc.Get(httpsURL(c.servers[0]) + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"api_url": "https://127.0.0.1:`) {
		t.Errorf("/v1/status does not show https API URLs: %s", b)
	}

	// Plain http to the TLS port gets no API answer.
	plain := &http.Client{Timeout: 3 * time.Second}
	if resp, err := plain.Get("http://" + c.servers[0].api + "/v1/health"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(b), `"status"`) {
			t.Errorf("plain http to the TLS port answered %d: %s", resp.StatusCode, b)
		}
		t.Logf("plain http to the TLS port: HTTP %d %q", resp.StatusCode, strings.TrimSpace(string(b)))
	} else {
		t.Logf("plain http to the TLS port: %v", err)
	}
	// Raft's transport speaks TLS too, with the same certificate.
	conn, err := tls.Dial("tcp", c.servers[0].raft, &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Errorf("TLS handshake with the raft port: %v", err)
	} else {
		conn.Close()
	}
	// A client that does not trust the CA fails the handshake.
	untrusting := &http.Client{Timeout: 3 * time.Second}
	if _, err := untrusting.Get(httpsURL(c.servers[0]) + "/v1/health"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("https without the CA: err = %v, want a certificate error", err)
	}
}

// TestTLSClientAuth requires client certificates (mTLS): servers present
// theirs to each other, and an API client without one is refused.
func TestTLSClientAuth(t *testing.T) {
	c, pki := startTLSCluster(t, "require")
	checkForwardingOverTLS(t, c, pki.httpsClient(true))
	if resp, err := pki.httpsClient(false).Get(httpsURL(c.servers[0]) + "/v1/health"); err == nil {
		resp.Body.Close()
		t.Errorf("https without a client certificate answered HTTP %d, want the handshake refused", resp.StatusCode)
	}
	// Raft's port requires one too.
	conn, err := tls.Dial("tcp", c.servers[0].raft, &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12})
	if err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("raft port without a client certificate: %v, want a certificate error", err)
	}
}
