package node

import (
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Two stewards sign two amendments of version 1 (a charter fork) while a
// third node is offline. The node that sees both publishes evidence of the
// fork; it is stored (the restarted steward's node still holds and reports
// it, counted in its status), synced through a rotation to the late node,
// which reports the fork. Before, forks made no evidence record.
func TestCharterForkEvidenceIsStoredAndSynced(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	witness, late := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	var sides [2]*directory.Record
	for i := range sides {
		c, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now.Add(-time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sides[i] = nw.Sign(t, c, nw.Stewards[0], nw.Stewards[1])
	}
	reports := func(n *Node) bool {
		return slices.ContainsFunc(n.State().Equivocations(), func(e directory.Equivocation) bool {
			return e.Slot == "charter/2" && slices.Contains(e.Hashes, sides[0].ProposalID()) && slices.Contains(e.Hashes, sides[1].ProposalID())
		}) && n.State().Stats().Conflict == 1
	}
	holds := func(n *Node) bool {
		return slices.ContainsFunc(n.State().Records(), func(r *directory.Record) bool {
			slot, err := r.Slot()
			return r.Type == directory.TypeEvidence && err == nil && slot == "evidence/charter/2"
		})
	}
	conflictSurvivesRestartAndRotation(t, nw, witness, late, nil, sides[0], sides[1], reports, holds)
}
