package main

import (
	"flag"
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/stratus-cloud/stratus/cluster"
)

func init() {
	registerOperator(&operatorCommand{name: "members", desc: "the servers the asked server sees in gossip: id, addresses, versions, state",
		run: runOperatorMembers})
	registerOperator(&operatorCommand{name: "raft list-peers", desc: "the Raft configuration: voters, their addresses, the leader",
		run: runOperatorListPeers})
}

func runOperatorMembers(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator members", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Server  string           `json:"server"`
		Members []cluster.Member `json:"members"`
	}
	if err := c.call(http.MethodGet, "members", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(out)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tGOSSIP\tRAFT\tAPI\tVERSION\tCOMMAND VERSION")
	for _, m := range out.Members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", m.ID, m.Status, m.GossipAddr, m.RaftAddr, m.APIURL, m.Version, m.CommandVersion)
	}
	return w.Flush()
}

func runOperatorListPeers(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator raft list-peers", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var out struct {
		Server   string         `json:"server"`
		LeaderID string         `json:"leader_id"`
		Term     uint64         `json:"term"`
		Peers    []cluster.Peer `json:"peers"`
	}
	if err := c.call(http.MethodGet, "raft-peers", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(out)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tRAFT ADDRESS\tVOTER\tLEADER\tGOSSIP\tVERSION")
	for _, p := range out.Peers {
		fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\t%s\n", p.ID, p.RaftAddr, p.Voter, p.Leader, p.Gossip, p.Version)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.out, "\nterm %d, leader %s (as server %s sees it)\n", out.Term, out.LeaderID, out.Server)
	return err
}
