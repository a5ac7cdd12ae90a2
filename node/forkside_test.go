package node

import (
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A node that links one side of a charter fork first parks what a steward
// of only the other side signed citing that version: a heartbeat arriving
// then, and an admission that was waiting for version 2 when the first
// side linked. It takes both once the other side links, as a node that
// linked that side first does. Before, the heartbeat was refused as not a
// steward (and not fetched again for ten minutes) and the admission was
// dropped, so which heartbeats and members a node had depended on the
// order (SECURITY.md open issue 4).
func TestForkSideRecordsWaitForTheirSide(t *testing.T) {
	f := dirtest.NewFork(t)
	nw, org, withD, withE, byD := f.Network, f.Org, f.WithD, f.WithE, f.ByD
	beat := nw.Beat(t, 2, f.D)
	n := newCluster(t, nw, 1, []*directory.Identity{nw.Stewards[0]}, nil).nodes[0]
	from := func(recs ...*directory.Record) {
		t.Helper()
		for _, r := range recs {
			n.accept(r, "", ViaSync) // refusals are what this test looks at
		}
	}

	from(nw.Genesis, nw.FirstEpoch, byD, withE, beat)
	if n.State().Has(byD.Hash()) || n.State().Has(beat.Hash()) {
		t.Fatal("with only the other side linked, the node holds what a steward of this side alone signed")
	}
	if !n.parked.has(byD.Hash()) || !n.parked.has(beat.Hash()) {
		t.Fatalf("the waiting admission and the heartbeat are not parked (%d parked)", n.parked.len())
	}
	// The same admission signed by a steward of both sides completes it.
	from(withD, nw.AdmitAt(t, 2, org, "Colectivo", nw.Stewards[0]))
	waitFor(t, 10*time.Second, "the admission and the heartbeat to be taken once their side links", func() bool {
		_, member := n.State().Member(org.Public())
		return member && n.State().Has(beat.Hash()) && n.parked.len() == 0
	})
}
