package fsm

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func init() {
	// Every field of the identity tables set, the ones this area added too.
	tableSamples[tableDomains] = func() Object {
		return &Domain{ID: "d-1", Name: "eng", Path: "ROOT/eng", ParentID: "d-root", NetworkDomain: "eng.example", Created: testTime}
	}
	tableSamples[tableAccounts] = func() Object {
		return &Account{ID: "a-1", Name: "acme", DomainID: "d-1", Type: AccountTypeDomainAdmin, RoleType: RoleTypeDomainAdmin,
			State: StateEnabled, Created: testTime, RoleID: "r-1", NetworkDomain: "acme.example"}
	}
	tableSamples[tableUsers] = func() Object {
		return &User{ID: "u-1", AccountID: "a-1", DomainID: "d-1", Username: "ann", FirstName: "Ann", LastName: "Lee", Email: "ann@example.com",
			State: StateEnabled, APIKey: "k", SecretKey: "s", PasswordHash: "h", Created: testTime, Timezone: "Europe/Paris"}
	}
	tableSamples[TableRoles] = func() Object {
		return &Role{ID: "r-1", Name: "ops", Type: RoleTypeDomainAdmin, Description: "operators", BuiltIn: true, Created: testTime}
	}
	tableSamples[TableRolePermissions] = func() Object {
		return &RolePermission{ID: "rp-1", RoleID: "r-1", Rule: "list*", Permission: PermissionAllow, Description: "reads", SortOrder: 3, Created: testTime}
	}
	tableSamples[TableSessions] = func() Object {
		return &Session{ID: "s-1", UserID: "u-1", AccountID: "a-1", KeyHash: "abc", Created: testTime, Expires: testTime.Add(time.Hour)}
	}
}

func TestPasswordHashFormatAndCheck(t *testing.T) {
	h, err := HashPassword("s3cret pass", 1000)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != "pbkdf2-sha256" || parts[1] != "1000" || len(parts[2]) != 22 || len(parts[3]) != 43 {
		t.Fatalf("hash %q is not pbkdf2-sha256$iter$salt(16 bytes)$key(32 bytes)", h)
	}
	if !CheckPassword(h, "s3cret pass") {
		t.Fatal("the right password does not match")
	}
	for _, wrong := range []string{"", "s3cret", "s3cret pass ", "S3cret pass"} {
		if CheckPassword(h, wrong) {
			t.Errorf("wrong password %q matches", wrong)
		}
	}
	h2, _ := HashPassword("s3cret pass", 1000)
	if h2 == h {
		t.Fatal("two hashes of one password are equal: the salt is not random")
	}
	if DefaultPasswordIterations < 210000 {
		t.Fatalf("default work factor %d is below 210000", DefaultPasswordIterations)
	}
	for _, bad := range []string{"", "plain", "pbkdf2-sha256$x$AAAA$AAAA", "pbkdf2-sha256$0$AAAA$AAAA",
		"pbkdf2-sha256$99999999999$AAAA$AAAA", "md5$1000$" + parts[2] + "$" + parts[3], "pbkdf2-sha256$1000$!!$AAAA",
		"pbkdf2-sha256$1000$" + parts[2] + "$"} {
		if CheckPassword(bad, "s3cret pass") {
			t.Errorf("malformed hash %q matches", bad)
		}
	}
	if _, err := HashPassword("x", 0); err == nil {
		t.Fatal("zero iterations accepted")
	}
}

func TestBuiltinRolesAndTypes(t *testing.T) {
	roles := BuiltinRoles()
	if len(roles) != 3 {
		t.Fatalf("built-in roles = %v", roles)
	}
	for _, r := range roles {
		typ := AccountTypeOfRole(r.Type)
		if BuiltinRoleID(typ) != r.ID || RoleTypeOfAccount(typ) != r.Type || !r.BuiltIn {
			t.Errorf("role %s: type mapping is not consistent", r.Name)
		}
	}
	if RoleOf(&Account{Type: AccountTypeDomainAdmin}) != RoleIDDomainAdmin || RoleOf(&Account{RoleID: "custom", Type: AccountTypeUser}) != "custom" {
		t.Fatal("RoleOf does not fall back to the built-in role of the type")
	}
	if d, ok := LookupSettingDef(SettingSessionTimeout); !ok || d.Default != "1800" || d.Type != "Integer" {
		t.Fatalf("session.timeout setting = %+v, %v", d, ok)
	}
	if NewStore().SettingInt(SettingSessionTimeout) != 1800 {
		t.Fatal("session.timeout default is not 1800")
	}
}

func TestRoleTablesIntegrity(t *testing.T) {
	f := seeded(t)
	idx := uint64(1)
	txn := func(ops ...TxnOp) error {
		idx++
		return apply(t, f, idx, TxnRequestType, TxnRequest{Ops: ops})
	}
	role := &Role{ID: "r-ops", Name: "Ops", Type: RoleTypeUser, Created: testTime}
	rule := func(id, r string, order int) *RolePermission {
		return &RolePermission{ID: id, RoleID: "r-ops", Rule: r, Permission: PermissionAllow, SortOrder: order, Created: testTime}
	}
	if err := txn(Create(TableRoles, role), Create(TableRolePermissions, rule("p-1", "list*", 0))); err != nil {
		t.Fatalf("create role with a rule: %v", err)
	}
	// Role names are unique ignoring case.
	if err := txn(Create(TableRoles, &Role{ID: "r-2", Name: "OPS", Type: RoleTypeUser})); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate role name: %v", err)
	}
	// A rule is unique within its role, and needs an existing role.
	if err := txn(Create(TableRolePermissions, rule("p-2", "list*", 1))); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate rule: %v", err)
	}
	orphan := rule("p-3", "deploy*", 1)
	orphan.RoleID = "r-none"
	if err := txn(Create(TableRolePermissions, orphan)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rule of a missing role: %v", err)
	}
	// A role with rules cannot go alone; with its rules first it can.
	if err := txn(Delete(TableRoles, "r-ops")); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "list*") {
		t.Fatalf("delete role with rules: %v", err)
	}
	if err := txn(Delete(TableRolePermissions, "p-1"), Delete(TableRoles, "r-ops")); err != nil {
		t.Fatalf("delete rules then role: %v", err)
	}
}

func TestSessionsBelongToUsers(t *testing.T) {
	f := seeded(t)
	s := &Session{ID: "s-1", UserID: "u-admin", AccountID: "a-admin", KeyHash: "h", Created: testTime, Expires: testTime.Add(time.Hour)}
	if err := apply(t, f, 2, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableSessions, s)}}); err != nil {
		t.Fatalf("create session: %v", err)
	}
	bad := *s
	bad.ID, bad.UserID = "s-2", "u-none"
	if err := apply(t, f, 3, TxnRequestType, TxnRequest{Ops: []TxnOp{Create(TableSessions, &bad)}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("session of a missing user: %v", err)
	}
	// The user cannot be deleted while a session refers to it.
	if err := apply(t, f, 4, TxnRequestType, TxnRequest{Ops: []TxnOp{Delete(tableUsers, "u-admin")}}); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete user with a session: %v", err)
	}
	got, _ := List[Session](f.State(), nil, TableSessions, "user", "u-admin")
	if len(got) != 1 || got[0].KeyHash != "h" || !got[0].Expires.Equal(testTime.Add(time.Hour)) {
		t.Fatalf("sessions of the admin = %+v", got)
	}
	// Many sessions in one txn, all pruned in another with IfExists.
	var ops, dels []TxnOp
	for i := 0; i < 5; i++ {
		c := *s
		c.ID = "s-n" + strconv.Itoa(i)
		ops = append(ops, Create(TableSessions, &c))
		d := Delete(TableSessions, c.ID)
		d.IfExists = true
		dels = append(dels, d, d) // the second is a no-op
	}
	if err := apply(t, f, 5, TxnRequestType, TxnRequest{Ops: ops}); err != nil {
		t.Fatal(err)
	}
	if err := apply(t, f, 6, TxnRequestType, TxnRequest{Ops: dels}); err != nil {
		t.Fatalf("prune: %v", err)
	}
	if n, _ := f.State().Count(TableSessions, "user", "u-admin"); n != 1 {
		t.Fatalf("%d sessions left, want 1", n)
	}
}
