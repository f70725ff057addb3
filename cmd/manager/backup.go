package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/boltstore"
)

// backupPath is served on the metrics endpoint, behind the same
// authentication and authorization as /metrics: a caller needs get on the
// non-resource URL /backup (ClusterRole eventsourcing-operator-backup).
const backupPath = "/backup"

// backupHandler answers GET /backup with a consistent snapshot of the data
// file, taken while ingest carries on; --restore-from starts a new manager
// on it.
func backupHandler(db *boltstore.DB, log logr.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		name := fmt.Sprintf("eventsourcing-%s.db", time.Now().UTC().Format("20060102T150405Z"))
		started := false
		err := db.Snapshot(func(size int64, write func(io.Writer) (int64, error)) error {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Content-Length", fmt.Sprint(size))
			h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
			started = true
			_, err := write(w)
			return err
		})
		switch {
		case err == nil:
			log.Info("backup taken", "file", name)
		case !started && errors.Is(err, boltstore.ErrClosed):
			http.Error(w, "the manager is stopping: try again", http.StatusServiceUnavailable)
		case !started:
			log.Error(err, "backup failed")
			http.Error(w, "backup failed: see the manager's log", http.StatusInternalServerError)
		default:
			// Headers are gone: the short body (Content-Length) tells the
			// client the snapshot is incomplete.
			log.Error(err, "backup cut off")
		}
	})
}

// addBackupEndpoint serves /backup on the metrics endpoint when that is
// protected (HTTPS with authn/authz) or reachable only from this host; an
// open, routable metrics endpoint would hand every event to anyone.
func addBackupEndpoint(mgr manager.Manager, db *boltstore.DB, opts options) error {
	switch {
	case opts.metricsAddr == "0":
		setupLog.Info("no backup endpoint: the metrics endpoint is off (--metrics-bind-address)")
		return nil
	case !opts.metricsSecure && !loopback(opts.metricsAddr):
		setupLog.Info("no backup endpoint: --metrics-secure=false on a routable address would serve the data to anyone")
		return nil
	}
	if err := mgr.AddMetricsServerExtraHandler(backupPath, backupHandler(db, setupLog.WithName("backup"))); err != nil {
		return fmt.Errorf("add the backup endpoint: %w", err)
	}
	return nil
}

// restoreIfEmpty restores --restore-from into --data-dir when that holds no
// data file yet, so the flag can stay in a Deployment's args: once restored,
// restarts open the restored file.
func restoreIfEmpty(opts options) error {
	if opts.restoreFrom == "" {
		return nil
	}
	err := boltstore.Restore(opts.dataDir, opts.restoreFrom)
	switch {
	case err == nil:
		setupLog.Info("restored the data file from a snapshot", "snapshot", opts.restoreFrom, "dataDir", opts.dataDir)
		return nil
	case errors.Is(err, boltstore.ErrDataFileExists):
		setupLog.Info("the data file exists: --restore-from ignored", "snapshot", opts.restoreFrom, "dataDir", opts.dataDir)
		return nil
	default:
		return err
	}
}
