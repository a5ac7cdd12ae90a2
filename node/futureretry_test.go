package node

import (
	"errors"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// SECURITY.md open issue 8: a record dated ahead of a node's clock (its
// publisher's clock is fast, or this one is slow) is refused, and was not
// pulled again from any peer for ten minutes, however soon its date came.
// Now it is pulled again once the node's clock has reached its date: here
// 8 s past the clock-skew bound, taken about 8 s later.
func TestFutureRecordPulledWhenItsDateComes(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	skew := directory.Policy{}.ClockSkewBound()
	ahead := skew + 8*time.Second

	// This node's clock runs on from the network's time; the publisher's
	// node runs 9 s ahead of it, and takes an entry dated 8 s past the
	// skew bound of this node's clock (within its own).
	start := time.Now()
	clockB := func() time.Time { return nw.Now.Add(time.Since(start)) }
	cfgA := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgA.Now = func() time.Time { return clockB().Add(ahead - skew + time.Second) }
	a := startNode(t, cfgA)
	cfgB := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgB.Now = clockB
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo"))
	waitFor(t, 15*time.Second, "both nodes to agree", func() bool { return sameDigest([]*Node{a, b}, ref.digest()) })
	topicUp(t, 1, a, b)

	recB := record(b)
	published := time.Now()
	e := nw.Sign(t, dirtest.SampleEntry("asesoria", 1, clockB().Add(ahead)), org)
	mustPublish(t, a, e)
	due := published.Add(ahead - skew) // when b's clock lets it in
	waitFor(t, 15*time.Second, "the node to refuse the entry as dated in the future", func() bool {
		return recB.count(func(ev Event) bool { return ev.Hash == e.Hash() && errors.Is(ev.Err, directory.ErrFromFuture) }) > 0
	})
	if time.Now().After(due) {
		t.Skipf("the machine is too slow for this test: the entry's date came before it was refused")
	}
	waitFor(t, 30*time.Second, "the node to pull the entry once its clock reached its date", func() bool { return b.State().Has(e.Hash()) })
	got := time.Now()
	if got.Before(due) {
		t.Fatalf("the entry was taken %s before the node's clock reached its date", due.Sub(got))
	}
	t.Logf("refused, then taken %s after its date came (%s after it was published)",
		got.Sub(due).Round(time.Millisecond), got.Sub(published).Round(time.Millisecond))
}
