// Command stratus is the single Stratus binary: the management server, the
// local development cloud and (later) the host agent and operator tools.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `Usage: stratus <command> [flags]

Commands:
  server    run a management server (a Raft member serving the CloudStack API)
  dev       run a local cloud: several servers on loopback, admin keys printed
  agent     run the host agent: register with the servers, run their VMs on libvirt
  sim       simulate many hosts in one process: real agent loops on in-memory hypervisors
  operator  operator tools: members, raft peers, leadership, snapshots, upgrade checks
  recover   disaster recovery: force a stopped server's raft peers from peers.json
  version   print the build version

Run "stratus <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "dev":
		err = runDev(os.Args[2:])
	case "agent":
		err = runAgent(os.Args[2:])
	case "sim":
		err = runSim(os.Args[2:])
	case "operator":
		err = runOperator(os.Args[2:])
	case "recover":
		err = runRecover(os.Args[2:])
	case "version", "-v", "--version":
		fmt.Println(version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "stratus: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stratus %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
