package main

import (
	"strings"
	"testing"
)

func TestServerTLSFlags(t *testing.T) {
	t.Setenv("STRATUS_CLUSTER_SECRET", "0123456789abcdef0123")
	base := []string{"-data-dir", t.TempDir()}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"-tls-cert", "c.pem"}, "go together"},
		{[]string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-client-auth", "maybe"}, "must be none"},
		{[]string{"-tls-client-auth", "require"}, "needs -tls-cert"},
		{[]string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-client-auth", "require"}, "needs -tls-ca"},
		{[]string{"-tls-cert", "c.pem", "-tls-key", "k.pem", "-tls-ca", "ca.pem", "-tls-client-auth", "require"}, ""},
	} {
		f, err := parseServerFlags(append(append([]string{}, base...), tc.args...))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.err)
		case tc.err == "" && len(tc.args) > 0 && !f.tls.enabled():
			t.Errorf("%v: TLS not enabled", tc.args)
		}
	}
	t.Setenv("STRATUS_TLS_CERT", "env.pem")
	t.Setenv("STRATUS_TLS_KEY", "env-key.pem")
	f, err := parseServerFlags(base)
	if err != nil || f.tls.cert != "env.pem" || f.tls.key != "env-key.pem" {
		t.Errorf("TLS flags from the environment: %+v, %v", f, err)
	}
}
