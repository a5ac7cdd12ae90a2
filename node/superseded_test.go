package node

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// supersedeScenario runs a steward's node A and a member's node B on one
// clock. B saw an organization's first version of "refugio", valid 90 days,
// and went offline; A saw every version in vs. Each test then moves the
// clock and brings B back.
type supersedeScenario struct {
	a, b       *Node
	cfgA, cfgB Config
	clock      *atomic.Int64
	key        string
	t0         time.Time
}

func newSupersedeScenario(t *testing.T, vs func(v1 *directory.Entry, p directory.Policy) []*directory.Entry) *supersedeScenario {
	nw := dirtest.New(t, 3, 2)
	org, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	sc := &supersedeScenario{clock: new(atomic.Int64), t0: nw.Now, key: "entry/" + org.Public().Hex() + "/refugio"}
	sc.clock.Store(nw.Now.Unix())
	now := func() time.Time { return time.Unix(sc.clock.Load(), 0) }
	sc.cfgA = testConfig(t, nw, nw.Stewards[0], t.TempDir())
	sc.cfgA.Now = now
	sc.cfgB = testConfig(t, nw, other, t.TempDir())
	sc.cfgB.Now = now

	v1 := dirtest.SampleEntry("refugio", 1, nw.Now) // 90 days
	gov := append([]*directory.Record{nw.Genesis, nw.FirstEpoch}, nw.FirstPages...)
	gov = append(gov, nw.Admit(t, org, "Casa Refugio"), nw.Admit(t, other, "Red Vecina"))

	sc.b = startNode(t, sc.cfgB)
	mustPublish(t, sc.b, append(gov, nw.Sign(t, v1, org))...)
	if err := sc.b.Close(); err != nil {
		t.Fatal(err)
	}
	sc.a = startNode(t, sc.cfgA)
	mustPublish(t, sc.a, append(gov, nw.Sign(t, v1, org))...)
	for _, v := range vs(v1, nw.Charter.Policy) {
		mustPublish(t, sc.a, nw.Sign(t, v, org))
	}
	return sc
}

// later moves the clock to d after the first version and lets A expire
// what has expired, as its periodic sweep does.
func (sc *supersedeScenario) later(d time.Duration) {
	sc.clock.Store(sc.t0.Add(d).Unix())
	sc.a.expire()
}

// bBack brings B back online, connected to A.
func (sc *supersedeScenario) bBack(t *testing.T) {
	sc.b = startNode(t, sc.cfgB)
	if err := sc.b.Connect(t.Context(), addr(sc.a)); err != nil {
		t.Fatal(err)
	}
}

// aRestarted restarts A (an upgrade, a reboot), connected to B.
func (sc *supersedeScenario) aRestarted(t *testing.T) {
	if err := sc.a.Close(); err != nil {
		t.Fatal(err)
	}
	sc.a = startNode(t, sc.cfgA)
	if err := sc.a.Connect(t.Context(), addr(sc.b)); err != nil {
		t.Fatal(err)
	}
}

// shown is the seq of the version of "refugio" n shows, 0 for none.
func (sc *supersedeScenario) shown(n *Node) uint64 {
	for _, r := range n.State().Search(directory.Query{Text: "Asesoría"}) {
		if r.Key == sc.key {
			return r.Entry.Seq
		}
	}
	return 0
}

// An organization publishes an entry valid 90 days (v1), updates it to one
// valid two hours (v2: "closed until tonight"), then deletes it with
// `ceiba entry rm`. The tombstone used to live until the later of v2's
// expiry and a day from then; once it expired, nodes dropped it, and the
// only trace of the deletion was the seq in the memory of nodes that never
// restarted. A member's node that went offline holding v1 came back 25
// hours later and kept showing the deleted entry, and a node that
// restarted took v1 from it and showed it again (found in review, session
// 40). The tombstone now lives the charter's max_entry_lifetime, as long
// as any version issued before it can.
func TestDeletedEntryDoesNotComeBackFromANodeThatKeptAnOlderVersion(t *testing.T) {
	sc := newSupersedeScenario(t, func(v1 *directory.Entry, p directory.Policy) []*directory.Entry {
		v2 := dirtest.SampleEntry("refugio", 2, time.Unix(v1.Issued, 0))
		v2.Expires = time.Unix(v1.Issued, 0).Add(2 * time.Hour).Unix()
		return []*directory.Entry{v2, directory.Tombstone(v2, time.Unix(v1.Issued, 0), p)}
	})
	if seq := sc.shown(sc.a); seq != 0 {
		t.Fatalf("the deleted entry is shown right after the deletion: seq %d", seq)
	}

	sc.later(25 * time.Hour)
	sc.bBack(t)
	if !waitUntil(10*time.Second, func() bool { return sc.shown(sc.b) == 0 }) {
		t.Errorf("the node back after 25 hours offline still shows the entry its organization deleted (seq %d)", sc.shown(sc.b))
	}

	sc.aRestarted(t)
	if waitUntil(5*time.Second, func() bool { return sc.shown(sc.a) != 0 }) {
		t.Errorf("after a restart, the node took back the deleted entry (seq %d) from a peer that kept an old version", sc.shown(sc.a))
	}
}

// The same organization, instead of deleting v1, replaces it with a
// version it asks to expire in two hours (v2). Had v2 expired then, nodes
// would have dropped it, and v1, valid for months, would have come back
// from the node that kept it: the entry reverting to content its
// organization replaced. The daemon now dates a new version to expire no
// sooner than the one it replaces (directory.SupersedingExpiry).
func TestReplacedEntryDoesNotComeBackAfterAShorterUpdate(t *testing.T) {
	sc := newSupersedeScenario(t, func(v1 *directory.Entry, p directory.Policy) []*directory.Entry {
		at := time.Unix(v1.Issued, 0)
		v2 := dirtest.SampleEntry("refugio", 2, at)
		v2.Service.Status = "temporarily-closed"
		v2.Expires = directory.SupersedingExpiry(v1, at, at.Add(2*time.Hour).Unix(), p)
		return []*directory.Entry{v2}
	})
	if seq := sc.shown(sc.a); seq != 2 {
		t.Fatalf("right after the update the node shows seq %d, want 2", seq)
	}

	sc.later(3 * time.Hour)
	sc.bBack(t)
	if !waitUntil(10*time.Second, func() bool { return sc.shown(sc.b) == 2 }) {
		t.Errorf("the node back after 3 hours offline shows seq %d, want the update (seq 2)", sc.shown(sc.b))
	}

	sc.aRestarted(t)
	if waitUntil(5*time.Second, func() bool { return sc.shown(sc.a) == 1 }) {
		t.Errorf("after a restart, the node took back the version its organization replaced from a peer that kept it")
	}
}
