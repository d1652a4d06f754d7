package api

import (
	"testing"
)

func TestListNetworksOnePerZone(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice, root := f.s, f.alice, f.root
	all := alice.ok(t, s, map[string]string{"command": "listNetworks"})
	nets := catItems(all, "network")
	if len(nets) != 2 || all["count"] != 2.0 {
		t.Fatalf("listNetworks = %v, want the 2 zones' networks", all)
	}
	byZone := map[string]map[string]any{}
	for _, n := range nets {
		if n["id"] != n["zoneid"] {
			t.Errorf("network %v: its ID is not its zone's", n)
		}
		byZone[n["zoneid"].(string)] = n
	}
	n := byZone[f.zone1]
	for k, want := range map[string]any{"name": guestNetworkName, "zonename": "zone one", "type": "Shared", "traffictype": "Guest",
		"cidr": "10.1.0.0/16", "gateway": "10.1.0.1", "netmask": "255.255.0.0", "canusefordeploy": true, "issystem": false,
		"networkofferingid": guestOfferingID, "acltype": "Domain"} {
		if n[k] != want {
			t.Errorf("network of zone one: %s = %v, want %v", k, n[k], want)
		}
	}

	// Terraform's lookup before a deploy: by ID, with projectid=-1.
	got := alice.ok(t, s, map[string]string{"command": "listNetworks", "id": f.zone1, "projectid": "-1"})
	if items := catItems(got, "network"); len(items) != 1 || items[0]["id"] != f.zone1 {
		t.Fatalf("listNetworks id=%s projectid=-1 = %v", f.zone1, got)
	}
	if items := catItems(alice.ok(t, s, map[string]string{"command": "listNetworks", "zoneid": f.zone2}), "network"); len(items) != 1 || items[0]["id"] != f.zone2 {
		t.Fatalf("listNetworks zoneid=zone2 = %v", items)
	}
	for _, params := range []map[string]string{
		{"id": f.zone1, "zoneid": f.zone2}, {"type": "Isolated"}, {"type": "l2"}, {"traffictype": "Public"},
		{"issystem": "true"}, {"forvpc": "true"}, {"acltype": "Account"}, {"keyword": "nothing like it"},
		{"networkofferingid": "5b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"},
	} {
		params["command"] = "listNetworks"
		if body := alice.ok(t, s, params); len(body) != 0 {
			t.Errorf("%v = %v, want an empty list", params, body)
		}
	}
	if items := catItems(alice.ok(t, s, map[string]string{"command": "listNetworks", "type": "shared", "keyword": "ZONE TWO"}), "network"); len(items) != 1 || items[0]["id"] != f.zone2 {
		t.Errorf("type=shared keyword=ZONE TWO = %v", items)
	}

	// A disabled zone's network takes no new VMs.
	root.ok(t, s, map[string]string{"command": "updateZone", "id": f.zone2, "allocationstate": "Disabled"})
	usable := catItems(alice.ok(t, s, map[string]string{"command": "listNetworks", "canusefordeploy": "true"}), "network")
	if len(usable) != 1 || usable[0]["id"] != f.zone1 {
		t.Errorf("canusefordeploy=true = %v, want only zone one's", usable)
	}

	catFail(t, alice, s, map[string]string{"command": "listNetworks", "id": "6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}, 431, "entity does not exist")
	catFail(t, alice, s, map[string]string{"command": "listNetworks", "projectid": "6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}, 431, "parameter projectid")
	catFail(t, alice, s, map[string]string{"command": "listNetworks", "type": "Bridged"}, 431, "parameter type: use one of Isolated, Shared, L2")
	catFail(t, alice, s, map[string]string{"command": "listNetworks", "canusefordeploy": "maybe"}, 431, "canusefordeploy")
}

func TestListNetworkOfferingsAndProjects(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice := f.s, f.alice
	for _, params := range []map[string]string{{}, {"id": guestOfferingID}, {"zoneid": f.zone1}, {"networkid": f.zone2},
		{"guestiptype": "Shared", "state": "enabled", "isdefault": "true"}, {"name": guestOfferingName}} {
		params["command"] = "listNetworkOfferings"
		items := catItems(alice.ok(t, s, params), "networkoffering")
		if len(items) != 1 || items[0]["id"] != guestOfferingID || items[0]["guestiptype"] != "Shared" || items[0]["specifyipranges"] != false {
			t.Errorf("%v = %v, want the one built-in offering", params, items)
		}
	}
	for _, params := range []map[string]string{{"guestiptype": "Isolated"}, {"state": "Disabled"}, {"sourcenatsupported": "true"},
		{"specifyvlan": "true"}, {"name": "DefaultIsolatedNetworkOfferingWithSourceNatService"}} {
		params["command"] = "listNetworkOfferings"
		if body := alice.ok(t, s, params); len(body) != 0 {
			t.Errorf("%v = %v, want an empty list", params, body)
		}
	}
	catFail(t, alice, s, map[string]string{"command": "listNetworkOfferings", "id": "6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}, 431, "entity does not exist")
	catFail(t, alice, s, map[string]string{"command": "listNetworkOfferings", "zoneid": "6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}, 431, "parameter zoneid")
	catFail(t, alice, s, map[string]string{"command": "listNetworkOfferings", "guestiptype": "Public"}, 431, "parameter guestiptype")

	if body := alice.ok(t, s, map[string]string{"command": "listProjects", "listall": "true"}); len(body) != 0 {
		t.Errorf("listProjects = %v, want an empty list", body)
	}
	catFail(t, alice, s, map[string]string{"command": "listProjects", "id": "6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}, 431, "entity does not exist")
}

// deployVirtualMachine takes networkids only as its zone's guest network.
func TestDeployNetworkIDs(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice := f.s, f.alice
	deploy := func(networks string) map[string]string {
		return map[string]string{"command": "deployVirtualMachine", "zoneid": f.zone1, "networkids": networks,
			"serviceofferingid": "7b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01", "templateid": "8b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"}
	}
	catFail(t, alice, s, deploy(f.zone2), 431, "it is the guest network of zone zone two, not of zone zone one")
	catFail(t, alice, s, deploy("6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01"), 431, "Invalid parameter networkids value=6b2c6a4e-5d43-4c0e-9b7e-3f1a2d9c8e01")
	catFail(t, alice, s, deploy(f.zone1+","+f.zone2), 431, "a VM has one NIC")
	// Its own zone's network passes: the deploy goes on to the offering,
	// which this fixture does not have.
	catFail(t, alice, s, deploy(f.zone1), 431, "parameter serviceofferingid")
}
