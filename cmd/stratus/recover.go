package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/cluster"
)

// stratus recover: disaster recovery of a stopped server when quorum is
// lost for good (docs/backup.md). It applies a peers.json (hashicorp/raft's
// format) to the server's raft state, so the server starts with exactly the
// voters the file lists. It is a separate, explicit offline step rather than
// something `stratus server` does whenever it finds the file: forcing a
// configuration commits every entry of this server's log, and a file left
// behind must never do that by surprise at a routine restart.
func runRecover(args []string) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	dataDir := fs.String("data-dir", envOr("DATA_DIR", ""), "data dir of the STOPPED server to recover (env STRATUS_DATA_DIR)")
	peers := fs.String("peers", "", "peers.json to apply; default: DATA_DIR/raft/peers.json")
	fs.Usage = func() {
		fmt.Fprint(os.Stderr, "Usage: stratus recover -data-dir DIR [-peers peers.json]\n\n"+
			"Forces the raft configuration of a stopped server to the servers listed in peers.json\n"+
			"([{\"id\":\"<node id>\",\"address\":\"<raft host:port>\",\"non_voter\":false}]), for when quorum\n"+
			"is lost for good. Start the server afterwards. See docs/backup.md.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *dataDir == "" {
		return errors.New("give the stopped server's -data-dir")
	}
	b, err := os.ReadFile(filepath.Join(*dataDir, "node-id"))
	if err != nil {
		return fmt.Errorf("%s is not a server's data dir (no node-id): %w", *dataDir, err)
	}
	id := strings.TrimSpace(string(b))
	target := filepath.Join(*dataDir, "raft", cluster.PeersFile)
	if *peers != "" && *peers != target {
		data, err := os.ReadFile(*peers)
		if err != nil {
			return fmt.Errorf("read -peers: %w", err)
		}
		if err := os.WriteFile(target, data, 0o600); err != nil {
			return fmt.Errorf("place peers file: %w", err)
		}
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "stratus", Level: hclog.Info, Output: os.Stderr})
	ok, err := cluster.RecoverFromPeersFile(cluster.Config{NodeID: id, DataDir: *dataDir, RaftBind: "recover", Logger: logger})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no %s: write the surviving servers' IDs and raft addresses there first (or pass -peers)", target)
	}
	fmt.Printf("recovered server %s: its raft configuration is now the one of the peers file; start it with its usual flags\n", id)
	return nil
}
