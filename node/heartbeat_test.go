package node

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// An insider eclipse: the victim's only peer is a member's device that
// answers sync correctly but serves the directory as it was, withholding
// what is new: the member's own revocation and the stewards' later
// heartbeats. By the last-sync measure the victim looks fresh; once the
// newest steward heartbeat it holds expires, it shows as stale, while the
// steward's own node, which keeps beating, does not.
func TestInsiderEclipseShowsStale(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, victimID := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	c, clock := eclipseCluster(t, nw, victimID)
	steward, victim := c.nodes[0], c.nodes[1]
	ref := &reference{t: t, nw: nw}
	admitOrg, admitVictim := nw.Admit(t, org, "Colectivo"), nw.Admit(t, victimID, "Defensoras")
	ref.publish(steward, nw.Genesis, nw.FirstEpoch, admitOrg, admitVictim)
	const validity = 30 * time.Minute
	beat := func() *directory.Record { return beatOn(t, steward, nw.Stewards[0], validity) }
	hb1 := beat()

	// The insider holds the read key and everything up to hb1, and is
	// the victim's only peer.
	m := c.attacker()
	insiderServer(m, nw.ID, 1, nw.Key, []*directory.Record{nw.Genesis, nw.FirstEpoch, admitOrg, admitVictim, hb1})
	if _, err := c.mn.ConnectPeers(victim.Host().ID(), m.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the victim to hold the first heartbeat", func() bool {
		return victim.State().Has(hb1.Hash()) && !victim.State().HeartbeatFreshness().Stale
	})

	// The network moves on without the victim: the stewards revoke the
	// insider's key and keep beating. The insider serves none of it.
	clock.Add(int64(20 * time.Minute / time.Second))
	mustPublish(t, steward, nw.RevokeBy(t, org.Public()))
	beat()
	clock.Add(int64(validity/time.Second) - 20*60 + 1) // hb1 expired one second ago
	beat()
	advanced := time.Now()
	bound := victim.State().Charter().Policy.StaleBound()
	waitFor(t, 10*time.Second, "the victim to sync with the insider after hb1 expired", func() bool {
		return victim.Status().FreshAsOf.After(advanced)
	})
	if f := victim.State().HeartbeatFreshness(); !f.Stale || f.Valid != 0 || !f.Newest.Equal(nw.Now) {
		t.Fatalf("eclipsed victim: %+v, want stale with hb1 (issued %s) the newest", f, nw.Now)
	}
	if time.Since(victim.Status().FreshAsOf) > bound {
		t.Fatal("the victim's peer answers sync: by the last-sync measure it should look fresh")
	}
	if victim.State().IsRevoked(org.Public()) {
		t.Fatal("the insider served its own revocation: no eclipse to see")
	}
	if f := steward.State().HeartbeatFreshness(); f.Stale || f.Valid != 1 {
		t.Fatalf("the steward's node keeps beating, yet: %+v", f)
	}
}

// eclipseCluster starts the first steward's node and a victim's node (not
// connected to each other) on a clock the test moves (Unix seconds), for
// eclipse tests: the victim's peers are what the test connects it to.
func eclipseCluster(t *testing.T, nw *dirtest.Network, victim *directory.Identity) (*cluster, *atomic.Int64) {
	t.Helper()
	clock := new(atomic.Int64)
	clock.Store(nw.Now.Unix())
	c := newCluster(t, nw, 2, []*directory.Identity{nw.Stewards[0], victim}, func(_ int, cfg *Config) {
		cfg.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
		cfg.SyncInterval = 300 * time.Millisecond
	})
	return c, clock
}

// beatOn publishes on n the heartbeat steward signs of n's state.
func beatOn(t *testing.T, n *Node, steward *directory.Identity, validity time.Duration) *directory.Record {
	t.Helper()
	hb, err := directory.NewHeartbeat(n.State(), steward, validity)
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, n, hb)
	return hb
}
