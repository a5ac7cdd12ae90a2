package node

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/internal/lockedbuf"
	"github.com/ceiba-network/ceiba/node/storetest"
)

func storedHashes(n *Node) map[directory.Hash]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[directory.Hash]bool, len(n.stored))
	for h := range n.stored {
		out[h] = true
	}
	return out
}

// A member's store with a damaged table: the node starts anyway, says in
// one line what was damaged and where the damaged copy is, keeps its host
// key, reads back every record outside the damaged blocks, and gets the
// rest from a peer.
func TestDamagedStoreIsRebuilt(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	cfg := testConfig(t, nw, org, t.TempDir())
	logs := &lockedbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	ref := &reference{t: t, nw: nw}

	m := startNode(t, cfg)
	ref.publish(m, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	for i := range 24 {
		ref.publish(m, entryRec(t, nw, org, fmt.Sprintf("servicio-%02d", i), 1))
	}
	want := ref.digest()
	all := storedHashes(m)
	peerID := m.host.ID()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	table := storetest.DamageTable(t, filepath.Join(cfg.DataDir, "store"), 16)

	// Offline: what the node reads back is its own.
	m = startNode(t, cfg)
	rep := m.Status().StoreRepair
	if rep == nil {
		t.Fatal("the node started on a damaged store without repairing it")
	}
	if !strings.Contains(rep.Damage, table) {
		t.Errorf("the damage %q does not name the table %s", rep.Damage, table)
	}
	if fi, err := os.Stat(rep.MovedTo); err != nil || !fi.IsDir() {
		t.Errorf("the damaged copy is not kept at %s: %v", rep.MovedTo, err)
	}
	if m.host.ID() != peerID {
		t.Errorf("the repair changed the node's peer ID from %s to %s", peerID, m.host.ID())
	}
	got := storedHashes(m)
	for h := range got {
		if !all[h] {
			t.Errorf("the repaired store holds %s, which the node never stored", h.Short())
		}
	}
	// The records in the damaged block are lost; the others are read
	// back (those that depend on a lost one wait for it, as parked
	// records do, and are not counted as stored yet).
	if rep.Recovered == 0 || rep.Recovered >= len(all) || len(got) > rep.Recovered {
		t.Errorf("read back %d of %d records, %d stored: want some but not those in the damaged block", rep.Recovered, len(all), len(got))
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "damaged") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], table) || !strings.Contains(lines[0], rep.MovedTo) {
		t.Errorf("want one log line naming the table and the damaged copy, got %q", lines)
	}
	t.Logf("%s; read back %d of %d records", lines, len(got), len(all))

	// A peer that holds everything fills in the rest.
	pcfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	p := startNode(t, pcfg)
	mustPublish(t, p, ref.recs...)
	m.Close()
	cfg.Bootstrap = []string{addr(p)}
	m = startNode(t, cfg)
	if m.Status().StoreRepair != nil {
		t.Error("the rebuilt store was found damaged again")
	}
	waitFor(t, hangLimit, "the rebuilt node to get the rest from its peer", func() bool {
		return m.State().Digest() == want && len(storedHashes(m)) == len(all)
	})
}

// A sound store is opened as it is: no repair, nothing moved.
func TestSoundStoreIsNotRepaired(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	m := startNode(t, cfg)
	mustPublish(t, m, nw.Genesis)
	m.Close()
	m = startNode(t, cfg)
	if rep := m.Status().StoreRepair; rep != nil {
		t.Fatalf("a sound store was repaired: %+v", rep)
	}
	if moved, _ := filepath.Glob(filepath.Join(cfg.DataDir, "store.damaged-*")); len(moved) > 0 {
		t.Fatalf("a sound store was moved aside: %v", moved)
	}
}
