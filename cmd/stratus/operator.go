package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/stratus-cloud/stratus/api"
)

// stratus operator <subcommand>: operator tools that reach the cluster
// through any server's base URL (-address or STRATUS_ADDR) as a root
// admin (STRATUS_API_KEY and STRATUS_SECRET_KEY, or the cloud.json of
// stratus dev with -cloud). Subcommands register themselves in
// operatorCommands from their own files.

// operatorCommand is one subcommand: its name path ("raft list-peers"),
// a one-line description and its run function (args after the name).
type operatorCommand struct {
	name string
	desc string
	run  func(c *opClient, args []string) error
	// offline commands contact no server (snapshot inspect): they need
	// neither an address nor keys.
	offline bool
}

var operatorCommands = map[string]*operatorCommand{}

// registerOperator adds a subcommand; files call it from init.
func registerOperator(cmd *operatorCommand) { operatorCommands[cmd.name] = cmd }

// opClient calls the operator endpoints of one server.
type opClient struct {
	base, key, secret string
	http              *http.Client
	out               io.Writer
}

// call signs a request as /client/api requests are signed and decodes the
// JSON answer into out (nil to drop it).
func (c *opClient) call(method, name string, params url.Values, out any) error {
	v := url.Values{}
	for k, vals := range params {
		v[k] = append([]string(nil), vals...)
	}
	v.Set("apiKey", c.key)
	v.Set("operator", name) // binds the signature to this endpoint
	v.Set("signatureversion", "3")
	v.Set("expires", time.Now().UTC().Add(10*time.Minute).Format(time.RFC3339))
	v.Set("signature", api.Sign(v, c.secret))
	u := strings.TrimSuffix(c.base, "/") + api.OperatorPathPrefix + name
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequest(method, u, strings.NewReader(v.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequest(method, u+"?"+v.Encode(), nil)
	}
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.reachError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code int    `json:"errorcode"`
			Text string `json:"errortext"`
		}
		if json.Unmarshal(body, &e) == nil && e.Text != "" {
			return fmt.Errorf("%s (error %d)", e.Text, e.Code)
		}
		return fmt.Errorf("%s answered HTTP %d", c.base, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// printJSON writes v indented, for -json output.
func (c *opClient) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(c.out, string(b))
	return err
}

func operatorUsage() string {
	names := make([]string, 0, len(operatorCommands))
	for n := range operatorCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Usage: stratus operator [-address URL] [-cloud cloud.json] <command> [flags]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-26s %s\n", n, operatorCommands[n].desc)
	}
	b.WriteString("\nCredentials: STRATUS_API_KEY and STRATUS_SECRET_KEY of a root admin, or -cloud with stratus dev's cloud.json.\n")
	return b.String()
}

func runOperator(args []string) error {
	fs := flag.NewFlagSet("operator", flag.ContinueOnError)
	addr := fs.String("address", envOr("ADDR", ""), "base URL of any server, e.g. http://10.0.0.11:8080 (env STRATUS_ADDR)")
	cloudFile := fs.String("cloud", "", "cloud.json of stratus dev: its admin keys, and the first of its servers that answers")
	fs.Usage = func() { fmt.Fprint(os.Stderr, operatorUsage()) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	c := &opClient{base: *addr, key: os.Getenv("STRATUS_API_KEY"), secret: os.Getenv("STRATUS_SECRET_KEY"),
		http: &http.Client{Timeout: 10 * time.Minute}, out: os.Stdout}
	if *cloudFile != "" {
		b, err := os.ReadFile(*cloudFile)
		if err != nil {
			return fmt.Errorf("read -cloud: %w", err)
		}
		var cf CloudFile
		if err := json.Unmarshal(b, &cf); err != nil {
			return fmt.Errorf("-cloud %s is not a cloud.json: %w", *cloudFile, err)
		}
		if c.base == "" && len(cf.Servers) > 0 {
			if c.base, err = firstAnswering(cf.Servers); err != nil {
				return err
			}
		}
		if c.key == "" {
			c.key, c.secret = cf.APIKey, cf.SecretKey
		}
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(os.Stderr, operatorUsage())
		return errors.New("name a command")
	}
	// Longest match first: "raft list-peers" before "raft".
	var cmd *operatorCommand
	var used int
	for n := min(len(rest), 3); n >= 1 && cmd == nil; n-- {
		if oc, ok := operatorCommands[strings.Join(rest[:n], " ")]; ok {
			cmd, used = oc, n
		}
	}
	if cmd == nil {
		fmt.Fprint(os.Stderr, operatorUsage())
		return fmt.Errorf("unknown operator command %q", strings.Join(rest, " "))
	}
	if cmd.offline {
		return cmd.run(c, rest[used:])
	}
	if c.base == "" {
		return errors.New("give a server with -address or STRATUS_ADDR (or -cloud)")
	}
	if c.key == "" || c.secret == "" {
		return errors.New("give a root admin's keys in STRATUS_API_KEY and STRATUS_SECRET_KEY (or -cloud)")
	}
	return cmd.run(c, rest[used:])
}

// firstAnswering returns the base URL of the first server of a dev cloud
// whose /v1/health answers, so that operator commands work with any one
// server down.
func firstAnswering(servers []CloudServer) (string, error) {
	probe := &http.Client{Timeout: 2 * time.Second}
	var tried []string
	for _, s := range servers {
		base := strings.TrimSuffix(s.APIURL, "/client/api")
		resp, err := probe.Get(base + "/v1/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, nil
			}
		}
		tried = append(tried, base)
	}
	return "", fmt.Errorf("no server of the cloud answers (tried %s): is it running? Start it with make run or stratus dev --dir DIR", strings.Join(tried, ", "))
}
