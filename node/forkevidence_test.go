package node

import (
	"errors"
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
	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	s := startNode(t, cfgS)
	cfgW := testConfig(t, nw, witness, t.TempDir())
	cfgW.Bootstrap = []string{addr(s)}
	w := startNode(t, cfgW)
	topicUp(t, 1, s, w)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, witness, "Testigo"), nw.Admit(t, late, "Tardía"))
	waitFor(t, 15*time.Second, "both nodes to agree", func() bool { return sameDigest([]*Node{s, w}, ref.digest()) })

	var sides [2]*directory.Record
	for i := range sides {
		c, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now.Add(-time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		sides[i] = nw.Sign(t, c, nw.Stewards[0], nw.Stewards[1])
	}
	done := make(chan error, 2)
	go func() { _, err := s.Publish(t.Context(), sides[0]); done <- err }()
	go func() { _, err := w.Publish(t.Context(), sides[1]); done <- err }()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, directory.ErrDuplicate) {
			t.Fatalf("publishing one side of the fork: %v", err)
		}
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
	waitFor(t, 15*time.Second, "both nodes to report the fork and hold its evidence", func() bool {
		return reports(s) && reports(w) && holds(s) && holds(w)
	})

	s = rotateAndRestart(t, nw, s, w, cfgS)
	if !reports(s) || !holds(s) {
		t.Fatalf("after a restart the steward's node reports %+v", s.State().Equivocations())
	}
	cfgL := testConfig(t, nw, late, t.TempDir())
	cfgL.Bootstrap = []string{addr(s)}
	l := startNode(t, cfgL)
	waitFor(t, 20*time.Second, "the late node to take epoch 2, the fork evidence, and report the fork", func() bool {
		return l.Status().KeyEpoch == 2 && holds(l) && reports(l)
	})
}
