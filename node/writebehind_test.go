package node

import (
	"context"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A record taken by gossip is written behind the validator (writebehind.go):
// searchable and announced at once, on disk soon after, and on disk after a
// Close that came first, with the version it superseded gone.
func TestGossipedRecordIsWrittenBehind(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	dir := t.TempDir()
	n, err := New(t.Context(), testConfig(t, nw, nw.Stewards[0], dir))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"))
	events, cancel := n.Subscribe()
	defer cancel()

	v1 := entryRec(t, nw, org, "asesoria", 1)
	if _, v, _, err := n.ingestGossip(directory.Seal(v1, nw.Key), "", true); v != accepted {
		t.Fatalf("version 1 was not accepted: %v", err)
	}
	if len(n.State().Search(directory.Query{Text: "asesoria"})) != 1 {
		t.Fatal("a record taken by gossip is not searchable as soon as it is taken")
	}
	deadline := time.After(10 * time.Second)
	for waiting := true; waiting; {
		select {
		case ev := <-events:
			waiting = ev.Kind != EventRecord || ev.Hash != v1.Hash()
		case <-deadline:
			t.Fatal("no event for version 1")
		}
	}
	waitFor(t, 10*time.Second, "version 1 to be written behind", func() bool {
		_, err := n.store.ds.Get(context.Background(), recordKey(v1.Hash()))
		return err == nil
	})

	// Version 2 supersedes it; Close comes before the writer's round
	// can be counted on, and must leave version 2 on disk.
	v2 := entryRec(t, nw, org, "asesoria", 2)
	if _, v, _, err := n.ingestGossip(directory.Seal(v2, nw.Key), "", true); v != accepted {
		t.Fatalf("version 2 was not accepted: %v", err)
	}
	closed = true
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	again := startNode(t, testConfig(t, nw, nw.Stewards[0], dir))
	if !again.State().Has(v2.Hash()) {
		t.Fatal("version 2, taken by gossip just before Close, is not in the store after a restart")
	}
	if again.State().Has(v1.Hash()) {
		t.Fatal("version 1 came back after a restart: the superseded version was kept in the pool")
	}
}
