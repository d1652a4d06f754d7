package api

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"github.com/stratus-cloud/stratus/fsm"
)

// A real ed25519 key, as ssh-keygen writes it.
const testEd25519Key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop"

// testEdKey is a well-formed ssh-ed25519 public key made from seed.
func testEdKey(seed byte) string {
	var b bytes.Buffer
	sshString(&b, []byte("ssh-ed25519"))
	sshString(&b, bytes.Repeat([]byte{seed}, 32))
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestSSHKeyPairLifecycle(t *testing.T) {
	f := newCatalogFixture(t)
	s, alice := f.s, f.alice
	kp := alice.ok(t, s, map[string]string{"command": "createSSHKeyPair", "name": "gen"})["keypair"].(map[string]any)
	block, _ := pem.Decode([]byte(kp["privatekey"].(string)))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("private key = %v", kp["privatekey"])
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil || key.N.BitLen() != 2048 {
		t.Fatalf("private key does not parse as 2048-bit RSA: %v", err)
	}
	stored, _ := fsm.Get[fsm.SSHKeyPair](f.c.State(), nil, fsm.TableSSHKeyPairs, kp["id"].(string))
	if stored == nil || strings.Contains(stored.PublicKey, "PRIVATE") || !strings.HasPrefix(stored.PublicKey, "ssh-rsa AAAA") {
		t.Fatalf("stored key pair = %+v", stored)
	}
	// The stored public key is the private key's, and the fingerprint its MD5.
	line, blob, err := parseSSHPublicKey(stored.PublicKey)
	if err != nil || line != stored.PublicKey || sshFingerprint(blob) != kp["fingerprint"] {
		t.Fatalf("public key %q: %v; fingerprint %v", stored.PublicKey, err, kp["fingerprint"])
	}
	if want, _ := sshRSAPublicKey(&key.PublicKey); want != stored.PublicKey {
		t.Errorf("public key does not match the private key")
	}
	listed := item(t, alice.ok(t, s, map[string]string{"command": "listSSHKeyPairs", "name": "GEN"}), "sshkeypair")
	if listed["fingerprint"] != kp["fingerprint"] || listed["privatekey"] != nil || listed["account"] != "alice" {
		t.Fatalf("listed = %v", listed)
	}
	allowed := responseFieldsOf(t, "createSSHKeyPair")
	for k := range kp {
		if !allowed[k] {
			t.Errorf("key pair field %s is not one of CloudStack's", k)
		}
	}

	reg := alice.ok(t, s, map[string]string{"command": "registerSSHKeyPair", "name": "laptop", "publickey": testEd25519Key})["keypair"].(map[string]any)
	raw, _ := base64.StdEncoding.DecodeString(strings.Fields(testEd25519Key)[1])
	if reg["fingerprint"] != sshFingerprint(raw) || reg["privatekey"] != nil || len(strings.Split(reg["fingerprint"].(string), ":")) != 16 {
		t.Fatalf("registered = %v", reg)
	}
	catFail(t, alice, s, map[string]string{"command": "registerSSHKeyPair", "name": "again", "publickey": testEd25519Key}, 431, "already has this public key, as key pair laptop")
	catFail(t, alice, s, map[string]string{"command": "registerSSHKeyPair", "name": "laptop", "publickey": testEdKey(7)}, 431, "already exists")
	// The same key in another account is fine.
	f.bob.ok(t, s, map[string]string{"command": "registerSSHKeyPair", "name": "laptop", "publickey": testEd25519Key})
	wantNames(t, "fingerprint", names(alice.ok(t, s, map[string]string{"command": "listSSHKeyPairs", "fingerprint": reg["fingerprint"].(string)}), "sshkeypair", "name"), "laptop")
	wantNames(t, "keyword", names(alice.ok(t, s, map[string]string{"command": "listSSHKeyPairs", "keyword": "lap"}), "sshkeypair", "name"), "laptop")

	alice.ok(t, s, map[string]string{"command": "deleteSSHKeyPair", "name": "Laptop"})
	catFail(t, alice, s, map[string]string{"command": "deleteSSHKeyPair", "name": "laptop"}, 431, "a key pair named laptop does not exist for account alice")
	wantNames(t, "after delete", names(alice.ok(t, s, map[string]string{"command": "listSSHKeyPairs"}), "sshkeypair", "name"), "gen")
	wantCatalogEvents(t, f.c, reg["id"].(string), "REGISTER.SSH.KEYPAIR", "DELETE.SSH.KEYPAIR")
}

func TestRegisterSSHKeyPairRejectsBadKeys(t *testing.T) {
	f := newCatalogFixture(t)
	for _, tc := range []struct{ key, text string }{
		{"just-one-field", "want"},
		{"ssh-foo AAAA", "key type"},
		{"ssh-rsa not*base64", "base64"},
		{"ssh-rsa " + base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 11, 's', 's', 'h', '-', 'e', 'd'}), "truncated"},
		{"ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", "does not hold a ssh-rsa key"},
	} {
		catFail(t, f.alice, f.s, map[string]string{"command": "registerSSHKeyPair", "name": "k", "publickey": tc.key}, 431, tc.text)
	}
	catFail(t, f.alice, f.s, map[string]string{"command": "registerSSHKeyPair", "name": "k"}, 431, "missing parameter publickey")
}

func TestSSHKeyPairScopingAndRoles(t *testing.T) {
	f := newCatalogFixture(t)
	s := f.s
	f.alice.ok(t, s, map[string]string{"command": "registerSSHKeyPair", "name": "a", "publickey": testEd25519Key})
	f.carol.ok(t, s, map[string]string{"command": "registerSSHKeyPair", "name": "c", "publickey": testEd25519Key})
	f.dadmin.ok(t, s, map[string]string{"command": "registerSSHKeyPair", "name": "b", "publickey": testEd25519Key, "account": "bob", "domainid": f.webID})
	list := func(id ident, extra ...string) []string {
		t.Helper()
		return names(id.ok(t, s, catParams(map[string]string{"command": "listSSHKeyPairs"}, extra...)), "sshkeypair", "name")
	}
	wantNames(t, "alice", list(f.alice), "a")
	wantNames(t, "alice listall", list(f.alice, "listall", "true"), "a")
	wantNames(t, "bob", list(f.bob), "b")
	wantNames(t, "dadmin listall", list(f.dadmin, "listall", "true"), "a", "b")
	wantNames(t, "root listall", list(f.root, "listall", "true"), "a", "b", "c")
	catFail(t, f.alice, s, map[string]string{"command": "deleteSSHKeyPair", "name": "b", "account": "bob", "domainid": f.webID}, 431, "unable to find account bob")
	catFail(t, f.dadmin, s, map[string]string{"command": "deleteSSHKeyPair", "name": "c", "account": "carol", "domainid": f.rootDomain}, 431, "unable to find account carol")
	f.dadmin.ok(t, s, map[string]string{"command": "deleteSSHKeyPair", "name": "b", "account": "bob", "domainid": f.webID})
	f.root.ok(t, s, map[string]string{"command": "deleteSSHKeyPair", "name": "c", "account": "carol", "domainid": f.rootDomain})
	wantNames(t, "root after deletes", list(f.root, "listall", "true"), "a")
}

func TestSSHWireFormat(t *testing.T) {
	// e = 65537 encodes without padding; a modulus with its top bit set
	// gets a leading zero byte, as RFC 4253 mpints do.
	k := &rsa.PublicKey{E: 65537, N: new(big.Int).SetBytes(append([]byte{0x80}, make([]byte, 255)...))}
	_, blob := sshRSAPublicKey(k)
	want := 4 + 7 + 4 + 3 + 4 + 257
	if len(blob) != want || blob[18+4] != 0 || blob[18+5] != 0x80 {
		t.Fatalf("blob length %d, want %d; modulus starts % x", len(blob), want, blob[18:24])
	}
}
