package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

func TestSimFlagsLayOutHosts(t *testing.T) {
	t.Setenv("STRATUS_CLUSTER_SECRET", "a-cluster-secret-0123456789")
	t.Setenv("STRATUS_API_KEY", "")
	f, err := parseSimFlags([]string{"-hosts", "1200", "-servers", "http://127.0.0.1:1/,http://127.0.0.1:2", "-address-base", "10.128.0.250"})
	if err != nil {
		t.Fatal(err)
	}
	if want := agent.RegistrationToken("a-cluster-secret-0123456789"); f.regToken != want {
		t.Errorf("registration token %q, want the one derived from STRATUS_CLUSTER_SECRET", f.regToken)
	}
	if want := []string{"http://127.0.0.1:1", "http://127.0.0.1:2"}; !slices.Equal(f.serverList, want) {
		t.Errorf("servers %v, want %v", f.serverList, want)
	}
	if got := f.hostName(1); got != "sim-host-1" {
		t.Errorf("host 1 is named %q", got)
	}
	// The address carries over octets; every host gets its own.
	if got := f.hostAddress(1); got != "10.128.0.251" {
		t.Errorf("host 1 address %s, want 10.128.0.251", got)
	}
	if got := f.hostAddress(10); got != "10.128.1.4" {
		t.Errorf("host 10 address %s, want 10.128.1.4", got)
	}
	seen := map[string]bool{}
	for n := f.first; n < f.first+f.hosts; n++ {
		seen[f.hostAddress(n)] = true
	}
	if len(seen) != f.hosts {
		t.Errorf("%d distinct addresses for %d hosts", len(seen), f.hosts)
	}
	if got, want := f.clusterNames(), []string{"sim-cluster-1", "sim-cluster-2", "sim-cluster-3"}; !slices.Equal(got, want) {
		t.Errorf("clusters %v, want %v (500 hosts each)", got, want)
	}
	if f.hostCluster(500) != "sim-cluster-1" || f.hostCluster(501) != "sim-cluster-2" || f.hostCluster(1200) != "sim-cluster-3" {
		t.Errorf("hosts 500, 501, 1200 in %s, %s, %s", f.hostCluster(500), f.hostCluster(501), f.hostCluster(1200))
	}
}

func TestSimFlagsFromCloudFile(t *testing.T) {
	t.Setenv("STRATUS_CLUSTER_SECRET", "")
	t.Setenv("STRATUS_API_KEY", "")
	t.Setenv("STRATUS_AGENT_REGISTRATION_TOKEN", "")
	dir := t.TempDir()
	cloud := `{"api_url":"http://127.0.0.1:7/client/api","apikey":"k","secretkey":"s","servers":[` +
		`{"id":"server-1","api_url":"http://127.0.0.1:7/client/api"},{"id":"server-2","api_url":"http://127.0.0.1:8/client/api"}]}`
	if err := os.WriteFile(filepath.Join(dir, "cloud.json"), []byte(cloud), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dev.json"), []byte(`{"secret":"the-dev-secret-0123456789"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseSimFlags([]string{"-hosts", "3", "-cloud", filepath.Join(dir, "cloud.json"), "-cluster", "one"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://127.0.0.1:7", "http://127.0.0.1:8"}; !slices.Equal(f.serverList, want) {
		t.Errorf("servers %v, want %v", f.serverList, want)
	}
	if f.apiKey != "k" || f.secret != "s" || f.apiURL != "http://127.0.0.1:7/client/api" {
		t.Errorf("admin keys %q/%q at %q, want those of cloud.json", f.apiKey, f.secret, f.apiURL)
	}
	if f.regToken != agent.RegistrationToken("the-dev-secret-0123456789") {
		t.Errorf("registration token not derived from dev.json's secret")
	}
	if got := f.clusterNames(); !slices.Equal(got, []string{"one"}) {
		t.Errorf("clusters %v, want [one]", got)
	}
}

func TestSimFlagsRefused(t *testing.T) {
	t.Setenv("STRATUS_CLUSTER_SECRET", "")
	t.Setenv("STRATUS_AGENT_REGISTRATION_TOKEN", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-servers", "http://x:1"}, "-hosts"},
		{[]string{"-hosts", "2", "-driver", "kvm", "-servers", "http://x:1"}, "-driver"},
		{[]string{"-hosts", "2", "-cluster", "c-%s", "-servers", "http://x:1"}, "-cluster"},
		{[]string{"-hosts", "2", "-address-base", "fe80::1", "-servers", "http://x:1"}, "-address-base"},
		{[]string{"-hosts", "2", "-address-base", "255.255.255.255", "-servers", "http://x:1"}, "no room"},
		{[]string{"-hosts", "2"}, "-servers"},
		{[]string{"-hosts", "2", "-servers", "http://x:1"}, "registration token"},
	} {
		_, err := parseSimFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sim %v: error %v, want one naming %s", tc.args, err, tc.want)
		}
	}
}
