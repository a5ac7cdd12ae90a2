package node

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Importing again a record whose first import the store refused (a full
// disk) writes it, or fails with the disk's error, as publishing it again
// does (TestPublishingAgainAfterAFullDiskWritesIt). Found in review,
// session 40: the state held the record from the first attempt, so the
// second import said ErrDuplicate, which "ceiba import" counted as
// "already known" and exited 0, while the record was on no disk and had
// been gossiped to nobody.
func TestImportingAgainAfterAFullDiskWritesIt(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	fds := &fullDatastore{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Datastore = fds
	cfg.ExpireInterval = time.Hour // no write retry of the node's own during the test
	n := startNode(t, cfg)
	mustPublish(t, n, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	r := entryRec(t, nw, org, "asesoria", 1)
	sealed := directory.Seal(r, nw.Key)
	onDisk := func() bool {
		ok, _ := fds.Batching.Has(context.Background(), recordsPrefix.Child(recordKey(r.Hash())))
		return ok
	}
	fds.full.Store(true)
	if err := n.Import(t.Context(), sealed); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("importing on a full disk: %v, want the disk's error", err)
	}
	err := n.Import(t.Context(), sealed)
	if errors.Is(err, directory.ErrDuplicate) {
		t.Fatalf("importing it again on the still full disk: %v (\"already known\"), though it is on disk: %v, unpersisted: %d",
			err, onDisk(), n.Status().Unpersisted)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("importing it again on the still full disk: %v, want the disk's error", err)
	}
	fds.full.Store(false)
	if err := n.Import(t.Context(), sealed); err != nil {
		t.Fatalf("importing it again once there is room: %v", err)
	}
	if !onDisk() || n.Status().Unpersisted != 0 {
		t.Fatalf("import acknowledged, but on disk: %v, unpersisted: %d", onDisk(), n.Status().Unpersisted)
	}
}
