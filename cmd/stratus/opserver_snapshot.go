package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stratus-cloud/stratus/api"
	"github.com/stratus-cloud/stratus/cluster"
	"github.com/stratus-cloud/stratus/ops"
)

// Server side of `stratus operator snapshot save|restore`.
//
// snapshot-save (GET) streams a snapshot file (ops' envelope around the FSM
// stream, SHA-256 trailer last) of the asked server's state after a
// consistent read. snapshot-restore (POST, the file as the raw body) runs on
// the leader: a follower passes the upload through to it unchanged. The
// leader spools the upload into its data dir, verifies the checksum and the
// format, and hands the stream to raft.Restore.

// maxRestoreBytes bounds an uploaded snapshot file.
const maxRestoreBytes = 16 << 30

// restoreForwardedHeader marks a restore a follower passed on, so it is not
// passed on again when leadership moved meanwhile.
const restoreForwardedHeader = "X-Stratus-Forwarded-By"

func init() {
	operatorEndpointGroups = append(operatorEndpointGroups, func(s *api.Server, node *cluster.Node, logger hclog.Logger) {
		l := logger.Named("snapshot")
		s.HandleOperatorStream("snapshot-save", func(w http.ResponseWriter, r *api.OperatorRequest) *api.Error {
			return serveSnapshotSave(w, r, node, l)
		})
		s.HandleOperatorStream("snapshot-restore", func(w http.ResponseWriter, r *api.OperatorRequest) *api.Error {
			return serveSnapshotRestore(w, r, node, l)
		})
	})
}

func serveSnapshotSave(w http.ResponseWriter, r *api.OperatorRequest, node *cluster.Node, l hclog.Logger) *api.Error {
	ctx := r.HTTP.Context()
	// The consistent read is done here too (SaveSnapshot repeats it,
	// batched) so that a cluster without a leader answers with an error
	// before the 200 and the stream start.
	if err := node.ConsistentRead(ctx); err != nil {
		return api.ErrUnavailable(fmt.Sprintf("cannot take a consistent snapshot: %v", err))
	}
	hdr := ops.BackupHeader{ServerID: node.ID(), Version: version, Created: time.Now().UTC()}
	if m, err := node.State().Meta(nil); err == nil && m != nil {
		hdr.ClusterID = m.ClusterID
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Stratus-Server", node.ID())
	w.WriteHeader(http.StatusOK)
	bw, err := ops.NewBackupWriter(w, hdr)
	if err == nil {
		var applied uint64
		if applied, err = node.SaveSnapshot(ctx, bw); err == nil {
			err = bw.Close()
			l.Info("snapshot saved for an operator", "applied_index", applied, "bytes", bw.Size(), "user", r.Caller.Username)
		}
	}
	if err != nil {
		// The status is sent already: the client sees a body without a
		// checksum trailer and refuses it.
		l.Error("snapshot save failed mid-stream", "error", err)
	}
	return nil
}

func serveSnapshotRestore(w http.ResponseWriter, r *api.OperatorRequest, node *cluster.Node, l hclog.Logger) *api.Error {
	if r.HTTP.Method != http.MethodPost {
		return api.ErrParam("snapshot-restore takes the snapshot file as a POST body")
	}
	if !node.IsLeader() {
		return forwardRestore(w, r, node)
	}
	dir := node.Config().DataDir
	f, err := os.CreateTemp(dir, "restore-*.snap")
	if err != nil {
		return api.ErrInternal(fmt.Sprintf("cannot spool the upload in the data dir: %v", err))
	}
	defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
	n, err := io.Copy(f, io.LimitReader(r.HTTP.Body, maxRestoreBytes+1))
	if err != nil {
		return api.ErrParam("upload interrupted after %d bytes: %v", n, err)
	}
	if n > maxRestoreBytes {
		return api.ErrParam("snapshot file exceeds %d bytes", int64(maxRestoreBytes))
	}
	if r.HTTP.ContentLength >= 0 && n != r.HTTP.ContentLength {
		return api.ErrParam("upload incomplete: got %d of %d bytes", n, r.HTTP.ContentLength)
	}
	b, err := ops.OpenBackup(f, n)
	if err != nil {
		return api.ErrParam("refusing to restore: %v", err)
	}
	// The request's signature covers sha256, so a signed request restores
	// only the file it was made for.
	if want := r.Params.String("sha256"); !strings.EqualFold(want, b.SHA256) {
		return api.ErrParam("refusing to restore: the upload's SHA-256 %s is not the signed sha256 %q of this request", b.SHA256, want)
	}
	l.Warn("restoring the cluster state from an operator snapshot", "user", r.Caller.Username, "bytes", n,
		"sha256", b.SHA256, "snapshot_cluster_id", b.Header.ClusterID, "snapshot_created", b.Header.Created)
	applied, err := node.RestoreSnapshot(r.HTTP.Context(), b.Stream, b.Stream.Size())
	if errors.Is(err, cluster.ErrSnapshotInvalid) {
		return api.ErrParam("refusing to restore: %v", err)
	}
	if errors.Is(err, cluster.ErrRestoreNotLeader) {
		return api.ErrUnavailable("leadership moved while the snapshot was uploaded; nothing was restored: retry")
	}
	if err != nil {
		return api.ErrInternal(fmt.Sprintf("restore failed: %v", err))
	}
	out, _ := json.Marshal(map[string]any{"server": node.ID(), "restored": true, "applied_index": applied,
		"sha256": b.SHA256, "bytes": n, "cluster_id": b.Header.ClusterID})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
	return nil
}

// forwardRestore passes the upload, with its signed query, to the leader
// and its answer back.
func forwardRestore(w http.ResponseWriter, r *api.OperatorRequest, node *cluster.Node) *api.Error {
	if by := r.HTTP.Header.Get(restoreForwardedHeader); by != "" {
		return api.ErrUnavailable(fmt.Sprintf("%s forwarded the restore here, but %s does not lead (any more); nothing was restored: retry", by, node.ID()))
	}
	leader := node.LeaderAPIURL()
	if leader == "" {
		return api.ErrUnavailable("no leader is known; a restore needs one: retry when the cluster has a leader")
	}
	u := leader + api.OperatorPathPrefix + "snapshot-restore?" + r.HTTP.URL.RawQuery
	req, err := http.NewRequestWithContext(r.HTTP.Context(), http.MethodPost, u, r.HTTP.Body)
	if err != nil {
		return api.ErrInternal(fmt.Sprintf("forward restore: %v", err))
	}
	req.ContentLength = r.HTTP.ContentLength
	req.Header.Set("Content-Type", r.HTTP.Header.Get("Content-Type"))
	req.Header.Set(restoreForwardedHeader, node.ID())
	// The node's client for calls to other servers (it trusts the cluster's
	// CA when TLS is on), without its overall timeout: an upload of a large
	// snapshot and the restore behind it take longer than a forwarded write.
	client := http.DefaultClient
	if hc := node.Config().HTTPClient; hc != nil {
		c := *hc
		c.Timeout = 0
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		return api.ErrUnavailable(fmt.Sprintf("forward the restore to the leader at %s: %v; retry", leader, err))
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return nil
}
