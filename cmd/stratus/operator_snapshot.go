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
	"path/filepath"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/ops"
)

func init() {
	registerOperator(&operatorCommand{name: "snapshot save", desc: "save a consistent snapshot of the whole state to FILE (checksummed)",
		run: runSnapshotSave})
	registerOperator(&operatorCommand{name: "snapshot inspect", desc: "verify a snapshot FILE and show its header and records per table",
		run: runSnapshotInspect, offline: true})
	registerOperator(&operatorCommand{name: "snapshot restore", desc: "replace the whole state of the running cluster with FILE (needs -force)",
		run: runSnapshotRestore})
}

// streamRequest builds a signed request whose parameters all travel in the
// query, so body can be raw bytes (the streaming operator endpoints).
func (c *opClient) streamRequest(method, name string, body io.Reader, extra url.Values) (*http.Request, error) {
	v := url.Values{}
	for k, vals := range extra {
		v[k] = vals
	}
	v.Set("apiKey", c.key)
	v.Set("operator", name) // binds the signature to this endpoint
	v.Set("signatureversion", "3")
	v.Set("expires", time.Now().UTC().Add(10*time.Minute).Format(time.RFC3339))
	v.Set("signature", api.Sign(v, c.secret))
	u := strings.TrimSuffix(c.base, "/") + api.OperatorPathPrefix + name + "?" + v.Encode()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	return req, nil
}

// reachError reports a failed request without the url.Error's text, which
// holds the signed query.
func (c *opClient) reachError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("reach %s: %w (check -address or STRATUS_ADDR, and that the server runs)", c.base, err)
}

// operatorError turns a failed operator answer into an error.
func (c *opClient) operatorError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e struct {
		Code int    `json:"errorcode"`
		Text string `json:"errortext"`
	}
	if json.Unmarshal(body, &e) == nil && e.Text != "" {
		return fmt.Errorf("%s (error %d)", e.Text, e.Code)
	}
	return fmt.Errorf("%s answered HTTP %d", c.base, resp.StatusCode)
}

// progress counts bytes through a reader or writer and shows them on
// stderr at most five times a second, on one terminal line.
type progress struct {
	verb  string
	total int64 // 0 when unknown
	n     atomic.Int64
	last  time.Time
	then  string // printed once the reader is drained (the upload is sent)
	eof   bool
}

func (p *progress) add(k int) {
	p.n.Add(int64(k))
	if time.Since(p.last) >= 200*time.Millisecond {
		p.last = time.Now()
		p.show()
	}
}

func (p *progress) show() {
	n := p.n.Load()
	if p.total > 0 {
		fmt.Fprintf(os.Stderr, "\r%s %s of %s (%d%%)   ", p.verb, humanBytes(n), humanBytes(p.total), n*100/p.total)
	} else {
		fmt.Fprintf(os.Stderr, "\r%s %s   ", p.verb, humanBytes(n))
	}
}

func (p *progress) done() { p.show(); fmt.Fprintln(os.Stderr) }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	if errors.Is(err, io.EOF) && pr.p.then != "" && !pr.p.eof {
		pr.p.eof = true
		pr.p.show()
		fmt.Fprintf(os.Stderr, "\n%s\n", pr.p.then)
	}
	return n, err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runSnapshotSave(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator snapshot save", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: stratus operator snapshot save FILE")
	}
	file := fs.Arg(0)
	req, err := c.streamRequest(http.MethodGet, "snapshot-save", nil, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.reachError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.operatorError(resp)
	}
	// Into FILE.part beside FILE, renamed only once verified: a failed save
	// never leaves a file that looks like a snapshot.
	tmp, err := os.CreateTemp(filepath.Dir(file), filepath.Base(file)+".part-*")
	if err != nil {
		return fmt.Errorf("create %s: %w", file, err)
	}
	defer func() { _ = tmp.Close(); _ = os.Remove(tmp.Name()) }()
	p := &progress{verb: "saving: received"}
	n, err := io.Copy(tmp, progressReader{r: resp.Body, p: p})
	p.done()
	if err != nil {
		return fmt.Errorf("download interrupted after %d bytes: %w", n, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	b, err := ops.OpenBackup(tmp, n)
	if err != nil {
		return fmt.Errorf("the snapshot from %s did not arrive whole (%d bytes), nothing saved: %w", c.base, n, err)
	}
	in, err := ops.Inspect(b)
	if err != nil {
		return fmt.Errorf("the snapshot from %s does not parse, nothing saved: %w", c.base, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("save %s: %w", file, err)
	}
	_, err = fmt.Fprintf(c.out, "saved %s: %s, applied index %d, from server %s of cluster %s\nsha256 %s (checked; also stored in the file)\n",
		file, humanBytes(n), in.AppliedIndex, in.Header.ServerID, in.Header.ClusterID, in.SHA256)
	return err
}

// openSnapshotFile verifies FILE and parses it.
func openSnapshotFile(file string) (*os.File, *ops.Backup, *ops.Inspection, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := f.Stat()
	if err == nil {
		var b *ops.Backup
		if b, err = ops.OpenBackup(f, st.Size()); err == nil {
			var in *ops.Inspection
			if in, err = ops.Inspect(b); err == nil {
				return f, b, in, nil
			}
		}
	}
	_ = f.Close()
	return nil, nil, nil, fmt.Errorf("%s: %w", file, err)
}

func runSnapshotInspect(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator snapshot inspect", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: stratus operator snapshot inspect FILE")
	}
	f, _, in, err := openSnapshotFile(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	if *asJSON {
		return c.printJSON(in)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "File\t%s (%s)\n", fs.Arg(0), humanBytes(in.Size))
	fmt.Fprintf(w, "Checksum\tOK, sha256 %s\n", in.SHA256)
	fmt.Fprintf(w, "File version\t%d\n", in.FileVersion)
	fmt.Fprintf(w, "Format version\t%d (command version %d)\n", in.FormatVersion, in.CommandVersion)
	fmt.Fprintf(w, "Applied index\t%d\n", in.AppliedIndex)
	fmt.Fprintf(w, "Cluster ID\t%s\n", in.Header.ClusterID)
	fmt.Fprintf(w, "Saved from\t%s (stratus %s)\n", in.Header.ServerID, in.Header.Version)
	fmt.Fprintf(w, "Created\t%s\n", in.Header.Created.Format(time.RFC3339))
	fmt.Fprintln(w, "\nTABLE\tRECORDS\tSIZE")
	total, bytes := 0, int64(0)
	for _, t := range in.Tables {
		fmt.Fprintf(w, "%s\t%d\t%s\n", t.Table, t.Records, humanBytes(t.Bytes))
		total, bytes = total+t.Records, bytes+t.Bytes
	}
	fmt.Fprintf(w, "total\t%d\t%s\n", total, humanBytes(bytes))
	return w.Flush()
}

func runSnapshotRestore(c *opClient, args []string) error {
	fs := flag.NewFlagSet("operator snapshot restore", flag.ContinueOnError)
	force := fs.Bool("force", false, "confirm that the cluster's whole current state is to be replaced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: stratus operator snapshot restore -force FILE")
	}
	file := fs.Arg(0)
	f, _, in, err := openSnapshotFile(file)
	if err != nil {
		return fmt.Errorf("refusing to restore: %w", err)
	}
	defer f.Close()
	if !*force {
		return fmt.Errorf("restore REPLACES the whole state of the cluster at %s (every zone, host, VM record, account, job...) "+
			"with the snapshot of cluster %s taken %s at applied index %d; anything written since is lost. "+
			"Run again with -force to do it", c.base, in.Header.ClusterID, in.Header.Created.Format(time.RFC3339), in.AppliedIndex)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p := &progress{verb: "restoring: uploaded", total: in.Size,
		then: "uploaded; the leader verifies the file and restores it into every server..."}
	// The signed sha256 binds the signature to this file: the leader
	// refuses any other body under it.
	req, err := c.streamRequest(http.MethodPost, "snapshot-restore", progressReader{r: f, p: p}, url.Values{"sha256": {in.SHA256}})
	if err != nil {
		return err
	}
	req.ContentLength = in.Size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		p.done()
		return c.reachError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		p.done()
		return c.operatorError(resp)
	}
	p.done()
	var out struct {
		Server  string `json:"server"`
		Applied uint64 `json:"applied_index"`
		SHA256  string `json:"sha256"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	_, err = fmt.Fprintf(c.out, "restored %s (sha256 %s, applied index %d) through leader %s; every server installs it\n",
		file, out.SHA256, out.Applied, out.Server)
	return err
}
