package node

import (
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A revocation co-signed by a steward that a backdated revocation (citing
// an earlier charter version) revokes loses its threshold: every node
// reports it (EventRevocationVoided, with the signer that no longer
// counts), the key it named is not revoked any more, and that
// organization can publish again.
func TestVoidedRevocationIsReportedAndTheKeyComesBack(t *testing.T) {
	nw := dirtest.New(t, 4, 2)
	bad, second, third, fourth := nw.Stewards[0], nw.Stewards[1], nw.Stewards[2], nw.Stewards[3]
	org := dirtest.MustIdentity(t)
	c2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	v2 := nw.Sign(t, c2, third, fourth)
	admit := nw.Sign(t, &directory.Membership{Charter: 2, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: "Casa Refugio", Issued: nw.Now.Unix()}, third, fourth)

	cfgS := testConfig(t, nw, third, t.TempDir())
	s := startNode(t, cfgS)
	cfgT := testConfig(t, nw, fourth, t.TempDir())
	cfgT.Bootstrap = []string{addr(s)}
	st := startNode(t, cfgT)
	cfgA := testConfig(t, nw, org, t.TempDir())
	cfgA.Bootstrap = []string{addr(s), addr(st)}
	a := startNode(t, cfgA)
	nodes := []*Node{s, st, a}
	topicUp(t, 2, nodes...)
	evS, unsubS := s.Subscribe()
	defer unsubS()
	evT, unsubT := st.Subscribe()
	defer unsubT()

	mustPublish(t, s, nw.Genesis, nw.FirstEpoch, v2, admit)
	mustPublish(t, a, entryRec(t, nw, org, "asesoria", 1))
	waitFor(t, hangLimit, "the entry everywhere", func() bool { return searchable(nodes, "", "asesoria") })

	// The compromised pair revokes the organization citing version 2.
	revokeOrg := nw.Sign(t, &directory.Revocation{Key: org.Public(), Charter: 2, Reason: "falsa", Issued: nw.Now.Unix()}, bad, second)
	mustPublish(t, s, revokeOrg)
	waitFor(t, hangLimit, "the organization revoked everywhere", func() bool {
		return s.State().IsRevoked(org.Public()) && st.State().IsRevoked(org.Public()) && a.State().IsRevoked(org.Public())
	})

	// The honest stewards revoke the compromised steward citing version 1.
	mustPublish(t, st, nw.Sign(t, &directory.Revocation{Key: bad.Public(), Charter: 1, Reason: "dispositivo incautado", Issued: nw.Now.Unix()}, third, fourth))
	for name, evs := range map[string]<-chan Event{"first steward's": evS, "second steward's": evT} {
		deadline := time.After(hangLimit)
		for got := false; !got; {
			select {
			case e := <-evs:
				got = e.Kind == EventRevocationVoided && e.Hash == revokeOrg.ProposalID()
			case <-deadline:
				t.Fatalf("the %s node did not report that the revocation lost its threshold", name)
			}
		}
	}
	// The organization's node was cut off while revoked: it learns of the
	// backdated revocation when it is let in again.
	waitFor(t, hangLimit, "the organization no longer revoked anywhere", func() bool {
		return !s.State().IsRevoked(org.Public()) && !st.State().IsRevoked(org.Public()) && !a.State().IsRevoked(org.Public())
	})
	for _, n := range nodes {
		p, _ := n.State().Proposal(revokeOrg.ProposalID())
		if p.Effective || len(p.Uncounted) != 1 || p.Uncounted[0] != bad.Public() {
			t.Fatalf("the revocation: effective %v, uncounted %v; want the revoked steward uncounted", p.Effective, p.Uncounted)
		}
	}
	// Its entry was dropped everywhere while it was revoked; it publishes
	// again and is found.
	mustPublish(t, a, entryRec(t, nw, org, "asesoria", 2))
	waitFor(t, hangLimit, "the organization's entry everywhere again", func() bool { return searchable(nodes, "", "asesoria") })
}
