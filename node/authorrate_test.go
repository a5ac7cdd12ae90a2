package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Issue 21, finding 3, as a member runs it: from a host of its own over
// real TCP, an admitted organization republishes one entry 120 times in
// under 3 s. Each node applies and forwards by gossip at most the
// charter's burst of replacing versions (a twentieth of the hourly rate),
// holds back the rest and says so in its status; its newest version still
// reaches every node, by sync from a node that holds it.
func TestChurnForwardedWithinAuthorRate(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgA := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	cfgB := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	nodes := []*Node{s, a, b}
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "churn", 1))
	waitFor(t, 15*time.Second, "the network", func() bool { return sameDigest(nodes, ref.digest()) })
	before := make([]int, len(nodes))
	for i, n := range nodes {
		before[i] = n.Status().Accepted[ViaGossip]
	}

	_, topic := gossipAttacker(t, nw, a)
	const versions = 120
	var last *directory.Record
	for seq := uint64(2); seq <= versions+1; seq++ {
		last = entryRec(t, nw, org, "churn", seq)
		if err := topic.publishRecord(t.Context(), last, directory.Seal(last, nw.Key)); err != nil {
			t.Fatal(err)
		}
		// Paced as a churning publisher is: each version is validated
		// before the next comes, none is made stale by its successor.
		time.Sleep(20 * time.Millisecond)
	}
	// The raw host serves no sync; the organization's own node would. Its
	// newest version, held by one node, reaches the others by sync where
	// gossip holds it back.
	time.Sleep(time.Second)
	if err := s.Import(t.Context(), directory.Seal(last, nw.Key)); err != nil && !errors.Is(err, directory.ErrDuplicate) {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the newest version on every node", func() bool {
		for _, n := range nodes {
			if !n.State().Has(last.Hash()) {
				return false
			}
		}
		return true
	})
	burst := burstOf(directory.Policy{}.MaxAuthorUpdates())
	for i, n := range nodes {
		got := n.Status().Accepted[ViaGossip] - before[i]
		// One more than the burst: the newest version may come by gossip
		// after a token refilled (one a minute).
		if got > burst+1 {
			t.Errorf("node %d applied and forwarded %d of %d versions by gossip; the charter's rate allows a burst of %d", i, got, versions, burst)
		}
	}
	// The attacker delivered far more than any node could forward: node a
	// held back the forwarder's slack of its versions before it
	// graylisted it (forwardrate.go) and dropped the rest unvalidated.
	held := a.Status().HeldBack
	if len(held) != 1 || held[0].Author != org.Public() || held[0].Name != "Colectivo Ejemplo" || held[0].Held < uint64(forwarderSlack*burst) {
		t.Fatalf("node a's status shows held back %+v, want the organization with at least %d of its %d versions", held, forwarderSlack*burst, versions)
	}
}

// The organization's own node refuses an update over the rate before it
// goes out, and says when the next is possible.
func TestPublishOverAuthorRateSaysWhen(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, org, t.TempDir()))
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "asesoria", 1))
	burst := burstOf(directory.Policy{}.MaxAuthorUpdates())
	for seq := uint64(2); seq <= uint64(burst)+1; seq++ {
		mustPublish(t, n, entryRec(t, nw, org, "asesoria", seq))
	}
	_, err := n.Publish(t.Context(), entryRec(t, nw, org, "asesoria", uint64(burst)+2))
	if !errors.Is(err, ErrAuthorRate) || !strings.Contains(err.Error(), "the next update is possible in") {
		t.Fatalf("update %d in a row: %v, want ErrAuthorRate saying when the next is possible", burst+1, err)
	}
	// A new entry is not an update: the live-entry limits bound those.
	mustPublish(t, n, entryRec(t, nw, org, "albergue", 1))

	// Renewals (the same service, a later expiry) are not refused: an
	// organization renews all its entries before they expire, at once.
	for seq := uint64(2); seq <= uint64(3*burst)+2; seq++ {
		e := dirtest.SampleEntry("albergue", seq, nw.Now)
		e.Service.Name = "Asesoría jurídica albergue versión 1"
		e.Expires += int64(seq)
		if _, err := n.Publish(t.Context(), nw.Sign(t, e, org)); err != nil {
			t.Fatalf("renewal %d of an unchanged entry refused: %v", seq-1, err)
		}
	}
}

// The organization's own node refuses, before it goes out, an entry the
// current charter would keep every node from showing: other nodes accept
// it (so the state does not depend on when an amendment arrived) but hold
// it out of view, and the organization must hear why.
func TestPublishOutsideCharterRefusedLocally(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2,
		directory.Policy{MaxRecordBytes: 4096, MaxEntryLifetime: 30 * 24 * 3600}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, testConfig(t, nw, org, t.TempDir()))
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Sign(t, v2, nw.Stewards[:2]...))

	long := dirtest.SampleEntry("asesoria", 1, nw.Now) // 90 days
	_, err = n.Publish(t.Context(), nw.Sign(t, long, org))
	if !errors.Is(err, directory.ErrInvalid) || !strings.Contains(err.Error(), "charter allows 30 days") {
		t.Fatalf("an entry living 90 days under a 30-day charter: %v, want ErrInvalid naming the limit", err)
	}
	big := dirtest.SampleEntry("albergue", 1, nw.Now)
	big.Expires = nw.Now.Add(20 * 24 * time.Hour).Unix()
	big.Service.Description = strings.Repeat("a", 4000)
	_, err = n.Publish(t.Context(), nw.Sign(t, big, org))
	if !errors.Is(err, directory.ErrTooLarge) || !strings.Contains(err.Error(), "charter allows 4096") {
		t.Fatalf("an entry above a 4096-byte charter: %v, want ErrTooLarge naming the limit", err)
	}
	if n.State().Has(nw.Sign(t, long, org).Hash()) || len(n.State().Search(directory.Query{})) != 0 {
		t.Fatal("a refused entry changed the state")
	}
	fits := dirtest.SampleEntry("asesoria", 1, nw.Now)
	fits.Expires = nw.Now.Add(30 * 24 * time.Hour).Unix()
	mustPublish(t, n, nw.Sign(t, fits, org))
}

// A gossiped version from an author whose bucket is empty is ignored
// before its signature is checked (issue 21: the churner's neighbours
// spent their CPU verifying versions they then ignored), and a version
// whose signature does not verify never spends a token: a forger cannot
// hold back an honest organization's updates.
func TestAuthorRateRefusesBeforeVerifyingAndChargesAfter(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	churner, honest := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, churner, "Colectivo Ejemplo"), nw.Admit(t, honest, "Albergue Ejemplo"),
		entryRec(t, nw, churner, "churn", 1), entryRec(t, nw, honest, "albergue", 1))
	gossip := func(r *directory.Record) (verdict, error) {
		_, v, _, err := n.ingestGossip(directory.Seal(r, nw.Key), "", true)
		return v, err
	}
	forged := func(org *directory.Identity, id string, seq uint64) *directory.Record {
		r := entryRec(t, nw, org, id, seq)
		r.Sigs[0].Sig = append([]byte(nil), r.Sigs[0].Sig...)
		r.Sigs[0].Sig[0] ^= 1
		return r
	}
	burst := uint64(burstOf(directory.Policy{}.MaxAuthorUpdates()))
	for seq := uint64(2); seq <= burst+1; seq++ {
		if v, err := gossip(entryRec(t, nw, churner, "churn", seq)); v != accepted {
			t.Fatalf("version %d, within the burst: %v", seq, err)
		}
	}
	// The churner's bucket is empty: its next version, forged or not, is
	// ignored for the rate, which is found before the signature check.
	v, err := gossip(forged(churner, "churn", burst+2))
	if v != ignored || !errors.Is(err, ErrAuthorRate) {
		t.Fatalf("a version with a bad signature from an author over its rate: verdict %d, %v; want it ignored for the rate before its signature is checked", v, err)
	}
	// Nor is it decoded: a version in a format no node decodes is
	// ignored for the rate too, not refused as invalid, which only
	// decoding would find.
	undecodable := entryRec(t, nw, churner, "churn", burst+2)
	undecodable.Version = 99
	if v, err := gossip(undecodable); v != ignored || !errors.Is(err, ErrAuthorRate) {
		t.Fatalf("a version in an unknown format from an author over its rate: verdict %d, %v; want it ignored for the rate before it is decoded", v, err)
	}
	if v, err := gossip(entryRec(t, nw, churner, "churn", burst+3)); v != ignored || !errors.Is(err, ErrAuthorRate) {
		t.Fatalf("a genuine version over the rate: verdict %d, %v; want ignored", v, err)
	}

	// The honest organization's bucket is full: forged versions under its
	// key are checked, refused as invalid, and spend none of its tokens.
	for seq := uint64(2); seq <= 3*burst+2; seq++ {
		v, err := gossip(forged(honest, "albergue", seq))
		if v != invalid || !errors.Is(err, directory.ErrBadSignature) {
			t.Fatalf("forged version %d under an honest key: verdict %d, %v; want invalid for its signature", seq, v, err)
		}
	}
	for seq := 3*burst + 3; seq <= 4*burst+2; seq++ {
		if v, err := gossip(entryRec(t, nw, honest, "albergue", seq)); v != accepted {
			t.Fatalf("the honest organization's update %d after forgeries under its key: verdict %d, %v; forgeries spent its tokens", seq-3*burst-2, v, err)
		}
	}
}
