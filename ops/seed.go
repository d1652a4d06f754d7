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
	ClusterID string    `json:"cluster_id"`
	Username  string    `json:"username"`
	UserID    string    `json:"user_id"`
	APIKey    string    `json:"apikey"`
	SecretKey string    `json:"secretkey"`
	Created   time.Time `json:"created"`
}

// Applier commits a command; cluster.Node satisfies it.
type Applier interface {
	Apply(ctx context.Context, t fsm.MessageType, body any) (uint64, error)
	State() *fsm.Store
}

// SeedHook returns an establish-leadership hook that seeds a new cluster on
// its first leader: cluster metadata, the ROOT domain, the admin account and
// user with an API key pair. The keys go to AdminKeysFile (mode 0600)
// before the command is proposed and the file is kept only if this
// leader's seed won, so the keys are never only in memory and never in logs.
func SeedHook(c Applier, dataDir string, logger hclog.Logger) func(context.Context) error {
	logger = logger.Named("seed")
	final := filepath.Join(dataDir, AdminKeysFile)
	tmp := final + ".pending"
	return func(ctx context.Context) error {
		if m, err := c.State().Meta(nil); err != nil {
			return fmt.Errorf("read cluster meta: %w", err)
		} else if m != nil {
			return settlePending(tmp, final, m.AdminUserID)
		}
		now := time.Now().UTC()
		req := fsm.BootstrapRequest{
			Meta:   fsm.Meta{ClusterID: uuid.NewString(), Created: now},
			Domain: fsm.Domain{ID: uuid.NewString(), Name: "ROOT", Path: "ROOT", Created: now},
		}
		req.Account = fsm.Account{ID: uuid.NewString(), Name: "admin", DomainID: req.Domain.ID,
			Type: fsm.AccountTypeAdmin, RoleType: "Admin", State: fsm.StateEnabled, Created: now}
		req.User = fsm.User{ID: uuid.NewString(), AccountID: req.Account.ID, DomainID: req.Domain.ID,
			Username: "admin", FirstName: "Admin", LastName: "User", State: fsm.StateEnabled,
			APIKey: fsm.NewKey(64), SecretKey: fsm.NewKey(64), Created: now}
		req.Meta.AdminUserID = req.User.ID
		keys := AdminKeys{ClusterID: req.Meta.ClusterID, Username: "admin", UserID: req.User.ID,
			APIKey: req.User.APIKey, SecretKey: req.User.SecretKey, Created: now}
		if err := writePrivateJSON(tmp, keys); err != nil {
			return err
		}
		_, err := c.Apply(ctx, fsm.BootstrapRequestType, req)
		switch {
		case errors.Is(err, fsm.ErrAlreadyInitialized):
			_ = os.Remove(tmp)
			return nil
		case err != nil:
			// The outcome may be unknown (leadership lost mid-flight): keep the
			// pending file; the next establish on this node settles it.
			return fmt.Errorf("seed cluster: %w", err)
		}
		if err := os.Rename(tmp, final); err != nil {
			return fmt.Errorf("keep admin keys file: %w", err)
		}
		logger.Info("seeded new cluster; admin API keys written", "cluster_id", req.Meta.ClusterID, "file", final)
		return nil
	}
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
