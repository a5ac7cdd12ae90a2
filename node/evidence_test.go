package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A member equivocates while a third node is offline; then the stewards
// rotate the read key. The steward's node, restarted, still reports the
// equivocation (the losing version is stored nowhere: only the evidence
// record it published keeps the report), and the third node, coming back
// with only the old key, learns of it by sync through the rotation.
func TestEquivocationEvidenceSurvivesRestartAndRotation(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, witness, late := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	x := entryRec(t, nw, org, "asesoria", 1)
	ye := dirtest.SampleEntry("asesoria", 1, nw.Now)
	ye.Service.Contacts[0].Value = "+52 55 9999 9999" // the attacker's number
	y := nw.Sign(t, ye, org)
	reports := func(n *Node) bool {
		return slices.ContainsFunc(n.State().Equivocations(), func(e directory.Equivocation) bool {
			return e.Key == org.Public() && slices.Contains(e.Hashes, x.Hash()) && slices.Contains(e.Hashes, y.Hash())
		})
	}
	conflictSurvivesRestartAndRotation(t, nw, witness, late, []*directory.Record{nw.Admit(t, org, "Colectivo")}, x, y, reports, holdsEvidence)
}

// conflictSurvivesRestartAndRotation is what every kind of evidence must
// pass. The first steward's node s and a witness member's node w,
// bootstrapped from it, hold the genesis, the first epoch, the admissions
// of the witness and of the late member, and admits; s publishes x and w
// publishes y at once (the two sides of a conflict): both must come to
// report it and hold its evidence. The stewards rotate (the late member is
// a recipient but offline) and s restarts: it must still do both, from its
// store. The late node, with epoch 1's key only and s as its only peer,
// must take epoch 2 and do both.
func conflictSurvivesRestartAndRotation(t *testing.T, nw *dirtest.Network, witness, late *directory.Identity, admits []*directory.Record, x, y *directory.Record, reports, holds func(*Node) bool) {
	t.Helper()
	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	s := startNode(t, cfgS)
	cfgW := testConfig(t, nw, witness, t.TempDir())
	cfgW.Bootstrap = []string{addr(s)}
	w := startNode(t, cfgW)
	topicUp(t, 1, s, w)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, append([]*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, witness, "Testigo"), nw.Admit(t, late, "Tardía")}, admits...)...)
	waitFor(t, 15*time.Second, "both nodes to agree", func() bool { return sameDigest([]*Node{s, w}, ref.digest()) })

	done := make(chan error, 2)
	go func() { _, err := s.Publish(t.Context(), x); done <- err }()
	go func() { _, err := w.Publish(t.Context(), y); done <- err }()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, directory.ErrDuplicate) {
			t.Fatalf("publishing one side of the conflict: %v", err)
		}
	}
	waitFor(t, 15*time.Second, "both nodes to report the conflict and hold its evidence", func() bool {
		return reports(s) && reports(w) && holds(s) && holds(w)
	})

	s = rotateAndRestart(t, nw, s, w, cfgS)
	if !reports(s) || !holds(s) {
		t.Fatalf("after a restart the steward's node reports %+v", s.State().Equivocations())
	}
	cfgL := testConfig(t, nw, late, t.TempDir())
	cfgL.Bootstrap = []string{addr(s)}
	l := startNode(t, cfgL)
	waitFor(t, 20*time.Second, "the late node to take epoch 2, hold the evidence and report the conflict", func() bool {
		return l.Status().KeyEpoch == 2 && holds(l) && reports(l)
	})
	t.Logf("late node: %+v", l.State().Equivocations())
}

func holdsEvidence(n *Node) bool {
	return slices.ContainsFunc(n.State().Records(), func(r *directory.Record) bool { return r.Type == directory.TypeEvidence })
}

// rotateAndRestart has the stewards rotate to epoch 2 through s, waits for
// s and w to take the key, and restarts s (the steward's node of cfgS) with
// the keys it held: what it reports after must come from its store.
func rotateAndRestart(t *testing.T, nw *dirtest.Network, s, w *Node, cfgS Config) *Node {
	t.Helper()
	rotateApproved(t, nw, s)
	waitFor(t, 15*time.Second, "epoch 2 on both nodes", func() bool {
		return s.Status().KeyEpoch == 2 && w.Status().KeyEpoch == 2 && s.sealEpoch() == 2
	})
	keys := s.Keyring()
	s.Close()
	cfgS.Keystore = &directory.Keystore{Identity: nw.Stewards[0], Keys: keys}
	cfgS.Listen = loopback
	return startNode(t, cfgS)
}
