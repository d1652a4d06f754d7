package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/stratus-cloud/stratus/hypervisor"
)

// The wire protocol between host agents and the management servers. Agents
// speak plain HTTP+JSON to the API port of any server (or the load
// balancer in front of them), so they need no route to the leader.
//
// Every request is signed and every response carries a proof, which gives
// mutual authentication without sending the secret: the key is the host's
// token (or, for a first registration, the cloud's registration token).
//
//	X-Stratus-Host:      host ID (empty on registration)
//	X-Stratus-Date:      RFC 3339 UTC time of the request; servers refuse
//	                     requests more than MaxClockSkew away from their clock
//	X-Stratus-Nonce:     random hex, fresh for each request
//	X-Stratus-Signature: hex HMAC-SHA256(key, Canonical(method, path?query, date, nonce, body))
//	X-Stratus-Proof:     (response) hex HMAC-SHA256(key, nonce "\n" hex sha256(response body))
//
// A response without a valid proof did not come from a server that knows
// the host's token, and the agent ignores it.

// Paths on every server's API port.
const (
	PathRegister  = "/v1/agent/register"
	PathHeartbeat = "/v1/agent/heartbeat"
	PathDesired   = "/v1/agent/desired" // GET ?index=N&wait=ms[&peers=tag]: blocks until the desired state passes index
	PathReport    = "/v1/agent/report"
)

// Header names.
const (
	HeaderHost      = "X-Stratus-Host"
	HeaderDate      = "X-Stratus-Date"
	HeaderNonce     = "X-Stratus-Nonce"
	HeaderSignature = "X-Stratus-Signature"
	HeaderProof     = "X-Stratus-Proof"
)

// MaxClockSkew is how far a request's date may be from the server's clock.
const MaxClockSkew = 5 * time.Minute

// Canonical is the string a request signature covers.
func Canonical(method, pathAndQuery, date, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return method + "\n" + pathAndQuery + "\n" + date + "\n" + nonce + "\n" + hex.EncodeToString(sum[:])
}

// Sign returns the hex HMAC-SHA256 of msg under key.
func Sign(key, msg string) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// Proof is the response proof for a request nonce and a response body.
func Proof(key, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return Sign(key, nonce+"\n"+hex.EncodeToString(sum[:]))
}

// Equal compares two hex MACs in constant time.
func Equal(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// RegisterRequest is sent once at start. With the host's token (from
// addHost) the host is identified by the token; with the registration
// token the server finds the host by Address in the named zone, or adds it
// to the named cluster, and answers a new host token for later requests.
type RegisterRequest struct {
	Name         string               `json:"name"`
	Address      string               `json:"address"`           // the host's management IP
	Zone         string               `json:"zone,omitempty"`    // name or ID, registration token only
	Pod          string               `json:"pod,omitempty"`     // name or ID
	Cluster      string               `json:"cluster,omitempty"` // name or ID
	URI          string               `json:"uri"`               // libvirt URI peers migrate to
	AgentVersion string               `json:"agent_version"`
	Facts        hypervisor.HostFacts `json:"facts"`
	// StatusURL is where this agent answers its peers' lease questions
	// (GET PathLease) and operators' status requests.
	StatusURL string `json:"status_url,omitempty"`
	// SelfFence says this agent kills its HA guests when its lease runs
	// out, so the cloud may trust the lease as a fence (HA provider
	// "lease"): true with a watchdog armed, and on libvirt's test driver.
	SelfFence bool `json:"self_fence,omitempty"`
}

// RegisterResponse tells the agent who it is and how often to report.
type RegisterResponse struct {
	HostID string `json:"host_id"`
	// Token is set only after a registration with the registration token:
	// the agent keeps it (in its data dir) and signs with it from then on.
	Token             string `json:"token,omitempty"`
	HeartbeatInterval Millis `json:"heartbeat_interval_ms"`
	LeaseTTL          Millis `json:"lease_ttl_ms"`
}

// Heartbeat renews the host's lease and carries its usage and what runs.
type Heartbeat struct {
	HostID string               `json:"host_id"`
	SentAt time.Time            `json:"sent_at"`
	Facts  hypervisor.HostFacts `json:"facts"`
	// Domains is not sent any more (VM states travel in reports) and no
	// server reads it; kept so an older agent's heartbeat still decodes.
	Domains []hypervisor.DomainStatus `json:"domains,omitempty"`
	// CPUUsedPercent and MemoryUsedBytes are the host's current usage.
	CPUUsedPercent  float64 `json:"cpu_used_percent"`
	MemoryUsedBytes int64   `json:"memory_used_bytes"`
}

// HeartbeatResponse answers a heartbeat.
type HeartbeatResponse struct {
	State             string `json:"state"` // the host's state as the cloud sees it
	HeartbeatInterval Millis `json:"heartbeat_interval_ms"`
	LeaseTTL          Millis `json:"lease_ttl_ms"`
}

// Desired is the desired state of one host: every VM placed on it, and
// every VM migrating to it. Index is the state index it was read at; ask
// again with it to block until something changes.
type Desired struct {
	Index         uint64      `json:"index"`
	HostState     string      `json:"host_state"`
	ResourceState string      `json:"resource_state"`
	VMs           []DesiredVM `json:"vms"`
	// Peers are the other hosts of this host's cluster with a status URL:
	// an agent that lost its lease asks them whether theirs is valid
	// before it fences itself (see docs/ha.md).
	Peers []Peer `json:"peers,omitempty"`
	// PeersTag names the cluster's peer list (a hash of it: the same on
	// every server). An agent that sends it back in the poll's "peers"
	// parameter gets PeersSame and no Peers while the list is unchanged,
	// which spares a large cluster's every answer its whole host list.
	PeersTag  string `json:"peers_tag,omitempty"`
	PeersSame bool   `json:"peers_same,omitempty"`
}

// Peer is another host of the cluster, as Desired lists it.
type Peer struct {
	HostID    string `json:"host_id"`
	Name      string `json:"name"`
	StatusURL string `json:"status_url"`
}

// PathLease is served by every agent on its status address: a peer asks
// whether this agent's lease is valid.
const PathLease = "/v1/lease"

// LeaseStatus answers PathLease.
type LeaseStatus struct {
	HostID string `json:"host_id"`
	Valid  bool   `json:"valid"`
	// ExpiresIn is how long the lease still runs; 0 when not valid.
	ExpiresIn Millis `json:"expires_in_ms"`
}

// Desired power states of a VM.
const (
	WantRunning = "Running"
	WantStopped = "Stopped"
	// WantAbsent means the domain must not exist on this host: the VM was
	// expunged or moved away.
	WantAbsent = "Absent"
)

// DesiredVM is one VM as its host must make it.
type DesiredVM struct {
	ID    string `json:"id"`
	Power string `json:"power"` // WantRunning, WantStopped or WantAbsent
	// ForceStop powers the VM off at once instead of asking the guest.
	ForceStop bool                  `json:"force_stop,omitempty"`
	Spec      hypervisor.DomainSpec `json:"spec"`
	Volumes   []DesiredVolume       `json:"volumes,omitempty"`
	// RebootGen grows by one for every reboot asked: the agent reboots the
	// domain when the generation it last acted on is lower.
	RebootGen int `json:"reboot_gen"`
	// MigrateTo, when set on the VM's current host, asks that host to
	// move the VM to the named host (MigrateToURI its libvirt URI). The
	// target sees the VM with Power WantStopped and Incoming set until the
	// source reports it has let go.
	MigrateTo    string `json:"migrate_to,omitempty"`
	MigrateToURI string `json:"migrate_to_uri,omitempty"`
	Incoming     bool   `json:"incoming,omitempty"`
	HA           bool   `json:"ha,omitempty"`
}

// DesiredVolume is a volume that must exist on a pool the host reaches
// before the domain starts.
type DesiredVolume struct {
	ID           string `json:"id"`
	Pool         string `json:"pool"`      // libvirt pool name
	PoolPath     string `json:"pool_path"` // where that pool lives on the host
	Name         string `json:"name"`
	SizeBytes    int64  `json:"size_bytes"`
	Format       string `json:"format"`
	TemplatePath string `json:"template_path,omitempty"` // ROOT volumes made from a template
}

// Report tells the servers what the agent observed or did.
type Report struct {
	HostID  string         `json:"host_id"`
	VMs     []VMReport     `json:"vms,omitempty"`
	Volumes []VolumeReport `json:"volumes,omitempty"`
	// Index is the highest desired-state index the agent had read when
	// it sent the report: what it reports it did for that state or an
	// older one. A server whose state is older may not know a VM the
	// agent started yet; it waits for that index before it drops such a
	// report (the agent never sends an acknowledged report again).
	// 0: not known.
	Index uint64 `json:"index,omitempty"`
}

// VMReport is the observed state of one VM on the reporting host.
type VMReport struct {
	ID    string                `json:"id"`
	Power hypervisor.PowerState `json:"power"`
	// RebootGen is the reboot generation the agent has carried out.
	RebootGen int `json:"reboot_gen"`
	// MigratedOut says the domain left this host for the VM's MigrateTo
	// host (live, or stopped here for a cold hand-over).
	MigratedOut bool `json:"migrated_out,omitempty"`
	// Error says why the agent could not do what was asked; Power is then
	// what it observed after trying.
	Error string `json:"error,omitempty"`
	// Reason explains a change the agent did not ask for (crashed, shut
	// down from inside the guest): one of the Reason constants.
	Reason string `json:"reason,omitempty"`
	// Absent says no domain of this VM is defined on the reporting host
	// (destroyed for WantAbsent, handed over, or never defined here).
	Absent bool `json:"absent,omitempty"`
}

// Reasons of a VMReport: changes the agent did not ask for. While a VM the
// servers want Running is reported with a Reason, the agent does not start
// it again until it reads a desired state at or past the ReportResponse
// Index of that report (or, without one, a newer index than it had): the
// servers decide first whether it should run (HA) or be marked Stopped.
const (
	ReasonCrashed        = "crashed"         // the guest or its qemu process died
	ReasonGuestShutdown  = "guest-shutdown"  // the guest powered itself off
	ReasonStoppedOutside = "stopped-outside" // powered off by someone else (virsh)
)

// ReportResponse answers a report.
type ReportResponse struct {
	// Index is the state index at which the report was committed: desired
	// states read at this index or later reflect it.
	Index uint64 `json:"index"`
}

// VolumeReport is the observed state of one volume.
type VolumeReport struct {
	ID        string `json:"id"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	Error     string `json:"error,omitempty"`
}

// Millis is a duration carried as whole milliseconds.
type Millis int64

// Duration converts m to a time.Duration.
func (m Millis) Duration() time.Duration { return time.Duration(m) * time.Millisecond }

// MillisOf converts a duration to Millis.
func MillisOf(d time.Duration) Millis { return Millis(d / time.Millisecond) }

// RegistrationToken is the cloud's host registration token, derived from
// the cluster secret so every server knows it without storing it: an
// agent presenting it may register its host (and be added to the cluster
// it names). Rotating the cluster secret rotates it.
func RegistrationToken(clusterSecret string) string {
	if clusterSecret == "" {
		return ""
	}
	return Sign(clusterSecret, "stratus host registration token v1")
}
