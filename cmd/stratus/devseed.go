package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/hypervisor"
	"github.com/stratus-cloud/stratus/hypervisor/agent"
)

// The dev cloud's inventory: one zone with a pod, a KVM cluster, shared
// primary storage, an image store, offerings and a template, so that
// deployVirtualMachine works as soon as `make run` prints its banner.
const (
	devZone     = "dev-zone"
	devPod      = "dev-pod"
	devCluster  = "dev-cluster"
	devTemplate = "dev-template"
)

// devAPI calls the dev cloud's API as its admin.
type devAPI struct {
	url, key, secret string
	client           *http.Client
}

func (d *devAPI) call(ctx context.Context, command string, params map[string]string) (map[string]json.RawMessage, error) {
	q := url.Values{"command": {command}, "response": {"json"}, "apiKey": {d.key}}
	for k, v := range params {
		q.Set(k, v)
	}
	q.Set("signature", api.Sign(q, d.secret))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, strings.NewReader(q.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var top map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, fmt.Errorf("%s: HTTP %d: %s", command, resp.StatusCode, b)
	}
	for _, inner := range top {
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: HTTP %d: %s", command, resp.StatusCode, inner["errortext"])
		}
		return inner, nil
	}
	return nil, fmt.Errorf("%s: empty answer", command)
}

// firstID returns the id of the first item of a list answer, or "".
func firstID(inner map[string]json.RawMessage, key string) string {
	var items []struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(inner[key], &items)
	if len(items) == 0 {
		return ""
	}
	return items[0].ID
}

// objectID returns the id of the object an answer carries under key.
func objectID(inner map[string]json.RawMessage, key string) string {
	var o struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(inner[key], &o)
	return o.ID
}

// ensure finds an object by name with list, or makes it with create.
func (d *devAPI) ensure(ctx context.Context, list string, listParams map[string]string, item, create string, params map[string]string) (string, error) {
	inner, err := d.call(ctx, list, listParams)
	if err != nil {
		return "", err
	}
	if id := firstID(inner, item); id != "" {
		return id, nil
	}
	inner, err = d.call(ctx, create, params)
	if err != nil {
		return "", err
	}
	if id := objectID(inner, item); id != "" {
		return id, nil
	}
	return firstID(inner, item), nil
}

// seedDevZone makes the dev zone's inventory, keeping what exists.
func seedDevZone(ctx context.Context, d *devAPI, dir string) error {
	zone, err := d.ensure(ctx, "listZones", map[string]string{"name": devZone}, "zone", "createZone",
		map[string]string{"name": devZone, "networktype": "Advanced", "dns1": "8.8.8.8", "internaldns1": "10.0.0.1",
			"guestcidraddress": "10.1.0.0/16", "allocationstate": "Enabled"})
	if err != nil {
		return err
	}
	pod, err := d.ensure(ctx, "listPods", map[string]string{"name": devPod, "zoneid": zone}, "pod", "createPod",
		map[string]string{"name": devPod, "zoneid": zone, "gateway": "10.0.0.1", "netmask": "255.255.255.0",
			"startip": "10.0.0.100", "endip": "10.0.0.200"})
	if err != nil {
		return err
	}
	cluster, err := d.ensure(ctx, "listClusters", map[string]string{"name": devCluster, "zoneid": zone}, "cluster", "addCluster",
		map[string]string{"clustername": devCluster, "zoneid": zone, "podid": pod, "hypervisor": "KVM", "clustertype": "CloudManaged"})
	if err != nil {
		return err
	}
	steps := []struct {
		list, item, create string
		lp, p              map[string]string
	}{
		{"listStoragePools", "storagepool", "createStoragePool", map[string]string{"name": "dev-primary", "zoneid": zone},
			map[string]string{"name": "dev-primary", "zoneid": zone, "podid": pod, "clusterid": cluster, "scope": "cluster",
				"url": "nfs://127.0.0.1/export/dev-primary", "capacitybytes": fmt.Sprint(int64(4) << 40)}},
		{"listImageStores", "imagestore", "addImageStore", map[string]string{"name": "dev-secondary", "zoneid": zone},
			map[string]string{"name": "dev-secondary", "zoneid": zone, "provider": "NFS", "url": "nfs://127.0.0.1/export/dev-secondary"}},
		{"listServiceOfferings", "serviceoffering", "createServiceOffering", map[string]string{"name": "small"},
			map[string]string{"name": "small", "displaytext": "1 CPU, 512 MiB", "cpunumber": "1", "cpuspeed": "1000", "memory": "512"}},
		{"listServiceOfferings", "serviceoffering", "createServiceOffering", map[string]string{"name": "medium-ha"},
			map[string]string{"name": "medium-ha", "displaytext": "2 CPUs, 2 GiB, restarted elsewhere when its host fails",
				"cpunumber": "2", "cpuspeed": "1000", "memory": "2048", "offerha": "true"}},
		{"listDiskOfferings", "diskoffering", "createDiskOffering", map[string]string{"name": "data-10g"},
			map[string]string{"name": "data-10g", "displaytext": "10 GiB data disk", "disksize": "10"}},
	}
	for _, s := range steps {
		if _, err := d.ensure(ctx, s.list, s.lp, s.item, s.create, s.p); err != nil {
			return err
		}
	}
	// The template is a small raw image that this process serves over
	// HTTP on loopback, as an image server would; the leader downloads it.
	// Downloads from internal addresses are refused unless allowed, so the
	// dev cloud allows loopback.
	if _, err := d.call(ctx, "updateConfiguration", map[string]string{"name": "secstorage.allowed.internal.sites", "value": "127.0.0.0/8"}); err != nil {
		return err
	}
	imgURL, err := serveDevImage(dir)
	if err != nil {
		return err
	}
	_, err = d.ensure(ctx, "listTemplates", map[string]string{"name": devTemplate, "templatefilter": "all"}, "template", "registerTemplate",
		map[string]string{"name": devTemplate, "displaytext": "a 1 MiB raw disk for simulated hosts", "format": "RAW", "hypervisor": "KVM",
			"ostypeid": devOSType(ctx, d), "zoneid": zone, "url": imgURL, "ispublic": "true", "isfeatured": "true"})
	return err
}

// serveDevImage writes a 1 MiB raw disk image into the dev dir and serves
// the images folder on a loopback port for the rest of the process's life.
func serveDevImage(dir string) (string, error) {
	imgDir := filepath.Join(dir, "images")
	if err := os.MkdirAll(imgDir, 0o700); err != nil {
		return "", fmt.Errorf("create image dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(imgDir, "dev-template.raw"), make([]byte, 1<<20), 0o600); err != nil {
		return "", fmt.Errorf("write dev template: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen for the image server: %w", err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(imgDir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/dev-template.raw", nil
}

// devOSType returns the ID of a Linux OS type.
func devOSType(ctx context.Context, d *devAPI) string {
	inner, err := d.call(ctx, "listOsTypes", map[string]string{"keyword": "Ubuntu"})
	if err != nil {
		return ""
	}
	return firstID(inner, "ostype")
}

// startDevHost writes the libvirt test-driver host file of simulated host
// i (from 1) and starts its agent, with its status endpoint (the host's
// live domain list) on the given loopback port.
func startDevHost(dir, self, secret string, servers []CloudServer, i, statusPort int) (*devChild, CloudHost, error) {
	var urls []string
	for _, s := range servers {
		urls = append(urls, strings.TrimSuffix(s.APIURL, "/client/api"))
	}
	name := fmt.Sprintf("dev-host-%d", i)
	hdir := filepath.Join(dir, "hosts", name)
	if err := os.MkdirAll(hdir, 0o700); err != nil {
		return nil, CloudHost{}, fmt.Errorf("create %s: %w", hdir, err)
	}
	xml := filepath.Join(hdir, "host.xml")
	if err := hypervisor.WriteTestHost(xml, hypervisor.TestHost{Name: name, CPUs: 16, MHz: 2000, MemoryMiB: 32768}); err != nil {
		return nil, CloudHost{}, err
	}
	statusAddr := fmt.Sprintf("127.0.0.1:%d", statusPort)
	c, err := startDevChild(self, name, filepath.Join(hdir, "agent.log"), []string{"agent",
		"-servers", strings.Join(urls, ","), "-data-dir", hdir,
		"-libvirt-uri", "test://" + xml, "-name", name, "-address", fmt.Sprintf("10.0.0.%d", 10+i),
		"-zone", devZone, "-pod", devPod, "-cluster", devCluster, "-status-addr", statusAddr},
		[]string{"STRATUS_AGENT_REGISTRATION_TOKEN=" + agent.RegistrationToken(secret)})
	if err != nil {
		return nil, CloudHost{}, err
	}
	return c, CloudHost{Name: name, PID: c.cmd.Process.Pid, StatusURL: "http://" + statusAddr + "/v1/status"}, nil
}

// waitHostsUp waits until as many hosts of the dev zone as there are agents
// are Up, failing at once when an agent exits and restart does not start it
// again.
func waitHostsUp(ctx context.Context, d *devAPI, agents []*devChild, restart func(i int) (bool, error)) error {
	up := -1
	for {
		if err := checkDevChildren(agents, restart); err != nil {
			return err
		}
		inner, err := d.call(ctx, "listHosts", map[string]string{"state": "Up"})
		if err == nil {
			var count int
			_ = json.Unmarshal(inner["count"], &count)
			if count != up {
				fmt.Printf("  hosts Up: %d of %d\n", count, len(agents))
				up = count
			}
			if count >= len(agents) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d hosts to be Up (%d are): %w", len(agents), max(up, 0), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
