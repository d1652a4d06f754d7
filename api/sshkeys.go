package api

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"

	"github.com/stratus-cloud/stratus/fsm"
)

// SSH key pairs: public keys VMs get at deploy time. createSSHKeyPair makes
// an RSA key pair and answers the private key once; only the public key is
// stored. The OpenSSH public key format and CloudStack's MD5 fingerprint
// are written by hand (golang.org/x/crypto/ssh is not in the module graph):
// a public key is "<type> <base64 blob>", the blob a sequence of
// length-prefixed fields starting with the type (RFC 4253 section 6.6), and
// the fingerprint is the MD5 of the blob as colon-separated hex.

const (
	resSSHKeyPair = "SSHKeyPair"
	sshKeyBits    = 2048
	// sshMaxKeyLen caps a registered public key's length.
	sshMaxKeyLen = 16384
)

type sshKeyPairResponse struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	PrivateKey  string `json:"privatekey,omitempty"`
	Account     string `json:"account"`
	DomainID    string `json:"domainid"`
	Domain      string `json:"domain"`
	HasAnnots   bool   `json:"hasannotations"`
}

var sshKeyPairFields = withJobFields(
	ResponseField{Name: "id", Type: "string", Description: "Key pair ID."},
	ResponseField{Name: "name", Type: "string", Description: "Key pair name, unique in its account."},
	ResponseField{Name: "fingerprint", Type: "string", Description: "MD5 fingerprint of the public key, colon-separated hex."},
	ResponseField{Name: "privatekey", Type: "string", Description: "The private key, PEM: only in createSSHKeyPair's answer, never stored."},
	ResponseField{Name: "account", Type: "string", Description: "Owning account."},
	ResponseField{Name: "domainid", Type: "string", Description: "Domain of the owning account."},
	ResponseField{Name: "domain", Type: "string", Description: "Name of that domain."},
	ResponseField{Name: "hasannotations", Type: "boolean", Description: "Whether operators left comments on it."},
)

func init() {
	registerCommands(func(*Server) []*Command {
		owner := []ParamSpec{
			{Name: "account", Type: "string", Description: "Owning account (admins), with domainid."},
			{Name: "domainid", Type: "uuid", Related: "listDomains", Description: "Domain of that account."},
		}
		name := ParamSpec{Name: "name", Type: "string", Required: true, Length: 255, Description: "Name of the key pair; unique in the account."}
		return []*Command{
			{
				Name: "createSSHKeyPair", Description: "Creates a 2048-bit RSA key pair; the private key is answered once and never stored.",
				Write: true, Access: AccessUser, ObjectName: "keypair", Related: "listSSHKeyPairs", Response: sshKeyPairFields,
				Handler: createSSHKeyPair, Params: append([]ParamSpec{name}, owner...),
			},
			{
				Name: "registerSSHKeyPair", Description: "Registers an OpenSSH public key (ssh-rsa, ssh-ed25519, ecdsa-sha2-*, ssh-dss).",
				Write: true, Access: AccessUser, ObjectName: "keypair", Related: "listSSHKeyPairs", Response: sshKeyPairFields,
				Handler: registerSSHKeyPair,
				Params: append([]ParamSpec{name,
					{Name: "publickey", Type: "string", Required: true, Description: "The public key, as in an authorized_keys line."},
				}, owner...),
			},
			{
				Name: "listSSHKeyPairs", Description: "Lists SSH key pairs, oldest first.", Access: AccessUser, ObjectName: "sshkeypair",
				Related: "createSSHKeyPair", Response: sshKeyPairFields, Handler: listSSHKeyPairs,
				Params: withPaging(scopeParams(
					ParamSpec{Name: "id", Type: "uuid", Related: "listSSHKeyPairs", Description: "Only the key pair with this ID."},
					ParamSpec{Name: "name", Type: "string", Description: "Only key pairs with this name."},
					ParamSpec{Name: "fingerprint", Type: "string", Description: "Only key pairs with this fingerprint."},
				)...),
			},
			{
				Name: "deleteSSHKeyPair", Description: "Deletes an SSH key pair; VMs deployed with it keep the key.",
				Write: true, Access: AccessUser, Response: successResponse, Handler: deleteSSHKeyPair,
				Params: append([]ParamSpec{{Name: "name", Type: "string", Required: true, Description: "Name of the key pair."}}, owner...),
			},
		}
	})
}

// sshString appends an RFC 4253 string (or mpint bytes) to b.
func sshString(b *bytes.Buffer, s []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	b.Write(n[:])
	b.Write(s)
}

// sshMPInt is an RFC 4253 mpint of a positive integer: big-endian, with a
// zero byte first when the top bit is set.
func sshMPInt(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) > 0 && b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

// sshRSAPublicKey is the OpenSSH "ssh-rsa <base64>" line of a key and its
// wire blob.
func sshRSAPublicKey(k *rsa.PublicKey) (string, []byte) {
	var b bytes.Buffer
	sshString(&b, []byte("ssh-rsa"))
	sshString(&b, sshMPInt(big.NewInt(int64(k.E))))
	sshString(&b, sshMPInt(k.N))
	return "ssh-rsa " + base64.StdEncoding.EncodeToString(b.Bytes()), b.Bytes()
}

// sshFingerprint is CloudStack's fingerprint of a key blob: MD5, as
// lower-case hex pairs joined by colons.
func sshFingerprint(blob []byte) string {
	sum := md5.Sum(blob)
	parts := make([]string, len(sum))
	for i, c := range sum {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// sshKeyTypes are the public key types registerSSHKeyPair takes.
var sshKeyTypes = []string{"ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"}

// parseSSHPublicKey checks an authorized_keys style public key and returns
// it normalised ("<type> <base64>[ <comment>]") with its wire blob. The
// blob must decode and name the same type as the line.
func parseSSHPublicKey(raw string) (string, []byte, error) {
	fields := strings.Fields(raw)
	if len(fields) < 2 {
		return "", nil, fmt.Errorf("want \"<type> <base64 key> [comment]\"")
	}
	typ := fields[0]
	known := false
	for _, t := range sshKeyTypes {
		known = known || t == typ
	}
	if !known {
		return "", nil, fmt.Errorf("key type %q is not one of %s", typ, strings.Join(sshKeyTypes, ", "))
	}
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		return "", nil, fmt.Errorf("the key is not valid base64: %w", err)
	}
	var fieldsIn [][]byte
	for rest := blob; len(rest) > 0; {
		if len(rest) < 4 {
			return "", nil, fmt.Errorf("the key data is truncated")
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return "", nil, fmt.Errorf("the key data is truncated")
		}
		fieldsIn, rest = append(fieldsIn, rest[4:4+n]), rest[4+n:]
	}
	if len(fieldsIn) < 2 || string(fieldsIn[0]) != typ {
		return "", nil, fmt.Errorf("the key data does not hold a %s key", typ)
	}
	if typ == "ssh-rsa" && (len(fieldsIn) != 3 || len(fieldsIn[2]) < 64) {
		return "", nil, fmt.Errorf("the ssh-rsa key data is malformed or shorter than 512 bits")
	}
	line := typ + " " + fields[1]
	if len(fields) > 2 {
		line += " " + strings.Join(fields[2:], " ")
	}
	return line, blob, nil
}

// sshKeyPairNamed returns the account's key pair of that name, or nil.
func sshKeyPairNamed(r *Request, accountID, name string) *fsm.SSHKeyPair {
	kps, err := fsm.List[fsm.SSHKeyPair](r.State(), nil, fsm.TableSSHKeyPairs, "name", accountID, name)
	if err != nil || len(kps) == 0 {
		return nil
	}
	return kps[0]
}

func renderSSHKeyPair(r *Request, k *fsm.SSHKeyPair) sshKeyPairResponse {
	acct, dom := r.ownerNames(k.AccountID, k.DomainID)
	return sshKeyPairResponse{ID: k.ID, Name: k.Name, Fingerprint: k.Fingerprint, Account: acct, DomainID: k.DomainID, Domain: dom}
}

// saveSSHKeyPair checks the name and key are new in the owner's account
// and commits the key pair.
func saveSSHKeyPair(r *Request, evType, verb, publicKey string, blob []byte) (*fsm.SSHKeyPair, *Error) {
	name, e := requiredName(r.Params, "name")
	if e != nil {
		return nil, e
	}
	acctID, domID, e := r.owner()
	if e != nil {
		return nil, e
	}
	if sshKeyPairNamed(r, acctID, name) != nil {
		return nil, ErrParam("a key pair named %s already exists in the account", name)
	}
	fp := sshFingerprint(blob)
	existing, err := fsm.List[fsm.SSHKeyPair](r.State(), nil, fsm.TableSSHKeyPairs, "account", acctID)
	if err != nil {
		return nil, ErrInternal("key pair scan failed")
	}
	for _, k := range existing {
		if k.Fingerprint == fp {
			return nil, ErrParam("the account already has this public key, as key pair %s", k.Name)
		}
	}
	k := &fsm.SSHKeyPair{ID: newID(), Name: name, AccountID: acctID, DomainID: domID, PublicKey: publicKey, Fingerprint: fp, Created: r.srv.now().UTC()}
	if e := r.commit(fsm.Create(fsm.TableSSHKeyPairs, k), r.event(evType, resSSHKeyPair, k.ID, "%s SSH key pair %s", verb, name)); e != nil {
		return nil, e
	}
	return k, nil
}

func createSSHKeyPair(r *Request) (any, *Error) {
	key, err := rsa.GenerateKey(rand.Reader, sshKeyBits)
	if err != nil {
		return nil, ErrInternal("key generation failed")
	}
	pub, blob := sshRSAPublicKey(&key.PublicKey)
	k, e := saveSSHKeyPair(r, "CREATE.SSH.KEYPAIR", "created", pub, blob)
	if e != nil {
		return nil, e
	}
	out := renderSSHKeyPair(r, k)
	out.PrivateKey = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	return map[string]any{"keypair": out}, nil
}

func registerSSHKeyPair(r *Request) (any, *Error) {
	raw := strings.TrimSpace(r.Params.String("publickey"))
	if len(raw) > sshMaxKeyLen {
		return nil, ErrParam("invalid value for parameter publickey: it is %d characters long; at most %d are allowed", len(raw), sshMaxKeyLen)
	}
	pub, blob, err := parseSSHPublicKey(raw)
	if err != nil {
		return nil, ErrParam("invalid value for parameter publickey: %v", err)
	}
	k, e := saveSSHKeyPair(r, "REGISTER.SSH.KEYPAIR", "registered", pub, blob)
	if e != nil {
		return nil, e
	}
	return map[string]any{"keypair": renderSSHKeyPair(r, k)}, nil
}

func listSSHKeyPairs(r *Request) (any, *Error) {
	p := r.Params
	scope, e := r.listScope()
	if e != nil {
		return nil, e
	}
	var keys []*fsm.SSHKeyPair
	byID := given(p, "id")
	if byID {
		k, e := lookup(r, fsm.TableSSHKeyPairs, "id", func(k *fsm.SSHKeyPair) bool { return r.canAccess(k.AccountID, k.DomainID) })
		if e != nil {
			return nil, e
		}
		keys = []*fsm.SSHKeyPair{k}
	} else {
		var err error
		if keys, err = fsm.List[fsm.SSHKeyPair](r.State(), nil, fsm.TableSSHKeyPairs, "create"); err != nil {
			return nil, ErrInternal("key pair scan failed")
		}
	}
	name, fp, kw := p.String("name"), strings.ToLower(strings.TrimSpace(p.String("fingerprint"))), strings.ToLower(p.String("keyword"))
	var out []sshKeyPairResponse
	for _, k := range keys {
		if (!byID && !scope(k.AccountID, k.DomainID)) || (name != "" && !strings.EqualFold(k.Name, name)) ||
			(fp != "" && k.Fingerprint != fp) || !keywordMatch(kw, k.Name) {
			continue
		}
		out = append(out, renderSSHKeyPair(r, k))
	}
	return catalogPage(r, "sshkeypair", out)
}

func deleteSSHKeyPair(r *Request) (any, *Error) {
	acctID, domID, e := r.owner()
	if e != nil {
		return nil, e
	}
	name := strings.TrimSpace(r.Params.String("name"))
	k := sshKeyPairNamed(r, acctID, name)
	if k == nil {
		acct, dom := r.ownerNames(acctID, domID)
		return nil, ErrParam("a key pair named %s does not exist for account %s in domain %s", name, acct, dom)
	}
	if e := r.commit(fsm.Check(fsm.TableSSHKeyPairs, k), fsm.Delete(fsm.TableSSHKeyPairs, k.ID),
		r.event("DELETE.SSH.KEYPAIR", resSSHKeyPair, k.ID, "deleted SSH key pair %s", k.Name)); e != nil {
		return nil, e
	}
	return successBody(), nil
}
