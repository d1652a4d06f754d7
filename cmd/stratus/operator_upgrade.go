package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/stratus-cloud/stratus/ops"
)

// errNotSafe makes `stratus operator upgrade-check` exit with status 1
// after printing the report.
var errNotSafe = errors.New("not safe to upgrade the next server now")

func init() {
	registerOperator(&operatorCommand{name: "upgrade-check",
		desc: "is it safe to upgrade the next server (quorum, caught up), and which one; exits 1 when not",
		run:  runOperatorUpgradeCheck})
	registerOperator(&operatorCommand{name: "raft transfer-leadership",
		desc: "hand leadership to another voter (-to ID, else any); prints who leads after",
		run:  runOperatorTransferLeadership})
}

func runOperatorUpgradeCheck(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator upgrade-check", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var r ops.UpgradeReport
	if err := c.call(http.MethodGet, "upgrade-check", nil, &r); err != nil {
		return err
	}
	if *asJSON {
		if err := c.printJSON(r); err != nil {
			return err
		}
	} else if err := printUpgradeReport(c, r); err != nil {
		return err
	}
	if !r.Safe {
		return errNotSafe
	}
	return nil
}

func printUpgradeReport(c *opClient, r ops.UpgradeReport) error {
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tROLE\tGOSSIP\tVERSION\tCOMMAND VERSION\tAPPLIED\tLAG")
	for _, s := range r.Servers {
		role, applied := "follower", "?"
		if s.Leader {
			role = "leader"
		}
		if s.AppliedKnown {
			applied = fmt.Sprint(s.AppliedIndex)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%d\n", s.ID, role, s.Gossip, s.Version, s.CommandVersion, applied, s.Lag)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "\ncluster command version %d; newest build %s\n", r.CommandVersion, r.NewestVersion)
	if len(r.Upgraded) > 0 {
		fmt.Fprintf(c.out, "already on %s: %s\n", r.NewestVersion, strings.Join(r.Upgraded, ", "))
	}
	if len(r.Order) > 0 {
		fmt.Fprintf(c.out, "order: %s (the leader last)\n", strings.Join(r.Order, ", "))
	}
	if !r.Safe {
		fmt.Fprintln(c.out, "NOT SAFE to stop a server now:")
		for _, why := range r.Reasons {
			fmt.Fprintf(c.out, "  - %s\n", why)
		}
		return nil
	}
	next := r.Next
	if next == r.LeaderID {
		next += " (it leads: run `stratus operator raft transfer-leadership` first)"
	}
	_, err := fmt.Fprintf(c.out, "SAFE: upgrade %s next\n", next)
	return err
}

func runOperatorTransferLeadership(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator raft transfer-leadership", flag.ContinueOnError)
	to := fs.String("to", "", "ID of the voter to hand leadership to (default: any, raft picks the most up to date)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	params := url.Values{}
	if *to != "" {
		params.Set("to", *to)
	}
	var out transferAnswer
	if err := c.call(http.MethodPost, "raft-transfer-leadership", params, &out); err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(out)
	}
	if out.Leader == out.PreviousLeader {
		_, err := fmt.Fprintf(c.out, "%s already leads (term %d)\n", out.Leader, out.Term)
		return err
	}
	_, err := fmt.Fprintf(c.out, "leadership moved from %s to %s (term %d)\n", out.PreviousLeader, out.Leader, out.Term)
	return err
}
