package e2e

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/cloudstack-go/v2/cloudstack"
)

// TestOperatorBuildsCloudAndTenantsStayApart drives the whole inventory and
// identity API through HAProxy with the Go SDK, as an operator and then as
// tenants with their own keys: the operator builds a zone with a pod, a KVM
// cluster, a host, primary and secondary storage, offerings, a template and
// an ISO, and lists each back; creates a domain, accounts, users and keys.
// The leader downloads every image from a local image server: listTemplates
// shows the copy not downloaded, half way, then complete and measured; an
// image whose URL answers 404 ends with the reason and is never ready.
// Each tenant registers and tags its own template and sees only its own
// things (and the ready public ones); another tenant's template by id
// looks exactly like a random id; admin commands are refused; deleting what
// is in use fails naming the user; events say who did what; and every list answers the same, byte for byte,
// on each of the three servers asked directly. Nothing fails over here, so
// no error is retried: even one retriable() would retry fails the test.
func TestOperatorBuildsCloudAndTenantsStayApart(t *testing.T) {
	bin := requireE2E(t)
	c := newCluster(t, bin, 3)
	c.startAll()
	lb := c.startHAProxy()
	admin := newSDK(lb.apiURL(), c.keys)
	images := newImageServer(t)
	// The image server is on loopback, an internal address the leader
	// refuses to download from until the operator allows it.
	if _, err := admin.Configuration.UpdateConfiguration(allowInternalSites(admin, "127.0.0.0/8")); err != nil {
		t.Fatalf("allow loopback image downloads: %v", err)
	}

	inv := buildZone(t, admin)
	inv.images = images
	addStorageAndCatalog(t, admin, inv)
	checkInventoryListed(t, admin, inv)
	checkInUseDeletes(t, admin, inv)

	ids := createTenants(t, admin, lb)
	eng := tenantWorks(t, ids.eng, inv)
	ops := tenantWorks(t, ids.ops, inv)
	checkSameAccountSees(t, ids.engSecond, eng)
	checkTenantsApart(t, ids.eng, eng, ops)
	checkTenantsApart(t, ids.ops, ops, eng)
	checkRefusedAdminCommands(t, ids)
	checkDomainAdmin(t, ids, eng, ops)
	checkOperatorEvents(t, admin, inv)
	checkSameOnEveryServer(t, c, lb, ids, inv)
	tearDown(t, admin, ids, inv, eng, ops)
	c.checkNoCrash()
}

// inventory is what the operator built: ids and names to check lists against.
type inventory struct {
	zone, pod, cluster, host         string
	clusterPool, zonePool, store     string
	offering, diskOffering           string
	template, iso, osType, osTypeTxt string
	broken                           string // a public, featured template whose download failed
	images                           *imageServer
}

const (
	invZone     = "inv-zone"
	invPod      = "inv-pod"
	invCluster  = "inv-cluster"
	invHostIP   = "10.1.1.5"
	invPoolCl   = "inv-primary-cluster"
	invPoolZone = "inv-primary-zone"
	invStore    = "inv-secondary"
	invOffering = "inv-medium-ha"
	invDisk     = "inv-disk-20"
	invTemplate = "inv-ubuntu"
	invISO      = "inv-install-iso"
	invBroken   = "inv-broken"
)

// buildZone makes and enables the zone, then a pod with an IP range, a KVM
// cluster and a host; deleting the zone while only the pod is in it names
// the pod.
func buildZone(t *testing.T, cs *cloudstack.CloudStackClient) *inventory {
	t.Helper()
	inv := &inventory{}
	z, err := cs.Zone.CreateZone(cs.Zone.NewCreateZoneParams("8.8.8.8", "10.0.0.1", invZone, "Advanced"))
	if err != nil {
		t.Fatalf("createZone: %v", err)
	}
	inv.zone = z.Id
	up := cs.Zone.NewUpdateZoneParams(z.Id)
	up.SetAllocationstate("Enabled")
	if u, err := cs.Zone.UpdateZone(up); err != nil || u.Allocationstate != "Enabled" {
		t.Fatalf("updateZone allocationstate=Enabled: %+v, %v", u, err)
	}

	pp := cs.Pod.NewCreatePodParams(invPod, z.Id)
	pp.SetGateway("10.1.1.1")
	pp.SetNetmask("255.255.255.0")
	pp.SetStartip("10.1.1.100")
	pp.SetEndip("10.1.1.199")
	pod, err := cs.Pod.CreatePod(pp)
	if err != nil {
		t.Fatalf("createPod: %v", err)
	}
	if pod.Name != invPod || pod.Zoneid != z.Id || pod.Zonename != invZone || pod.Gateway != "10.1.1.1" ||
		pod.Netmask != "255.255.255.0" || !slices.Equal(pod.Startip, []string{"10.1.1.100"}) ||
		!slices.Equal(pod.Endip, []string{"10.1.1.199"}) || len(pod.Ipranges) != 1 ||
		pod.Ipranges[0].Startip != "10.1.1.100" || pod.Ipranges[0].Endip != "10.1.1.199" {
		t.Fatalf("createPod answered %+v", pod)
	}
	inv.pod = pod.Id
	// The zone holds only the pod now: deleting it must name that pod.
	_, err = cs.Zone.DeleteZone(cs.Zone.NewDeleteZoneParams(z.Id))
	wantCSError(t, err, 536, invPod)

	cl, err := cs.Cluster.AddCluster(cs.Cluster.NewAddClusterParams(invCluster, "CloudManaged", "KVM", pod.Id, z.Id))
	if err != nil {
		t.Fatalf("addCluster: %v", err)
	}
	if cl.Name != invCluster || cl.Hypervisortype != "KVM" || cl.Clustertype != "CloudManaged" || cl.Podid != pod.Id ||
		cl.Podname != invPod || cl.Zoneid != z.Id || cl.Allocationstate != "Enabled" {
		t.Fatalf("addCluster answered %+v", cl)
	}
	inv.cluster = cl.Id

	hp := cs.Host.NewAddHostParams("KVM", pod.Id, "http://"+invHostIP, z.Id)
	hp.SetClusterid(cl.Id)
	hp.SetUsername("root")
	hp.SetPassword("host-password-never-stored")
	hp.SetHosttags([]string{"fast-cpu"})
	h, err := cs.Host.AddHost(hp)
	if err != nil {
		t.Fatalf("addHost: %v", err)
	}
	if h.Id == "" || h.Name != invHostIP || h.Ipaddress != invHostIP || h.Type != "Routing" || h.Hypervisor != "KVM" ||
		h.Clusterid != cl.Id || h.Clustername != invCluster || h.Podid != pod.Id || h.Zoneid != z.Id ||
		h.State != "Disconnected" || h.Resourcestate != "Enabled" || h.Hosttags != "fast-cpu" {
		t.Fatalf("addHost answered %+v", h)
	}
	inv.host = h.Id
	return inv
}

// addStorageAndCatalog adds a cluster-scope and a zone-scope NFS pool, an
// NFS image store, the offerings, a public template and an ISO.
func addStorageAndCatalog(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	cp := cs.Pool.NewCreateStoragePoolParams(invPoolCl, "nfs://10.1.1.10/export/primary", inv.zone)
	cp.SetScope("cluster")
	cp.SetPodid(inv.pod)
	cp.SetClusterid(inv.cluster)
	cp.SetTags("ssd")
	pool, err := cs.Pool.CreateStoragePool(cp)
	if err != nil {
		t.Fatalf("createStoragePool scope=cluster: %v", err)
	}
	if pool.Name != invPoolCl || pool.Scope != "CLUSTER" || pool.Type != "NetworkFilesystem" || pool.Ipaddress != "10.1.1.10" ||
		pool.Path != "/export/primary" || pool.Clusterid != inv.cluster || pool.Podid != inv.pod || pool.Zoneid != inv.zone ||
		pool.State != "Up" || pool.Tags != "ssd" {
		t.Fatalf("createStoragePool scope=cluster answered %+v", pool)
	}
	inv.clusterPool = pool.Id
	zp := cs.Pool.NewCreateStoragePoolParams(invPoolZone, "nfs://10.1.1.11/export/zonewide", inv.zone)
	zp.SetScope("zone")
	zp.SetHypervisor("KVM")
	zpool, err := cs.Pool.CreateStoragePool(zp)
	if err != nil {
		t.Fatalf("createStoragePool scope=zone: %v", err)
	}
	if zpool.Name != invPoolZone || zpool.Scope != "ZONE" || zpool.Clusterid != "" || zpool.Podid != "" ||
		zpool.Zoneid != inv.zone || zpool.Path != "/export/zonewide" || zpool.State != "Up" {
		t.Fatalf("createStoragePool scope=zone answered %+v", zpool)
	}
	inv.zonePool = zpool.Id

	sp := cs.ImageStore.NewAddImageStoreParams("NFS")
	sp.SetName(invStore)
	sp.SetUrl("nfs://10.1.1.12/export/secondary")
	sp.SetZoneid(inv.zone)
	st, err := cs.ImageStore.AddImageStore(sp)
	if err != nil {
		t.Fatalf("addImageStore: %v", err)
	}
	if st.Name != invStore || st.Providername != "NFS" || st.Protocol != "nfs" || st.Zoneid != inv.zone ||
		st.Url != "nfs://10.1.1.12/export/secondary" {
		t.Fatalf("addImageStore answered %+v", st)
	}
	inv.store = st.Id
	addOfferings(t, cs, inv)
	addImages(t, cs, inv)
}

func addOfferings(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	dp := cs.DiskOffering.NewCreateDiskOfferingParams("Data disk 20 GB", invDisk)
	dp.SetDisksize(20)
	dp.SetTags("ssd")
	d, err := cs.DiskOffering.CreateDiskOffering(dp)
	if err != nil {
		t.Fatalf("createDiskOffering: %v", err)
	}
	if d.Name != invDisk || d.Displaytext != "Data disk 20 GB" || d.Disksize != 20 || d.Tags != "ssd" || d.Iscustomized {
		t.Fatalf("createDiskOffering answered %+v", d)
	}
	inv.diskOffering = d.Id

	op := cs.ServiceOffering.NewCreateServiceOfferingParams("2 vCPU, 2 GB, HA", invOffering)
	op.SetCpunumber(2)
	op.SetCpuspeed(1000)
	op.SetMemory(2048)
	op.SetOfferha(true)
	op.SetHosttags("fast-cpu")
	op.SetTags("ssd")
	op.SetDiskofferingid(d.Id)
	o, err := cs.ServiceOffering.CreateServiceOffering(op)
	if err != nil {
		t.Fatalf("createServiceOffering: %v", err)
	}
	if o.Name != invOffering || o.Cpunumber != 2 || o.Cpuspeed != 1000 || o.Memory != 2048 || !o.Offerha ||
		o.Hosttags != "fast-cpu" || o.Storagetags != "ssd" || o.Diskofferingid != d.Id || o.Iscustomized {
		t.Fatalf("createServiceOffering answered %+v", o)
	}
	inv.offering = o.Id
}

func addImages(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	types, err := cs.GuestOS.ListOsTypes(cs.GuestOS.NewListOsTypesParams())
	if err != nil || types.Count == 0 || len(types.OsTypes) != types.Count {
		t.Fatalf("listOsTypes: %+v, %v", types, err)
	}
	for _, o := range types.OsTypes {
		if strings.Contains(o.Description, "Ubuntu") {
			inv.osType, inv.osTypeTxt = o.Id, o.Description
			break
		}
	}
	if inv.osType == "" {
		t.Fatalf("listOsTypes lists no Ubuntu among %d types", types.Count)
	}

	// The image server holds the downloads until the registrations are
	// checked: what registering answers is a copy not downloaded yet.
	tp := cs.Template.NewRegisterTemplateParams("Ubuntu 22.04 cloud image", "QCOW2", "KVM", invTemplate,
		inv.images.add("ubuntu-22.04.qcow2", testQcow2()))
	tp.SetZoneid(inv.zone)
	tp.SetOstypeid(inv.osType)
	tp.SetIspublic(true)
	tp.SetIsfeatured(true)
	r, err := cs.Template.RegisterTemplate(tp)
	if err != nil || r.Count != 1 || len(r.RegisterTemplate) != 1 {
		t.Fatalf("registerTemplate: %+v, %v", r, err)
	}
	tpl := r.RegisterTemplate[0]
	if tpl.Id == "" || tpl.Name != invTemplate || tpl.Zoneid != inv.zone || tpl.Zonename != invZone || tpl.Format != "QCOW2" ||
		tpl.Hypervisor != "KVM" || tpl.Ostypeid != inv.osType || tpl.Ostypename != inv.osTypeTxt || !tpl.Ispublic ||
		!tpl.Isfeatured || tpl.Isready || !notDownloadedYet(tpl.Status) || tpl.Account != "admin" {
		t.Fatalf("registerTemplate answered %+v", tpl)
	}
	inv.template = tpl.Id

	ip := cs.ISO.NewRegisterIsoParams("Ubuntu installer", invISO, inv.images.add("ubuntu-22.04.iso", testISO()), inv.zone)
	ip.SetOstypeid(inv.osType)
	ip.SetIspublic(true)
	iso, err := cs.ISO.RegisterIso(ip)
	if err != nil {
		t.Fatalf("registerIso: %v", err)
	}
	if iso.Id == "" || iso.Name != invISO || iso.Zoneid != inv.zone || !iso.Bootable || iso.Ostypeid != inv.osType ||
		iso.Format != "ISO" || !iso.Ispublic || iso.Isready || !notDownloadedYet(iso.Status) {
		t.Fatalf("registerIso answered %+v", iso)
	}
	inv.iso = iso.Id
	waitImagesDownloaded(t, cs, inv)
	addBrokenTemplate(t, cs, inv)
}

// waitImagesDownloaded lets the image server answer: the template shows
// its download half way, then both images are downloaded and measured.
func waitImagesDownloaded(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	inv.images.sendHalf()
	half := waitTemplate(t, cs, "all", inv.template, inv.zone, func(tpl *cloudstack.Template) bool {
		return tpl.Status == "50% Downloaded" || downloadSettled(tpl.Status)
	})
	if half.Status != "50% Downloaded" || half.Isready {
		t.Fatalf("listTemplates all id: template half downloaded shows isready=%v status=%q; want not ready, \"50%% Downloaded\"", half.Isready, half.Status)
	}
	inv.images.sendRest()
	checkTemplateDownloaded(t, "admin listTemplates all id", waitTemplateSettled(t, cs, "all", inv.template, inv.zone))
	iso := waitIsoSettled(t, cs, inv.iso)
	if !iso.Isready || iso.Status != statusComplete || iso.Size != testISOLen || iso.Physicalsize != testISOLen {
		t.Fatalf("listIsos all id: ISO downloaded: isready=%v status=%q size=%d physicalsize=%d; want ready, %q, %d bytes",
			iso.Isready, iso.Status, iso.Size, iso.Physicalsize, statusComplete, testISOLen)
	}
}

// addBrokenTemplate registers a public, featured template whose URL answers
// 404 Not Found: its download fails with the reason and it is never ready.
func addBrokenTemplate(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	tp := cs.Template.NewRegisterTemplateParams("Gone from the image server", "QCOW2", "KVM", invBroken,
		inv.images.missing("broken.qcow2"))
	tp.SetZoneid(inv.zone)
	tp.SetOstypeid(inv.osType)
	tp.SetIspublic(true)
	tp.SetIsfeatured(true)
	r, err := cs.Template.RegisterTemplate(tp)
	if err != nil || r.Count != 1 || len(r.RegisterTemplate) != 1 || r.RegisterTemplate[0].Isready {
		t.Fatalf("registerTemplate %s: %+v, %v", invBroken, r, err)
	}
	inv.broken = r.RegisterTemplate[0].Id
	tpl := waitTemplateSettled(t, cs, "all", inv.broken, inv.zone)
	if tpl.Isready || !strings.Contains(tpl.Status, "404 Not Found") || tpl.Size != 0 || tpl.Physicalsize != 0 {
		t.Fatalf("listTemplates all id: template with a 404 URL ends isready=%v status=%q size=%d physicalsize=%d; want not ready, the 404 in the status, no size",
			tpl.Isready, tpl.Status, tpl.Size, tpl.Physicalsize)
	}
	if n := inv.images.fetched("missing/broken.qcow2"); n == 0 {
		t.Fatalf("template %s failed without the image server being asked for its URL", invBroken)
	}
}

// checkInventoryListed lists every object back and checks what an operator
// would look at.
func checkInventoryListed(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	z, n, err := cs.Zone.GetZoneByID(inv.zone)
	if err != nil || n != 1 || z.Name != invZone || z.Allocationstate != "Enabled" || z.Networktype != "Advanced" {
		t.Fatalf("listZones id: %+v, %d, %v", z, n, err)
	}
	pl := cs.Pod.NewListPodsParams()
	pl.SetZoneid(inv.zone)
	pods, err := cs.Pod.ListPods(pl)
	if err != nil || pods.Count != 1 || pods.Pods[0].Id != inv.pod || pods.Pods[0].Name != invPod ||
		pods.Pods[0].Allocationstate != "Enabled" || !slices.Equal(pods.Pods[0].Startip, []string{"10.1.1.100"}) {
		t.Fatalf("listPods zoneid: %+v, %v", pods, err)
	}
	cl := cs.Cluster.NewListClustersParams()
	cl.SetPodid(inv.pod)
	clusters, err := cs.Cluster.ListClusters(cl)
	if err != nil || clusters.Count != 1 || clusters.Clusters[0].Id != inv.cluster ||
		clusters.Clusters[0].Hypervisortype != "KVM" || clusters.Clusters[0].Zoneid != inv.zone {
		t.Fatalf("listClusters podid: %+v, %v", clusters, err)
	}
	hl := cs.Host.NewListHostsParams()
	hl.SetClusterid(inv.cluster)
	hosts, err := cs.Host.ListHosts(hl)
	if err != nil || hosts.Count != 1 || hosts.Hosts[0].Id != inv.host || hosts.Hosts[0].Ipaddress != invHostIP ||
		hosts.Hosts[0].State != "Disconnected" || hosts.Hosts[0].Hosttags != "fast-cpu" || hosts.Hosts[0].Podid != inv.pod {
		t.Fatalf("listHosts clusterid: %+v, %v", hosts, err)
	}
	sl := cs.Pool.NewListStoragePoolsParams()
	sl.SetZoneid(inv.zone)
	pools, err := cs.Pool.ListStoragePools(sl)
	if err != nil || pools.Count != 2 {
		t.Fatalf("listStoragePools zoneid: %+v, %v", pools, err)
	}
	scopes := map[string]string{}
	for _, p := range pools.StoragePools {
		scopes[p.Id] = p.Name + "/" + p.Scope + "/" + p.Clusterid
	}
	if scopes[inv.clusterPool] != invPoolCl+"/CLUSTER/"+inv.cluster || scopes[inv.zonePool] != invPoolZone+"/ZONE/" {
		t.Fatalf("listStoragePools: %v", scopes)
	}
	il := cs.ImageStore.NewListImageStoresParams()
	il.SetZoneid(inv.zone)
	stores, err := cs.ImageStore.ListImageStores(il)
	if err != nil || stores.Count != 1 || stores.ImageStores[0].Id != inv.store || stores.ImageStores[0].Protocol != "nfs" ||
		stores.ImageStores[0].Url != "nfs://10.1.1.12/export/secondary" {
		t.Fatalf("listImageStores zoneid: %+v, %v", stores, err)
	}
	checkCatalogListed(t, cs, inv)
}

func checkCatalogListed(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	o, n, err := cs.ServiceOffering.GetServiceOfferingByID(inv.offering)
	if err != nil || n != 1 || o.Name != invOffering || !o.Offerha || o.Hosttags != "fast-cpu" || o.Storagetags != "ssd" ||
		o.Cpunumber != 2 || o.Memory != 2048 || o.Diskofferingid != inv.diskOffering {
		t.Fatalf("listServiceOfferings id: %+v, %d, %v", o, n, err)
	}
	if id, n, err := cs.ServiceOffering.GetServiceOfferingID(invOffering); err != nil || n != 1 || id != inv.offering {
		t.Fatalf("SDK GetServiceOfferingID(%s) = %q, %v", invOffering, id, err)
	}
	d, n, err := cs.DiskOffering.GetDiskOfferingByID(inv.diskOffering)
	if err != nil || n != 1 || d.Name != invDisk || d.Disksize != 20 || d.Tags != "ssd" {
		t.Fatalf("listDiskOfferings id: %+v, %d, %v", d, n, err)
	}
	tpl, n, err := cs.Template.GetTemplateByID(inv.template, "all", cloudstack.WithZone(inv.zone))
	if err != nil || n != 1 || tpl.Name != invTemplate || tpl.Zoneid != inv.zone || tpl.Ostypeid != inv.osType || !tpl.Isfeatured ||
		tpl.Status != statusComplete || !tpl.Isready || tpl.Size != testQcow2Virtual || tpl.Physicalsize != testQcow2Len {
		t.Fatalf("listTemplates all id: %+v, %d, %v", tpl, n, err)
	}
	// CloudStack lists only ready copies under featured: the downloaded
	// template, not the featured one whose download failed.
	if f, err := cs.Template.ListTemplates(cs.Template.NewListTemplatesParams("featured")); err != nil || templateIDsString(f) != inv.template ||
		f.Count != 1 {
		t.Fatalf("listTemplates featured: %+v, %v; want only the ready %s", f, err, inv.template)
	}
	if id, n, err := cs.Template.GetTemplateID(invTemplate, "executable", inv.zone); err != nil || n != 1 || id != inv.template {
		t.Fatalf("SDK GetTemplateID(%s, executable) = %q, %v", invTemplate, id, err)
	}
	li := cs.ISO.NewListIsosParams()
	li.SetId(inv.iso)
	li.SetIsofilter("all")
	isos, err := cs.ISO.ListIsos(li)
	if err != nil || isos.Count != 1 || isos.Isos[0].Name != invISO || isos.Isos[0].Zoneid != inv.zone || !isos.Isos[0].Bootable ||
		isos.Isos[0].Ostypeid != inv.osType || isos.Isos[0].Status != statusComplete || !isos.Isos[0].Isready {
		t.Fatalf("listIsos id isofilter=all: %+v, %v", isos, err)
	}
	// isofilter defaults to selfexecutable, which (as in CloudStack) lists
	// only ready copies: the downloaded ISO is one.
	if own, err := cs.ISO.ListIsos(cs.ISO.NewListIsosParams()); err != nil || own.Count != 1 || len(own.Isos) != 1 || own.Isos[0].Id != inv.iso {
		t.Fatalf("listIsos (selfexecutable): %+v, %v; want only the ready %s", own, err, inv.iso)
	}
}

// checkInUseDeletes refuses deleting what something still uses, with
// CloudStack's resource-in-use error naming the user; nothing is deleted.
func checkInUseDeletes(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	_, err := cs.Pod.DeletePod(cs.Pod.NewDeletePodParams(inv.pod))
	wantCSError(t, err, 536, invCluster)
	_, err = cs.Cluster.DeleteCluster(cs.Cluster.NewDeleteClusterParams(inv.cluster))
	wantCSError(t, err, 536, invHostIP)
	_, err = cs.DiskOffering.DeleteDiskOffering(cs.DiskOffering.NewDeleteDiskOfferingParams(inv.diskOffering))
	wantCSError(t, err, 536, invOffering)
	_, err = cs.Zone.DeleteZone(cs.Zone.NewDeleteZoneParams(inv.zone))
	wantCSError(t, err, 536, "cannot delete zone")
	// Everything is still there.
	if _, n, err := cs.Zone.GetZoneByID(inv.zone); err != nil || n != 1 {
		t.Fatalf("zone after a refused delete: %d, %v", n, err)
	}
	if _, n, err := cs.Pod.GetPodByID(inv.pod); err != nil || n != 1 {
		t.Fatalf("pod after a refused delete: %d, %v", n, err)
	}
	if _, n, err := cs.DiskOffering.GetDiskOfferingByID(inv.diskOffering); err != nil || n != 1 {
		t.Fatalf("disk offering after a refused delete: %d, %v", n, err)
	}
}

// checkOperatorEvents: the operator's events name the admin user and the
// resources; the refused deletes left no event.
func checkOperatorEvents(t *testing.T, cs *cloudstack.CloudStackClient, inv *inventory) {
	t.Helper()
	evs, err := cs.Event.ListEvents(cs.Event.NewListEventsParams())
	if err != nil {
		t.Fatalf("admin listEvents: %v", err)
	}
	want := map[string]string{"ZONE.CREATE": inv.zone, "ZONE.EDIT": inv.zone, "POD.CREATE": inv.pod, "CLUSTER.CREATE": inv.cluster,
		"HOST.CREATE": inv.host, "SERVICE.OFFERING.CREATE": inv.offering, "DISK.OFFERING.CREATE": inv.diskOffering,
		"TEMPLATE.CREATE": inv.template, "ISO.CREATE": inv.iso, "DOMAIN.CREATE": "", "ACCOUNT.CREATE": ""}
	found := map[string]bool{}
	for _, e := range evs.Events {
		if strings.HasSuffix(e.Type, ".DELETE") {
			t.Errorf("admin listEvents shows %s on %s after only refused deletes", e.Type, e.Resourceid)
		}
		if id, ok := want[e.Type]; ok && (id == "" || e.Resourceid == id) && e.Username == "admin" && e.Account == "admin" {
			found[e.Type] = true
		}
	}
	for typ := range want {
		if !found[typ] {
			t.Errorf("admin listEvents lacks %s by admin on %q: %v", typ, want[typ], eventTypes(evs.Events))
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// checkSameOnEveryServer asks each server directly for the same lists, as
// each caller, and requires byte-identical answers, equal to HAProxy's.
func checkSameOnEveryServer(t *testing.T, c *testCluster, lb *haproxyProc, ids *identities, inv *inventory) {
	t.Helper()
	root := c.keys
	type query struct {
		who     string
		keys    adminKeys
		command string
		params  url.Values
	}
	qs := []query{
		{"admin", root, "listZones", url.Values{"id": {inv.zone}}},
		{"admin", root, "listPods", url.Values{"zoneid": {inv.zone}}},
		{"admin", root, "listClusters", url.Values{"zoneid": {inv.zone}}},
		{"admin", root, "listHosts", url.Values{"zoneid": {inv.zone}}},
		{"admin", root, "listStoragePools", url.Values{"zoneid": {inv.zone}}},
		{"admin", root, "listImageStores", url.Values{}},
		{"admin", root, "listServiceOfferings", url.Values{}},
		{"admin", root, "listDiskOfferings", url.Values{}},
		{"admin", root, "listTemplates", url.Values{"templatefilter": {"all"}, "listall": {"true"}}},
		{"admin", root, "listIsos", url.Values{"isofilter": {"all"}, "listall": {"true"}}},
		{"admin", root, "listDomains", url.Values{"listall": {"true"}}},
		{"admin", root, "listAccounts", url.Values{"listall": {"true"}}},
		{"admin", root, "listUsers", url.Values{"listall": {"true"}}},
		{"admin", root, "listTags", url.Values{"listall": {"true"}}},
		{"admin", root, "listEvents", url.Values{"listall": {"true"}}},
		{"admin", root, "listCapacity", url.Values{"zoneid": {inv.zone}}},
	}
	for _, tk := range []*tenantKeys{ids.eng, ids.ops, ids.engSecond, ids.engAdmin} {
		qs = append(qs,
			query{tk.username, tk.keys, "listTemplates", url.Values{"templatefilter": {"self"}, "listall": {"true"}}},
			query{tk.username, tk.keys, "listTemplates", url.Values{"templatefilter": {"executable"}}},
			query{tk.username, tk.keys, "listTags", url.Values{"listall": {"true"}}},
			query{tk.username, tk.keys, "listEvents", url.Values{"listall": {"true"}}},
			query{tk.username, tk.keys, "listAccounts", url.Values{"listall": {"true"}}},
		)
	}
	raw := &http.Client{Transport: newTransport(), Timeout: 30 * time.Second}
	for _, q := range qs {
		get := func(base string) []byte {
			params := url.Values{"response": {"json"}}
			for k, v := range q.params {
				params[k] = v
			}
			status, _, body := rawGet(t, raw, base+"?"+signedQuery(q.command, params, q.keys, signV3))
			if status != http.StatusOK {
				t.Fatalf("%s %s %v on %s: HTTP %d: %s", q.who, q.command, q.params, base, status, body)
			}
			return body
		}
		want := get(lb.apiURL())
		if !bytes.Contains(want, []byte(`"count":`)) {
			t.Fatalf("%s %s %v through HAProxy lists nothing: %s", q.who, q.command, q.params, want)
		}
		for _, s := range c.servers {
			if got := get(s.apiURL()); !bytes.Equal(got, want) {
				t.Fatalf("%s %s %v: %s answers differently from HAProxy:\n%s\nvs\n%s", q.who, q.command, q.params, s.id, got, want)
			}
		}
	}
	t.Logf("e2e: %d lists answered byte-identically through HAProxy and on all %d servers", len(qs), len(c.servers))
}

// tearDown deletes everything in dependency order: each delete succeeds
// once nothing uses the object any more, and the zone goes last.
func tearDown(t *testing.T, cs *cloudstack.CloudStackClient, ids *identities, inv *inventory, eng, ops *tenantTemplate) {
	t.Helper()
	for _, own := range []struct {
		tk  *tenantKeys
		tpl *tenantTemplate
	}{{ids.eng, eng}, {ids.ops, ops}} {
		if _, err := own.tk.cs.Template.DeleteTemplate(own.tk.cs.Template.NewDeleteTemplateParams(own.tpl.id)); err != nil {
			t.Fatalf("%s deleteTemplate of its own template: %v", own.tk.username, err)
		}
		if self, err := own.tk.cs.Template.ListTemplates(own.tk.cs.Template.NewListTemplatesParams("self")); err != nil || self.Count != 0 {
			t.Fatalf("%s listTemplates self after deleting its template: %+v, %v", own.tk.username, self, err)
		}
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"deleteTemplate", func() error {
			_, err := cs.Template.DeleteTemplate(cs.Template.NewDeleteTemplateParams(inv.template))
			return err
		}},
		{"deleteTemplate broken", func() error {
			_, err := cs.Template.DeleteTemplate(cs.Template.NewDeleteTemplateParams(inv.broken))
			return err
		}},
		{"deleteIso", func() error { _, err := cs.ISO.DeleteIso(cs.ISO.NewDeleteIsoParams(inv.iso)); return err }},
		{"deleteServiceOffering", func() error {
			_, err := cs.ServiceOffering.DeleteServiceOffering(cs.ServiceOffering.NewDeleteServiceOfferingParams(inv.offering))
			return err
		}},
		{"deleteDiskOffering", func() error {
			_, err := cs.DiskOffering.DeleteDiskOffering(cs.DiskOffering.NewDeleteDiskOfferingParams(inv.diskOffering))
			return err
		}},
		{"deleteImageStore", func() error {
			_, err := cs.ImageStore.DeleteImageStore(cs.ImageStore.NewDeleteImageStoreParams(inv.store))
			return err
		}},
		{"deleteStoragePool zone", func() error {
			_, err := cs.Pool.DeleteStoragePool(cs.Pool.NewDeleteStoragePoolParams(inv.zonePool))
			return err
		}},
		{"deleteStoragePool cluster", func() error {
			_, err := cs.Pool.DeleteStoragePool(cs.Pool.NewDeleteStoragePoolParams(inv.clusterPool))
			return err
		}},
		{"deleteHost", func() error { _, err := cs.Host.DeleteHost(cs.Host.NewDeleteHostParams(inv.host)); return err }},
		{"deleteCluster", func() error {
			_, err := cs.Cluster.DeleteCluster(cs.Cluster.NewDeleteClusterParams(inv.cluster))
			return err
		}},
		{"deletePod", func() error { _, err := cs.Pod.DeletePod(cs.Pod.NewDeletePodParams(inv.pod)); return err }},
		{"deleteZone", func() error { _, err := cs.Zone.DeleteZone(cs.Zone.NewDeleteZoneParams(inv.zone)); return err }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("teardown %s: %v", st.what, err)
		}
	}
	if _, n, err := cs.Zone.GetZoneByID(inv.zone); n != 0 || err == nil || !strings.Contains(err.Error(), "No match found") {
		t.Fatalf("listZones id after teardown: %d, %v; want not found", n, err)
	}
	le := cs.Event.NewListEventsParams()
	le.SetType("ZONE.DELETE")
	if evs, err := cs.Event.ListEvents(le); err != nil || evs.Count != 1 || evs.Events[0].Resourceid != inv.zone || evs.Events[0].Username != "admin" {
		t.Fatalf("admin listEvents type=ZONE.DELETE: %+v, %v; want the one delete, by admin", evs, err)
	}
}

func allowInternalSites(cs *cloudstack.CloudStackClient, cidrs string) *cloudstack.UpdateConfigurationParams {
	p := cs.Configuration.NewUpdateConfigurationParams("secstorage.allowed.internal.sites")
	p.SetValue(cidrs)
	return p
}
