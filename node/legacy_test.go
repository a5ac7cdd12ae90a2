package node

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A home whose store was written by protocol version 1 (seal version 1)
// is neither opened nor wiped: the node refuses to start with an error
// that says why, and every stored record is still there for the upgrade.
// It used to take them for corrupt records and delete them all.
func TestStoreOfAnEarlierProtocolIsKept(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	old := make([]byte, 41+64) // a seal header (PROTOCOL.md §5) and some ciphertext
	rand.Read(old)
	old[0] = 1 // seal version 1
	var h directory.Hash
	rand.Read(h[:])
	key := recordsPrefix.Child(recordKey(h))
	if err := ds.Put(context.Background(), key, old); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Datastore = ds
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if n != nil {
		t.Cleanup(func() { n.Close() })
	}
	if err == nil || !strings.Contains(err.Error(), "another version of the Ceiba protocol") {
		t.Fatalf("starting on a version-1 store: %v", err)
	}
	if got, err := ds.Get(context.Background(), key); err != nil || string(got) != string(old) {
		t.Fatalf("the version-1 record is gone or changed: %v", err)
	}
}
