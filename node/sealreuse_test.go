package node

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A record that came sealed as this node would seal it is stored and
// handed on as it came, not encoded and encrypted again: re-sealing every
// 64 KiB page of a rotation on every node was an eighth of a rotation's
// delivery cost. A second copy sealed afresh is a duplicate, and leaves
// the stored sealing as it was; on the wrong topic it is still refused.
func TestGossipedSealingIsStoredAsItCame(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"))
	r := entryRec(t, nw, org, "asesoria", 1)
	sealed := directory.Seal(r, nw.Key)
	_, v, out, err := n.ingestGossip(sealed, "", true)
	if v != accepted {
		t.Fatalf("the entry was not accepted: %v", err)
	}
	var stored []byte
	waitFor(t, 10*time.Second, "the entry to be written behind", func() bool {
		stored, err = n.store.ds.Get(context.Background(), recordKey(r.Hash()))
		return err == nil
	})
	if !bytes.Equal(stored, sealed) || !bytes.Equal(out, sealed) {
		t.Fatal("the node stored or handed on another sealing than the one it took the record from")
	}
	again := directory.Seal(r, nw.Key)
	if _, v, _, err := n.ingestGossip(again, "", true); v != known || !errors.Is(err, directory.ErrDuplicate) {
		t.Fatalf("a fresh sealing of a held record: verdict %v, %v; want a duplicate", v, err)
	}
	if stored, _ := n.store.ds.Get(context.Background(), recordKey(r.Hash())); !bytes.Equal(stored, sealed) {
		t.Fatal("a duplicate replaced the stored sealing")
	}
	// A held record on the wrong topic is not waved through as a
	// duplicate: forwarding it there is the sender's fault.
	if _, v, _, err := n.ingestGossip(again, "", false); v != invalid || !errors.Is(err, ErrWrongTopic) {
		t.Fatalf("a held entry on the governance topic: verdict %v, %v; want refused for its topic", v, err)
	}
}
