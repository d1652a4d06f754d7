package fsm

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Tables of the identity area besides domains, accounts and users.
const (
	TableDomains         = tableDomains
	TableAccounts        = tableAccounts
	TableUsers           = tableUsers
	TableRoles           = "roles"
	TableRolePermissions = "role_permissions"
	TableSessions        = "sessions"
)

// Snapshot record types of the identity tables (range 10-19).
const (
	RoleSnapshot           SnapshotType = 10
	RolePermissionSnapshot SnapshotType = 11
	SessionSnapshot        SnapshotType = 12
)

// StateLocked is the state of a locked account or user: it keeps its
// resources but cannot sign in or use its keys.
const StateLocked = "locked"

// Role types, as CloudStack names them. A role's type caps what its rules
// can allow: a User-type role never reaches an admin command.
const (
	RoleTypeAdmin       = "Admin"
	RoleTypeDomainAdmin = "DomainAdmin"
	RoleTypeUser        = "User"
)

// Rule permissions of a custom role.
const (
	PermissionAllow = "allow"
	PermissionDeny  = "deny"
)

// IDs of the built-in roles. They are fixed so that every cluster, and every
// leader seeding one, names them alike, and so that accounts made before
// roles existed map to them by type.
const (
	RoleIDRootAdmin   = "6b0c6b58-2f0e-4c55-9a8e-0c1b7f2f6a01"
	RoleIDDomainAdmin = "6b0c6b58-2f0e-4c55-9a8e-0c1b7f2f6a02"
	RoleIDUser        = "6b0c6b58-2f0e-4c55-9a8e-0c1b7f2f6a03"
)

// SettingSessionTimeout is how long an API session lives, in seconds.
const SettingSessionTimeout = "session.timeout"

func init() {
	settingDefs = append(settingDefs, SettingDef{
		Name: SettingSessionTimeout, Category: "Advanced", Type: "Integer", Default: "1800", Dynamic: true,
		Description: "Lifetime in seconds of a session opened with the login command; an active session is extended while it is used.",
	})
}

// Role is a named set of API permissions that accounts are given. The
// built-in roles carry no rules: what they allow follows from each
// command's access level, so commands added by later versions just work.
// Custom roles allow exactly what their rules allow, in rule order, capped
// by their type.
type Role struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Type        string    `json:"type"` // RoleTypeAdmin, RoleTypeDomainAdmin or RoleTypeUser
	Description string    `json:"description,omitempty"`
	BuiltIn     bool      `json:"builtin,omitempty"`
	Created     time.Time `json:"created"`
	Indexes
}

// GetID returns the role's UUID.
func (r *Role) GetID() string { return r.ID }

// RolePermission is one rule of a custom role: a command name or a
// wildcard pattern ("list*") and whether it allows or denies. Rules are
// evaluated by ascending SortOrder; the first match decides.
type RolePermission struct {
	ID          string    `json:"id"`
	RoleID      string    `json:"role_id"`
	Rule        string    `json:"rule"`
	Permission  string    `json:"permission"` // PermissionAllow or PermissionDeny
	Description string    `json:"description,omitempty"`
	SortOrder   int       `json:"sort_order"`
	Created     time.Time `json:"created"`
	Indexes
}

// GetID returns the rule's UUID.
func (p *RolePermission) GetID() string { return p.ID }

// Session is a signed-in API session (the login command). Only a hash of
// its session key is stored; the key itself is known to the client alone.
type Session struct {
	ID        string    `json:"id"` // the JSESSIONID cookie's value
	UserID    string    `json:"user_id"`
	AccountID string    `json:"account_id"`
	KeyHash   string    `json:"key_hash"` // hex SHA-256 of the session key
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Indexes
}

// GetID returns the session's ID.
func (s *Session) GetID() string { return s.ID }

// BuiltinRoles returns the three built-in roles, in order of privilege.
func BuiltinRoles() []Role {
	return []Role{
		{ID: RoleIDRootAdmin, Name: "Root Admin", Type: RoleTypeAdmin, BuiltIn: true,
			Description: "Built-in role of the cloud's operators: every command."},
		{ID: RoleIDDomainAdmin, Name: "Domain Admin", Type: RoleTypeDomainAdmin, BuiltIn: true,
			Description: "Built-in role of domain administrators: every command open to domain admins, over their domain and the domains below it."},
		{ID: RoleIDUser, Name: "User", Type: RoleTypeUser, BuiltIn: true,
			Description: "Built-in role of end users: every command open to users, over their own account."},
	}
}

// BuiltinRoleID returns the ID of the built-in role of an account type.
func BuiltinRoleID(accountType int) string {
	switch accountType {
	case AccountTypeAdmin:
		return RoleIDRootAdmin
	case AccountTypeDomainAdmin:
		return RoleIDDomainAdmin
	}
	return RoleIDUser
}

// AccountTypeOfRole returns the account type that a role type gives.
func AccountTypeOfRole(roleType string) int {
	switch roleType {
	case RoleTypeAdmin:
		return AccountTypeAdmin
	case RoleTypeDomainAdmin:
		return AccountTypeDomainAdmin
	}
	return AccountTypeUser
}

// RoleTypeOfAccount returns the role type of an account type.
func RoleTypeOfAccount(accountType int) string {
	switch accountType {
	case AccountTypeAdmin:
		return RoleTypeAdmin
	case AccountTypeDomainAdmin:
		return RoleTypeDomainAdmin
	}
	return RoleTypeUser
}

// RoleOf returns an account's role ID: its own, or the built-in role of its
// type for accounts made before roles existed.
func RoleOf(a *Account) string {
	if a.RoleID != "" {
		return a.RoleID
	}
	return BuiltinRoleID(a.Type)
}

func init() {
	RegisterTable(TableDef{
		Name: TableRoles, Noun: "role", Snapshot: RoleSnapshot, New: func() Object { return new(Role) },
		Indexes: map[string]*memdb.IndexSchema{
			"name":   {Indexer: caseless("Name")},
			"create": createOrder(),
		},
		Unique: []UniqueKey{{Index: "name", What: "name", Args: func(o Object) []any { return []any{o.(*Role).Name} }}},
		Label:  func(o Object) string { return o.(*Role).Name },
	})
	RegisterTable(TableDef{
		Name: TableRolePermissions, Noun: "role permission", Snapshot: RolePermissionSnapshot,
		New: func() Object { return new(RolePermission) },
		Indexes: map[string]*memdb.IndexSchema{
			"role": {Indexer: &memdb.StringFieldIndex{Field: "RoleID"}},
			"rule": {Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
				&memdb.StringFieldIndex{Field: "RoleID"}, &memdb.StringFieldIndex{Field: "Rule"}}}},
			"create": createOrder(),
		},
		Unique: []UniqueKey{{Index: "rule", What: "rule in this role", Args: func(o Object) []any {
			p := o.(*RolePermission)
			return []any{p.RoleID, p.Rule}
		}}},
		Refs:  []Ref{{Index: "role", Table: TableRoles, Value: func(o Object) string { return o.(*RolePermission).RoleID }}},
		Label: func(o Object) string { return o.(*RolePermission).Rule },
	})
	RegisterTable(TableDef{
		Name: TableSessions, Noun: "session", Snapshot: SessionSnapshot, New: func() Object { return new(Session) },
		Indexes: map[string]*memdb.IndexSchema{
			"user":   {Indexer: &memdb.StringFieldIndex{Field: "UserID"}},
			"create": createOrder(),
		},
		Refs: []Ref{{Index: "user", Table: tableUsers, Value: func(o Object) string { return o.(*Session).UserID }}},
	})
}

// Password hashes are PBKDF2 with HMAC-SHA-256, stored self-describing as
// "pbkdf2-sha256$<iterations>$<salt>$<hash>" with the salt and hash in
// unpadded standard base64. Proposers hash (the API handler before it
// commits); appliers only ever store the string.
const (
	passwordScheme = "pbkdf2-sha256"
	// DefaultPasswordIterations is the PBKDF2 work factor of new hashes,
	// OWASP's 2023 figure for HMAC-SHA-256.
	DefaultPasswordIterations = 600_000
	// maxPasswordIterations bounds the work a stored hash can ask for, so
	// a corrupt or hostile row cannot pin a CPU.
	maxPasswordIterations = 10_000_000
	passwordSaltLen       = 16
	passwordKeyLen        = 32
)

// HashPassword returns the self-describing PBKDF2-SHA-256 hash of password
// with a fresh random 16-byte salt and the given iteration count.
func HashPassword(password string, iterations int) (string, error) {
	if iterations < 1 || iterations > maxPasswordIterations {
		return "", fmt.Errorf("hash password: iteration count %d out of range", iterations)
	}
	salt := make([]byte, passwordSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, iterations, passwordKeyLen)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%s$%d$%s$%s", passwordScheme, iterations, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a hash made by
// HashPassword. Malformed hashes never match. The comparison of the derived
// keys takes constant time.
func CheckPassword(encoded, password string) bool {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 || parts[0] != passwordScheme {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > maxPasswordIterations {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[2])
	if err != nil || len(salt) == 0 {
		return false
	}
	want, err := enc.DecodeString(parts[3])
	if err != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}
