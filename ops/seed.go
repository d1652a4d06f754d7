package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/fsm"
)

// AdminKeysFile is the file, in the data dir of the server that seeded the
// cluster, holding the first admin API keys. Only its owner can read it.
const AdminKeysFile = "admin-keys.json"

// AdminKeys is the content of AdminKeysFile.
type AdminKeys struct {
	ClusterID string `json:"cluster_id"`
	Username  string `json:"username"`
	UserID    string `json:"user_id"`
	APIKey    string `json:"apikey"`
	SecretKey string `json:"secretkey"`
	// Password is the admin user's first password, for login (domain ROOT).
	// Empty for clusters seeded before logins existed.
	Password string    `json:"password,omitempty"`
	Created  time.Time `json:"created"`
}

// Applier commits a command; cluster.Node satisfies it.
type Applier interface {
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
	State() *fsm.Store
}

// SeedHook returns an establish-leadership hook that seeds a new cluster on
// its first leader: cluster metadata, the ROOT domain, the admin account and
// user with an API key pair and a random password. The keys and the
// password go to AdminKeysFile (mode 0600) before the command is proposed
// and the file is kept only if this leader's seed won, so they are never
// only in memory and never in logs; the state holds only the password's
// hash.
//
// On every establish it also adds any built-in role that is missing, so a
// cluster seeded by an older version gets them too.
func SeedHook(c Applier, dataDir string, logger hclog.Logger) func(context.Context) error {
	logger = logger.Named("seed")
	final := filepath.Join(dataDir, AdminKeysFile)
	tmp := final + ".pending"
	return func(ctx context.Context) error {
		if m, err := c.State().Meta(nil); err != nil {
			return fmt.Errorf("read cluster meta: %w", err)
		} else if m != nil {
			if err := ensureBuiltinRoles(ctx, c, logger); err != nil {
				return err
			}
			return settlePending(tmp, final, m.AdminUserID)
		}
		now := time.Now().UTC()
		req := fsm.BootstrapRequest{
			Meta:   fsm.Meta{ClusterID: uuid.NewString(), Created: now},
			Domain: fsm.Domain{ID: uuid.NewString(), Name: "ROOT", Path: "ROOT", Created: now},
		}
		req.Account = fsm.Account{ID: uuid.NewString(), Name: "admin", DomainID: req.Domain.ID,
			Type: fsm.AccountTypeAdmin, RoleType: fsm.RoleTypeAdmin, RoleID: fsm.RoleIDRootAdmin,
			State: fsm.StateEnabled, Created: now}
		password := fsm.NewKey(18)
		hash, err := fsm.HashPassword(password, fsm.DefaultPasswordIterations)
		if err != nil {
			return fmt.Errorf("seed cluster: %w", err)
		}
		req.User = fsm.User{ID: uuid.NewString(), AccountID: req.Account.ID, DomainID: req.Domain.ID,
			Username: "admin", FirstName: "Admin", LastName: "User", State: fsm.StateEnabled,
			APIKey: fsm.NewKey(64), SecretKey: fsm.NewKey(64), PasswordHash: hash, Created: now}
		req.Meta.AdminUserID = req.User.ID
		keys := AdminKeys{ClusterID: req.Meta.ClusterID, Username: "admin", UserID: req.User.ID,
			APIKey: req.User.APIKey, SecretKey: req.User.SecretKey, Password: password, Created: now}
		if err := writePrivateJSON(tmp, keys); err != nil {
			return err
		}
		_, err = c.Apply(ctx, fsm.BootstrapRequestType, req)
		switch {
		case errors.Is(err, fsm.ErrAlreadyInitialized):
			_ = os.Remove(tmp)
			return ensureBuiltinRoles(ctx, c, logger)
		case err != nil:
			// The outcome may be unknown (leadership lost mid-flight): keep the
			// pending file; the next establish on this node settles it.
			return fmt.Errorf("seed cluster: %w", err)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("keep admin keys file: %w", err)
		}
		logger.Info("seeded new cluster; admin API keys and password written", "cluster_id", req.Meta.ClusterID, "file", final)
		return ensureBuiltinRoles(ctx, c, logger)
	}
}

// ensureBuiltinRoles commits the built-in roles that the state lacks. Two
// leaders racing here both propose the same fixed IDs: the loser's create
// fails as a conflict, which is success for this purpose.
func ensureBuiltinRoles(ctx context.Context, c Applier, logger hclog.Logger) error {
	var ops []fsm.TxnOp
	now := time.Now().UTC()
	for _, role := range fsm.BuiltinRoles() {
		have, err := fsm.Get[fsm.Role](c.State(), nil, fsm.TableRoles, role.ID)
		if err != nil {
			return fmt.Errorf("read role %s: %w", role.Name, err)
		}
		if have == nil {
			role.Created = now
			ops = append(ops, fsm.Create(fsm.TableRoles, &role))
		}
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := c.Apply(ctx, fsm.TxnRequestType, fsm.TxnRequest{Ops: ops}); err != nil && !errors.Is(err, fsm.ErrConflict) {
		return fmt.Errorf("seed built-in roles: %w", err)
	}
	logger.Info("added built-in roles", "count", len(ops))
	return nil
}

// settlePending keeps a pending keys file if its user is the committed
// admin, and removes it otherwise.
func settlePending(tmp, final, adminUserID string) error {
	b, err := os.ReadFile(tmp)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pending admin keys: %w", err)
	}
	var k AdminKeys
	if json.Unmarshal(b, &k) == nil && k.UserID == adminUserID {
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("keep admin keys file: %w", err)
		}
		return nil
	}
	_ = os.Remove(tmp)
	return nil
}

// writePrivateJSON writes v to path, readable by the owner only.
func writePrivateJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadAdminKeys reads AdminKeysFile from a data dir.
func ReadAdminKeys(dataDir string) (*AdminKeys, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, AdminKeysFile))
	if err != nil {
		return nil, fmt.Errorf("read admin keys: %w", err)
	}
	var k AdminKeys
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("decode admin keys: %w", err)
	}
	return &k, nil
}
