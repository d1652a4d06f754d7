package fsm

import "time"

// Account types as CloudStack numbers them in API responses.
const (
	AccountTypeUser        = 0
	AccountTypeAdmin       = 1
	AccountTypeDomainAdmin = 2
)

// Object states shared by accounts and users.
const (
	StateEnabled  = "enabled"
	StateDisabled = "disabled"
)

// Allocation states of zones, pods, clusters and hosts.
const (
	AllocationEnabled  = "Enabled"
	AllocationDisabled = "Disabled"
)

// Raft indexes at which an object was created and last changed. Every stored
// object embeds it; the state store fills it in, never the proposer.
type Indexes struct {
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Meta is the single cluster metadata record.
type Meta struct {
	ClusterID   string    `json:"cluster_id"`
	Created     time.Time `json:"created"`
	AdminUserID string    `json:"admin_user_id"`
	Indexes
}

// Setting is an operator's override of a global setting's default. The
// definitions (name, default, description) live in settings.go; only
// overrides are replicated.
type Setting struct {
	Name    string    `json:"name"`
	Value   string    `json:"value"`
	Updated time.Time `json:"updated"`
	Indexes
}

// Domain is a node of the domain tree. Path is "ROOT" for the root domain
// and "ROOT/eng/web" below it.
type Domain struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Path     string    `json:"path"`
	ParentID string    `json:"parent_id,omitempty"`
	Created  time.Time `json:"created"`
	// NetworkDomain is the DNS suffix given to guest networks of the domain.
	NetworkDomain string `json:"network_domain,omitempty"`
	Indexes
}

// Account owns resources and groups users.
type Account struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	DomainID string    `json:"domain_id"`
	Type     int       `json:"type"`
	RoleType string    `json:"role_type"` // Admin, DomainAdmin, User
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
	// RoleID is the account's role; empty for accounts made before roles
	// existed, which have the built-in role of their type (see RoleOf).
	RoleID        string `json:"role_id,omitempty"`
	NetworkDomain string `json:"network_domain,omitempty"`
	Indexes
}

// User is a person or tool acting for an account. SecretKey and
// PasswordHash never leave the store through list responses or logs.
type User struct {
	ID           string    `json:"id"`
	AccountID    string    `json:"account_id"`
	DomainID     string    `json:"domain_id"`
	Username     string    `json:"username"`
	FirstName    string    `json:"first_name,omitempty"`
	LastName     string    `json:"last_name,omitempty"`
	Email        string    `json:"email,omitempty"`
	State        string    `json:"state"`
	APIKey       string    `json:"api_key,omitempty"`
	SecretKey    string    `json:"secret_key,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Created      time.Time `json:"created"`
	Timezone     string    `json:"timezone,omitempty"`
	Indexes
}

// GetID returns the domain's UUID.
func (d *Domain) GetID() string { return d.ID }

// GetID returns the account's UUID.
func (a *Account) GetID() string { return a.ID }

// GetID returns the user's UUID.
func (u *User) GetID() string { return u.ID }

// Owner returns the account itself: an account owns itself for tagging.
func (a *Account) Owner() (string, string) { return a.ID, a.DomainID }

// Owner returns the user's account.
func (u *User) Owner() (string, string) { return u.AccountID, u.DomainID }

// GetID returns the zone's UUID.
func (z *Zone) GetID() string { return z.ID }

// Zone is a CloudStack availability zone.
type Zone struct {
	ID              string            `json:"id"`
	Name            string            `json:"name"`
	Description     string            `json:"description,omitempty"`
	NetworkType     string            `json:"network_type"` // Basic or Advanced
	AllocationState string            `json:"allocation_state"`
	DNS1            string            `json:"dns1,omitempty"`
	DNS2            string            `json:"dns2,omitempty"`
	InternalDNS1    string            `json:"internal_dns1,omitempty"`
	InternalDNS2    string            `json:"internal_dns2,omitempty"`
	IP6DNS1         string            `json:"ip6_dns1,omitempty"`
	IP6DNS2         string            `json:"ip6_dns2,omitempty"`
	GuestCIDR       string            `json:"guest_cidr,omitempty"`
	Domain          string            `json:"domain,omitempty"` // network domain name
	DomainID        string            `json:"domain_id,omitempty"`
	LocalStorage    bool              `json:"local_storage"`
	SecurityGroups  bool              `json:"security_groups"`
	ZoneToken       string            `json:"zone_token"`
	Details         map[string]string `json:"details,omitempty"`
	Created         time.Time         `json:"created"`
	Indexes
}

// Copy returns a deep copy, so callers can change it and propose it.
func (z *Zone) Copy() *Zone {
	c := *z
	if z.Details != nil {
		c.Details = make(map[string]string, len(z.Details))
		for k, v := range z.Details {
			c.Details[k] = v
		}
	}
	return &c
}

// BootstrapRequest seeds a new cluster. Applying it a second time does
// nothing and reports ErrAlreadyInitialized.
type BootstrapRequest struct {
	Meta    Meta    `json:"meta"`
	Domain  Domain  `json:"domain"`
	Account Account `json:"account"`
	User    User    `json:"user"`
}

// ZoneUpsertRequest creates a zone or replaces it whole. Create says which
// was meant, so a create that races another create of the same name fails.
type ZoneUpsertRequest struct {
	Zone   Zone `json:"zone"`
	Create bool `json:"create"`
}

// DeleteRequest removes one object by ID.
type DeleteRequest struct {
	ID string `json:"id"`
}

// ConfigSetRequest overrides one global setting.
type ConfigSetRequest struct {
	Setting Setting `json:"setting"`
}

// UserKeysSetRequest replaces a user's API key pair.
type UserKeysSetRequest struct {
	UserID    string `json:"user_id"`
	APIKey    string `json:"api_key"`
	SecretKey string `json:"secret_key"`
}
