package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// tlsFlags are the certificate files of a server (API and internal
// endpoints share its listener) or of an agent (client side only).
type tlsFlags struct {
	cert, key, ca string
	// clientAuth is the server's client certificate policy: none,
	// verify-if-given or require (mTLS, checked against the -tls-ca).
	clientAuth string
}

// registerServer declares the server's TLS flags; envPrefix is "" for the
// server (STRATUS_TLS_CERT) and "AGENT_" for the agent.
func (t *tlsFlags) register(fs *flag.FlagSet, envPrefix string, server bool) {
	env := "STRATUS_" + envPrefix
	if server {
		fs.StringVar(&t.cert, "tls-cert", envOr(envPrefix+"TLS_CERT", ""), "PEM certificate (chain) of this server; with -tls-key it serves the API and internal endpoints over HTTPS (env "+env+"TLS_CERT)")
		fs.StringVar(&t.key, "tls-key", envOr(envPrefix+"TLS_KEY", ""), "PEM private key of -tls-cert (env "+env+"TLS_KEY)")
		fs.StringVar(&t.ca, "tls-ca", envOr(envPrefix+"TLS_CA", ""), "PEM CA bundle that signed the other servers' certificates, trusted on internal calls (forwarded writes, read index, heartbeat relay) and for client certificates; default the system roots (env "+env+"TLS_CA)")
		fs.StringVar(&t.clientAuth, "tls-client-auth", envOr(envPrefix+"TLS_CLIENT_AUTH", "none"), "client certificates: none, verify-if-given or require (mTLS for every caller: servers, agents, API clients; env "+env+"TLS_CLIENT_AUTH)")
		return
	}
	fs.StringVar(&t.ca, "tls-ca", envOr(envPrefix+"TLS_CA", ""), "PEM CA bundle to trust for https:// servers; default the system roots (env "+env+"TLS_CA)")
	fs.StringVar(&t.cert, "tls-cert", envOr(envPrefix+"TLS_CERT", ""), "PEM client certificate, for servers that require one (env "+env+"TLS_CERT)")
	fs.StringVar(&t.key, "tls-key", envOr(envPrefix+"TLS_KEY", ""), "PEM private key of -tls-cert (env "+env+"TLS_KEY)")
}

// enabled reports whether the server serves TLS.
func (t *tlsFlags) enabled() bool { return t.cert != "" || t.key != "" }

func (t *tlsFlags) validate(server bool) error {
	if (t.cert == "") != (t.key == "") {
		return errors.New("-tls-cert and -tls-key go together")
	}
	if !server {
		return nil
	}
	switch t.clientAuth {
	case "", "none", "verify-if-given", "require":
	default:
		return fmt.Errorf("-tls-client-auth must be none, verify-if-given or require, not %q", t.clientAuth)
	}
	if t.clientAuth != "" && t.clientAuth != "none" && !t.enabled() {
		return errors.New("-tls-client-auth needs -tls-cert and -tls-key")
	}
	if t.clientAuth != "" && t.clientAuth != "none" && t.ca == "" {
		return errors.New("-tls-client-auth needs -tls-ca, the CA that signs client certificates")
	}
	return nil
}

func (t *tlsFlags) caPool() (*x509.CertPool, error) {
	if t.ca == "" {
		return nil, nil // the system roots
	}
	b, err := os.ReadFile(t.ca)
	if err != nil {
		return nil, fmt.Errorf("read -tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("-tls-ca %s holds no PEM certificate", t.ca)
	}
	return pool, nil
}

// serverConfig is the listener's TLS configuration. The key pair is read
// again when its files change, so renewed certificates need no restart.
func (t *tlsFlags) serverConfig() (*tls.Config, error) {
	kp, err := newKeyPairReloader(t.cert, t.key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.getCertificate}
	switch t.clientAuth {
	case "verify-if-given":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if cfg.ClientAuth != tls.NoClientCert {
		if cfg.ClientCAs, err = t.caPool(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// clientConfig trusts -tls-ca (or the system roots) and presents -tls-cert
// as a client certificate when one is given: for a server that is its own
// certificate, which then needs the clientAuth extended key usage too
// when peers require client certificates.
func (t *tlsFlags) clientConfig() (*tls.Config, error) {
	pool, err := t.caPool()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if t.cert != "" {
		kp, err := newKeyPairReloader(t.cert, t.key)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = kp.getClientCertificate
	}
	return cfg, nil
}

// httpClient returns a client for calls to other servers with the given
// timeout (0: none), trusting the CA.
func (t *tlsFlags) httpClient(timeout time.Duration) (*http.Client, error) {
	cfg, err := t.clientConfig()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     cfg,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Timeout: timeout, Transport: tr}, nil
}

// keyPairReloader serves a certificate from files, reading them again
// (at most every few seconds) when their modification time changes.
type keyPairReloader struct {
	certFile, keyFile string
	cur               *tls.Certificate
	mod               time.Time
	checked           time.Time
	mu                chan struct{}
}

func newKeyPairReloader(certFile, keyFile string) (*keyPairReloader, error) {
	k := &keyPairReloader{certFile: certFile, keyFile: keyFile, mu: make(chan struct{}, 1)}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *keyPairReloader) load() error {
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", k.certFile, k.keyFile, err)
	}
	k.cur, k.mod = &c, k.modTime()
	return nil
}

func (k *keyPairReloader) modTime() time.Time {
	var latest time.Time
	for _, f := range []string{k.certFile, k.keyFile} {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(latest) {
			latest = st.ModTime()
		}
	}
	return latest
}

func (k *keyPairReloader) get() *tls.Certificate {
	k.mu <- struct{}{}
	defer func() { <-k.mu }()
	if now := time.Now(); now.Sub(k.checked) > 5*time.Second {
		k.checked = now
		if m := k.modTime(); !m.Equal(k.mod) {
			// A half-written pair fails to load; keep the old one then.
			_ = k.load()
		}
	}
	return k.cur
}

func (k *keyPairReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.get(), nil
}

func (k *keyPairReloader) getClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.get(), nil
}
