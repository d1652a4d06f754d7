package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"

	"github.com/stratus-cloud/stratus/ops"
)

// snapshotCLI runs `stratus operator -address base args...` with keys.
func snapshotCLI(bin, base string, k adminKeys, args ...string) (string, error) {
	cmd := exec.Command(bin, append([]string{"operator", "-address", base}, args...)...)
	cmd.Env = append(os.Environ(), "STRATUS_API_KEY="+k.APIKey, "STRATUS_SECRET_KEY="+k.SecretKey)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// listedTables are the list commands whose answers must be equal after a
// restore: every table with an API list.
var listedTables = []struct {
	cmd    string
	params url.Values
}{
	{"listZones", nil},
	{"listPods", nil},
	{"listClusters", nil},
	{"listHosts", nil},
	{"listStoragePools", nil},
	{"listImageStores", nil},
	{"listDomains", url.Values{"listall": {"true"}}},
	{"listAccounts", url.Values{"listall": {"true"}}},
	{"listUsers", url.Values{"listall": {"true"}}},
	{"listTemplates", url.Values{"templatefilter": {"all"}, "listall": {"true"}}},
	{"listServiceOfferings", nil},
	{"listDiskOfferings", nil},
	{"listTags", url.Values{"listall": {"true"}}},
	{"listConfigurations", url.Values{"name": {"secstorage.allowed.internal.sites"}}},
}

// listAll answers every list of listedTables from one server, as
// re-encoded JSON (so key order cannot differ).
func listAll(client *http.Client, s *server, k adminKeys) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range listedTables {
		params := url.Values{"response": {"json"}}
		for n, v := range l.params {
			params[n] = v
		}
		resp, err := client.Get(s.apiURL() + "?" + signedQuery(l.cmd, params, k, signV3))
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", l.cmd, s.id, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s on %s: HTTP %d: %s", l.cmd, s.id, resp.StatusCode, body)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("%s on %s: %w", l.cmd, s.id, err)
		}
		b, _ := json.Marshal(v)
		out[l.cmd] = string(b)
	}
	return out, nil
}

func diffLists(want, got map[string]string) error {
	for cmd, w := range want {
		if got[cmd] != w {
			return fmt.Errorf("%s differs:\nwant %s\n got %s", cmd, w, got[cmd])
		}
	}
	return nil
}

// waitSameLists polls every server until its lists equal want.
func waitSameLists(t *testing.T, c *testCluster, k adminKeys, want map[string]string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	for _, s := range c.servers {
		for {
			got, err := listAll(client, s, k)
			if err == nil {
				err = diffLists(want, got)
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not serve the restored state: %v", s.id, err)
			}
			time.Sleep(pollEvery)
		}
	}
}

// buildSnapshotState creates zones, pods, clusters, hosts, domains,
// accounts, users, offerings, a setting and tags.
func buildSnapshotState(t *testing.T, cs *cloudstack.CloudStackClient) {
	t.Helper()
	inv := buildZone(t, cs)
	addOfferings(t, cs, inv)
	z2, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.4.4", "10.0.0.2", "snap-zone-2", "Advanced"))
	if err != nil {
		t.Fatalf("createZone: %v", err)
	}
	d, err := cs.Domain.CreateDomain(cs.Domain.NewCreateDomainParams("snapdom"))
	if err != nil {
		t.Fatalf("createDomain: %v", err)
	}
	for i, user := range []string{"erin", "frank"} {
		p := cs.Account.NewCreateAccountParams(user+"@example.com", "Snap", "Tenant", user+"-password-1", user)
		p.SetAccount("snap-acct-" + user)
		p.SetDomainid(d.Id)
		p.SetAccounttype(0)
		if i == 1 {
			p.SetAccounttype(2)
		}
		if _, err := cs.Account.CreateAccount(p); err != nil {
			t.Fatalf("createAccount %s: %v", user, err)
		}
	}
	for _, id := range []string{inv.zone, z2.Id} {
		if _, err := cs.Resourcetags.CreateTags(cs.Resourcetags.NewCreateTagsParams([]string{id}, "Zone",
			map[string]string{"env": "snap", "owner": id[:8]})); err != nil {
			t.Fatalf("createTags: %v", err)
		}
	}
	if _, err := cs.Configuration.UpdateConfiguration(allowInternalSites(cs, "192.0.2.0/24")); err != nil {
		t.Fatalf("updateConfiguration: %v", err)
	}
}

// TestSnapshotSaveRestoreIntoFreshCluster saves a snapshot of one cluster
// through a follower with the CLI, restores it into a fresh three-server
// cluster, and compares every list on every server; corrupted files are
// refused by inspect and by restore (the CLI and the leader both check).
func TestSnapshotSaveRestoreIntoFreshCluster(t *testing.T) {
	bin := requireE2E(t)
	src := newCluster(t, bin, 3)
	src.startAll()
	leader := src.leader()
	var follower *server
	for _, s := range src.servers {
		if s != leader {
			follower = s
			break
		}
	}
	buildSnapshotState(t, newSDK(leader.apiURL(), src.keys))
	client := &http.Client{Timeout: 5 * time.Second}
	want, err := listAll(client, follower, src.keys)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.snap")
	out, err := snapshotCLI(bin, follower.baseURL(), src.keys, "snapshot", "save", file)
	if err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	if !strings.Contains(out, "saving: received") || !strings.Contains(out, "sha256 ") {
		t.Fatalf("snapshot save printed no progress or checksum:\n%s", out)
	}
	out, err = snapshotCLI(bin, follower.baseURL(), src.keys, "snapshot", "inspect", file)
	if err != nil || !strings.Contains(out, "Checksum") || !strings.Contains(out, "OK") ||
		!strings.Contains(out, "zones ") || !strings.Contains(out, "accounts ") {
		t.Fatalf("snapshot inspect: %v\n%s", err, out)
	}
	t.Logf("inspect:\n%s", out)
	// The source cluster is gone for good; only the file remains.
	for _, s := range src.servers {
		s.kill9()
	}

	dst := newCluster(t, bin, 3)
	dst.startAll()
	dstFollower := dst.servers[0]
	if l := dst.leader(); l == dstFollower {
		dstFollower = dst.servers[1]
	}

	// A flipped byte: inspect and restore refuse it, the CLI before it
	// uploads, the leader when the upload skips the CLI's check.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x40
	badFile := filepath.Join(dir, "corrupt.snap")
	if err := os.WriteFile(badFile, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"snapshot", "inspect", badFile}, {"snapshot", "restore", "-force", badFile}} {
		out, err := snapshotCLI(bin, dstFollower.baseURL(), dst.keys, args...)
		if err == nil || !strings.Contains(out, "checksum mismatch") || !strings.Contains(out, "damaged") {
			t.Fatalf("%v of a corrupted file: %v\n%s", args, err, out)
		}
	}
	resp, err := http.Post(dstFollower.baseURL()+"/v1/operator/snapshot-restore?"+operatorQuery("snapshot-restore", dst.keys),
		"application/octet-stream", bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), "checksum mismatch") {
		t.Fatalf("leader took a corrupted upload: HTTP %d %s", resp.StatusCode, body)
	}
	out, err = snapshotCLI(bin, dstFollower.baseURL(), dst.keys, "snapshot", "restore", file)
	if err == nil || !strings.Contains(out, "-force") {
		t.Fatalf("restore without -force: %v\n%s", err, out)
	}

	// The real restore, through a follower.
	out, err = snapshotCLI(bin, dstFollower.baseURL(), dst.keys, "snapshot", "restore", "-force", file)
	if err != nil || !strings.Contains(out, "restoring: uploaded") || !strings.Contains(out, "restored ") {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	t.Logf("restore:\n%s", out)
	// The users, keys included, came with the snapshot: the source
	// cluster's admin keys now work here.
	waitSameLists(t, dst, src.keys, want)

	// The restored cluster takes new writes on every server.
	cs := newSDK(dst.servers[2].apiURL(), src.keys)
	if _, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("1.1.1.1", "10.0.0.3", "after-restore", "Advanced")); err != nil {
		t.Fatalf("createZone after restore: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, s := range dst.servers {
		for {
			zs, err := newSDK(s.apiURL(), src.keys).Zone.ListZones(cs.Zone.NewListZonesParams())
			if err == nil && zs.Count == 3 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: zones after restore: %+v %v", s.id, zs, err)
			}
			time.Sleep(pollEvery)
		}
	}
	dst.checkNoCrash()
}

// TestRecoverLostQuorumWithPeersJSON destroys two of three servers for
// good. The survivor, stopped, gets a peers.json naming only itself and
// `stratus recover`; it starts as a single-voter cluster, serves all its
// data, takes writes, and two brand-new servers join it.
func TestRecoverLostQuorumWithPeersJSON(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	leader := c.leader()
	buildSnapshotState(t, newSDK(leader.apiURL(), c.keys))
	client := &http.Client{Timeout: 5 * time.Second}
	survivor := c.servers[0]
	if survivor == leader {
		survivor = c.servers[1]
	}
	want, err := listAll(client, survivor, c.keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range c.servers {
		if s != survivor {
			s.kill9() // destroyed: their data dirs are never used again
		}
	}
	if err := survivor.stop(); err != nil {
		t.Fatalf("stop the survivor: %v", err)
	}

	// recover refuses a peers.json that does not name the server.
	peersPath := filepath.Join(c.dir, "peers.json")
	other, _ := json.Marshal([]map[string]any{{"id": "someone-else", "address": "127.0.0.1:1", "non_voter": false}})
	if err := os.WriteFile(peersPath, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "recover", "-data-dir", survivor.dataDir, "-peers", peersPath).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "does not list this server") {
		t.Fatalf("recover with a peers.json without this server: %v\n%s", err, out)
	}
	peers, _ := json.Marshal([]map[string]any{{"id": survivor.id, "address": survivor.raft, "non_voter": false}})
	if err := os.WriteFile(filepath.Join(survivor.dataDir, "raft", "peers.json"), peers, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "recover", "-data-dir", survivor.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("stratus recover: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(survivor.dataDir, "raft", "peers.json")); !os.IsNotExist(err) {
		t.Fatalf("peers.json left in place after recovery: %v", err)
	}

	// Two new servers replace the dead ones: the harness's view of the
	// cluster becomes the survivor and them.
	ports, err := ops.FreeLoopbackPorts(6)
	if err != nil {
		t.Fatal(err)
	}
	c.servers = []*server{survivor}
	if err := survivor.start(bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := c.waitReady(ctx, survivor); err != nil {
		t.Fatalf("the recovered survivor does not lead alone: %v", err)
	}
	waitSameLists(t, c, c.keys, want)
	cs := newSDK(survivor.apiURL(), c.keys)
	if _, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("1.1.1.1", "10.0.0.3", "after-recovery", "Advanced")); err != nil {
		t.Fatalf("createZone on the recovered server: %v", err)
	}
	want, err = listAll(client, survivor, c.keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		s := &server{
			id:     fmt.Sprintf("server-new-%d", i+1),
			api:    fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			raft:   fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			gossip: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
		}
		s.dataDir = filepath.Join(c.dir, s.id)
		s.proc = &proc{name: s.id, logPath: filepath.Join(c.dir, s.id+".log"),
			env: []string{"STRATUS_CLUSTER_SECRET=" + testSecret}}
		s.args = []string{"server", "-node-id", s.id, "-data-dir", s.dataDir,
			"-bind", s.api, "-raft-bind", s.raft, "-gossip-bind", s.gossip,
			"-join", survivor.gossip, "-log-level", "info"}
		if err := s.start(bin); err != nil {
			t.Fatal(err)
		}
		c.servers = append(c.servers, s)
	}
	c.waitAllReady()
	if err := c.waitVoters(ctx, survivor); err != nil {
		t.Fatal(err)
	}
	waitSameLists(t, c, c.keys, want)
	c.checkNoCrash()
}

// operatorQuery signs an operator request as stratus operator does: the
// signature names the endpoint and expires.
func operatorQuery(name string, k adminKeys) string {
	v := url.Values{"apiKey": {k.APIKey}, "operator": {name}, "signatureversion": {"3"},
		"expires": {time.Now().UTC().Add(10 * time.Minute).Format(time.RFC3339)}}
	enc := encodeValues(v)
	return enc + "&signature=" + url.QueryEscape(sign(enc, k.SecretKey))
}
