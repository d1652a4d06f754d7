package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stratus-cloud/stratus/cluster"
)

func init() {
	registerOperator(&operatorCommand{name: "raft remove-peer",
		desc: "remove a server from the Raft configuration (-id ID), on the leader; refuses the leader and going below the minimum quorum",
		run:  runOperatorRemovePeer})
}

// raftPeers is the answer of raft-peers and raft-remove-peer.
type raftPeers struct {
	Server    string         `json:"server"`
	Removed   string         `json:"removed,omitempty"`
	LeaderID  string         `json:"leader_id"`
	Term      uint64         `json:"term"`
	MinQuorum int            `json:"min_quorum,omitempty"`
	Peers     []cluster.Peer `json:"peers"`
}

// leaderClient asks c's server for the raft configuration and returns a
// client of the leader's API.
func (c *opClient) leaderClient() (*opClient, error) {
	var st raftPeers
	if err := c.call(http.MethodGet, "raft-peers", nil, &st); err != nil {
		return nil, err
	}
	if st.LeaderID == "" {
		return nil, fmt.Errorf("server %s knows no leader right now; try again once one is elected", st.Server)
	}
	for _, p := range st.Peers {
		if p.ID == st.LeaderID {
			if p.APIURL == "" {
				return nil, fmt.Errorf("server %s does not know the API address of leader %s (not in its gossip view)", st.Server, p.ID)
			}
			lc := *c
			lc.base = p.APIURL
			return &lc, nil
		}
	}
	return nil, fmt.Errorf("leader %s is not among the peers server %s lists", st.LeaderID, st.Server)
}

func runOperatorRemovePeer(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator raft remove-peer", flag.ContinueOnError)
	id := fs.String("id", "", "ID of the server to remove (see stratus operator raft list-peers)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("give the server to remove with -id ID (stratus operator raft list-peers shows the IDs)")
	}
	var out raftPeers
	// The leader may change between finding it and calling it: a
	// follower answers 503, and the CLI looks again.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var lc *opClient
		if lc, err = c.leaderClient(); err != nil {
			return err
		}
		err = lc.call(http.MethodPost, "raft-remove-peer", url.Values{"id": {*id}}, &out)
		if err == nil || !strings.Contains(err.Error(), "is not the leader") {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("remove-peer %s: %w", *id, err)
	}
	if *asJSON {
		return c.printJSON(out)
	}
	fmt.Fprintf(c.out, "removed %s from the Raft configuration; the configuration now:\n\n", out.Removed)
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tRAFT ADDRESS\tVOTER\tLEADER\tGOSSIP\tVERSION")
	for _, p := range out.Peers {
		fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\t%s\n", p.ID, p.RaftAddr, p.Voter, p.Leader, p.Gossip, p.Version)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.out, "\nterm %d, leader %s, minimum quorum %d\n", out.Term, out.LeaderID, out.MinQuorum)
	return err
}
