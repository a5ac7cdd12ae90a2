package node

import (
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// An insider eclipse that forwards the stewards' heartbeats but withholds
// a member's new entry and a charter amendment: the victim's only peer is
// a member's device serving everything else. Within the heartbeats'
// validity, once they are older than the grace, the victim says it is
// behind: on one member's entries (the heartbeat's watermark) and on
// charter 2 (a heartbeat citing it, waiting for the amendment). When an
// honest peer is reached the victim catches up and no longer says so.
// Before, withholding entries or an amendment alone was not detected:
// the victim looked fresh.
func TestInsiderEclipseWithholdingEntriesShowsBehind(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, victimID := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	c, clock := eclipseCluster(t, nw, victimID)
	steward, victim := c.nodes[0], c.nodes[1]
	ref := &reference{t: t, nw: nw}
	admitOrg, admitVictim := nw.Admit(t, org, "Colectivo"), nw.Admit(t, victimID, "Defensoras")
	old := nw.Sign(t, dirtest.SampleEntry("asesoria", 1, nw.Now.Add(-time.Hour)), org)
	ref.publish(steward, nw.Genesis, nw.FirstEpoch, admitOrg, admitVictim, old)
	fresh := nw.Sign(t, dirtest.SampleEntry("albergue", 1, nw.Now), org)
	mustPublish(t, steward, fresh)
	const validity = 30 * time.Minute
	atCharter1 := beatOn(t, steward, nw.Stewards[1], validity)
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	amendment := nw.Sign(t, v2, nw.Stewards[0], nw.Stewards[1])
	mustPublish(t, steward, amendment)
	atCharter2 := beatOn(t, steward, nw.Stewards[0], validity)

	// The insider forwards both heartbeats, not the entry nor the amendment.
	m := c.attacker()
	insiderServer(m, nw.ID, 1, nw.Key, []*directory.Record{nw.Genesis, nw.FirstEpoch, admitOrg, admitVictim, old, atCharter1, atCharter2})
	if _, err := c.mn.ConnectPeers(victim.Host().ID(), m.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the victim to hold the charter-1 heartbeat and park the charter-2 one", func() bool {
		return victim.State().Has(atCharter1.Hash()) && victim.parked.has(atCharter2.Hash())
	})
	if f := victim.HeartbeatFreshness(); f.Stale || f.Behind {
		t.Fatalf("within the grace: %+v, want fresh and not behind", f)
	}

	clock.Add(int64((directory.HeartbeatGrace + time.Minute) / time.Second))
	f := victim.HeartbeatFreshness()
	if !f.Behind || f.BehindMembers != 1 || f.BehindCharter != 2 || f.Stale {
		t.Fatalf("eclipsed past the grace: %+v, want behind on one member and on charter 2, within the heartbeats' validity", f)
	}
	if victim.State().Has(fresh.Hash()) || charterOf(victim) != 1 {
		t.Fatal("the insider served what it withholds: no eclipse to see")
	}
	if f := steward.HeartbeatFreshness(); f.Behind {
		t.Fatalf("the steward's own node: %+v, want not behind", f)
	}

	// An honest peer: the victim catches up and is no longer behind.
	if _, err := c.mn.ConnectPeers(victim.Host().ID(), steward.Host().ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the victim to catch up and no longer be behind", func() bool {
		f := victim.HeartbeatFreshness()
		return victim.State().Has(fresh.Hash()) && charterOf(victim) == 2 && !f.Behind && !f.Stale
	})
}

func charterOf(n *Node) uint64 {
	if c := n.State().Charter(); c != nil {
		return c.Version
	}
	return 0
}
