package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A burst of publications from one node (an export bundle imported, an
// organization entering its directory) reaches every node by gossip, not
// only at the next sync round: GossipSub drops what does not fit a peer's
// outbound queue at the sender, and with its default of 32 messages a
// burst overflowed the queues of the publisher and of every forwarder
// (the hub of this network dropped 240 to 860 RPCs); 1 to 2% of the
// burst then waited for sync (30 s by default) on every node. Sync is
// made too slow here to fill any gap within the test.
func TestBurstOfPublicationsArrivesByGossip(t *testing.T) {
	const nodesN, burst = 10, 300
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	ids := []*directory.Identity{nw.Stewards[0], org}
	for range nodesN - 2 {
		ids = append(ids, dirtest.MustIdentity(t))
	}
	founding := []*directory.Record{nw.Genesis}
	for i, id := range ids[1:] {
		founding = append(founding, nw.Admit(t, id, fmt.Sprintf("Nodo %d", i+2)))
	}
	nodes := make([]*Node, nodesN)
	for i := range nodes {
		cfg := testConfig(t, nw, ids[i], t.TempDir())
		// Every node starts with the founding records, so each admits
		// the others' keys from its first connection.
		seedStore(t, nw, cfg.DataDir, founding...)
		cfg.SyncInterval = time.Hour
		if i > 0 {
			cfg.Bootstrap = []string{addr(nodes[i-1])}
			if i > 1 {
				cfg.Bootstrap = append(cfg.Bootstrap, addr(nodes[0]))
			}
		}
		nodes[i] = startNode(t, cfg)
	}
	ref := &reference{t: t, nw: nw, recs: founding}
	want := ref.digest()
	waitFor(t, 30*time.Second, "the founding records on every node", func() bool { return sameDigest(nodes, want) })
	waitFor(t, 30*time.Second, "every node's mesh", func() bool {
		for _, n := range nodes {
			if len(n.host.Network().Peers()) == 0 {
				return false
			}
		}
		return true
	})

	// Meshes form at GossipSub's heartbeats (1 s): a record published
	// before a node is in one reaches it only by gossip about it, which
	// carries a few messages per heartbeat, not a burst. Setup, not an
	// assertion: three heartbeats, then one record that every node takes.
	time.Sleep(3 * time.Second)
	ref.publish(nodes[1], entryRec(t, nw, org, "primero", 1))
	want = ref.digest()
	waitFor(t, 30*time.Second, "a first record on every node", func() bool { return sameDigest(nodes, want) })

	recs := make([]*directory.Record, burst)
	for i := range recs {
		recs[i] = entryRec(t, nw, org, fmt.Sprintf("servicio-%03d", i), 1)
	}
	wake := nodeEvents(t, nodes...)
	rec := make([]*recorder, nodesN)
	for i, n := range nodes {
		rec[i] = record(n)
	}
	start := time.Now()
	for _, r := range recs {
		// Each with the whole test's time: on a loaded machine the burst
		// takes longer than mustPublish's 10 s, and a publication whose
		// context ends is stored but not gossiped.
		if _, err := nodes[1].Publish(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	ref.recs = append(ref.recs, recs...)
	want = ref.digest()
	held := func(n *Node) int {
		c := 0
		for _, r := range recs {
			if n.State().Has(r.Hash()) {
				c++
			}
		}
		return c
	}
	deadline := time.Now().Add(60 * time.Second)
	waitEvent(t, wake, "every node to hold the burst", func() bool {
		if time.Now().After(deadline) {
			for i, n := range nodes {
				t.Logf("node %d: %d RPCs dropped at full outbound queues, %d messages at a full validation queue", i, n.outq.dropped.Load(), n.outq.validateFull.Load())
				if got := held(n); got < burst {
					reasons := map[string]int{}
					for _, e := range rec[i].snapshot() {
						if e.Kind == EventRejected {
							reasons[fmt.Sprint(e.Err)]++
						}
					}
					var missing []int
					for k, r := range recs {
						if !n.State().Has(r.Hash()) {
							missing = append(missing, k)
						}
					}
					t.Errorf("node %d holds %d of the %d records published in a burst; refused %v; missing %v", i, got, burst, reasons, missing)
				}
			}
			t.FailNow()
		}
		return sameDigest(nodes, want)
	})
	t.Logf("a burst of %d records on all %d nodes %s after it began; the publisher dropped %d RPCs at full outbound queues", burst, nodesN, time.Since(start).Round(time.Millisecond), nodes[1].outq.dropped.Load())
	for i := range nodes {
		if i == 1 {
			continue
		}
		if n := rec[i].count(func(e Event) bool { return e.Kind == EventRecord && e.Via != ViaGossip }); n > 0 {
			t.Errorf("node %d took %d of the burst's records other than by gossip", i, n)
		}
	}
}

// seedStore stores recs in the store under dir, sealed under epoch 1's
// key, as a node that had taken them would have.
func seedStore(t testing.TB, nw *dirtest.Network, dir string, recs ...*directory.Record) {
	ds, _, err := openStore(dir, testLogger(t), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	if err := newRecordStore(ds).putMany(t.Context(), sealedUnderEpoch1(nw, recs)); err != nil {
		t.Fatal(err)
	}
}

// sealedUnderEpoch1 is recs as a node stores them, sealed under epoch 1's
// key.
func sealedUnderEpoch1(nw *dirtest.Network, recs []*directory.Record) []pending {
	batch := make([]pending, 0, len(recs))
	for _, r := range recs {
		batch = append(batch, pending{r: r, hash: r.Hash(), epoch: 1, sealed: directory.Seal(r, nw.Key)})
	}
	return batch
}
