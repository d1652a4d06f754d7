package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/stratus-cloud/stratus/fsm"
)

// PeersFile is the name, inside DATA_DIR/raft, of the file that forces a
// new raft configuration at the next start (hashicorp/raft's peers.json
// format, version 3: [{"id":..., "address":..., "non_voter":false}]).
const PeersFile = "peers.json"

// RecoverFromPeersFile applies DATA_DIR/raft/peers.json, if it exists, to a
// stopped server's raft state: raft.RecoverCluster replays this server's
// snapshot and log into a scratch FSM and writes a new snapshot whose
// configuration is the file's, so the server starts with those voters
// only. The file is then renamed to peers.json.applied-<time>, so a later
// restart does not recover again. It reports whether it recovered.
//
// Use it only when quorum is lost for good: it commits every entry in
// this server's log, including ones the dead servers never acknowledged.
// Call it before New, with the same Config.
func RecoverFromPeersFile(cfg Config) (bool, error) {
	cfg.setDefaults()
	raftDir := filepath.Join(cfg.DataDir, "raft")
	path := filepath.Join(raftDir, PeersFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("peers file: %w", err)
	}
	logger := cfg.Logger.Named("recover")
	conf, err := raft.ReadConfigJSON(path)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	self := false
	for _, s := range conf.Servers {
		if string(s.ID) == cfg.NodeID && s.Suffrage == raft.Voter {
			self = true
		}
	}
	if !self {
		return false, fmt.Errorf("%s does not list this server (%s) as a voter; a server recovers only into a configuration it votes in", path, cfg.NodeID)
	}
	store, err := openLogStore(raftDir)
	if err != nil {
		return false, err
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, logger)
	if err != nil {
		return false, fmt.Errorf("open snapshot store: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = logger
	_, trans := raft.NewInmemTransport(raft.ServerAddress(cfg.RaftBind))
	defer trans.Close()
	if err := raft.RecoverCluster(rc, fsm.New(logger), store, store, snaps, trans, conf); err != nil {
		return false, fmt.Errorf("recover raft configuration: %w", err)
	}
	done := fmt.Sprintf("%s.applied-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, done); err != nil {
		return true, fmt.Errorf("recovered, but rename %s so it is not applied again: %w", path, err)
	}
	logger.Warn("recovered raft configuration from peers file; the servers it lists are now the only voters",
		"servers", len(conf.Servers), "file", done)
	return true, nil
}
