package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The adversaries of this file hold keys: a seized member device (its
// signing key and the read keys it had), one compromised steward, and
// anyone replaying or withholding records.

// insiderServer makes h answer sync sessions correctly, offering recs
// sealed under the given epoch key: a peer that holds the network ID and
// a read key and serves whatever it chooses.
func insiderServer(h host.Host, nw directory.NetworkID, epoch uint64, key directory.ReadKey, recs []*directory.Record) {
	byHash := map[directory.Hash]*directory.Record{}
	var hs []directory.Hash
	for _, r := range recs {
		byHash[r.Hash()] = r
		hs = append(hs, r.Hash())
	}
	d := newDigest(hs)
	h.SetStreamHandler(SyncProtocol, func(st network.Stream) {
		defer st.Reset()
		st.SetDeadline(time.Now().Add(10 * time.Second))
		c := newWire(st)
		if _, err := c.expect(msgHello, maxControlFrame); err != nil {
			return
		}
		c.w.Write(insiderAck(nw, st.Conn().RemotePeer(), h.ID(), uint32(len(d.Hashes)), d.Root))
		c.flush()
		for {
			typ, body, err := c.recv(maxControlFrame)
			if err != nil {
				return
			}
			switch typ {
			case msgDone:
				st.Close()
				return
			case msgWantBuckets:
				c.send(msgBuckets, d.BucketTable())
			case msgWantLists:
				for _, b := range body {
					part := d.Hashes[d.Start[b]:d.Start[int(b)+1]]
					out := append([]byte{b}, binary.BigEndian.AppendUint32(nil, uint32(len(part)))...)
					for _, x := range part {
						out = append(append(out, x[:]...), byte(syncRank(byHash[x])))
					}
					c.send(msgList, out)
				}
			case msgWantRecords:
				cnt := int(binary.BigEndian.Uint32(body))
				for i := range cnt {
					var x directory.Hash
					copy(x[:], body[4+32*i:])
					c.send(msgRecord, append(x[:], directory.Seal(byHash[x], key)...))
				}
				c.flush()
			}
		}
	})
}

// A member organization's device is seized and its key revoked by two
// stewards. Whatever the key signs afterwards, dated before or after the
// revocation, is refused by every node, whether it comes from the
// organization's own node, is published on the topic, or is served by
// sync; and what it published before is gone everywhere. Its approval of
// a pending admission, as if it were a steward, is refused too and does
// not count.
func TestRevokedMemberIsRefusedEverywhere(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	c := newCluster(t, nw, 6, []*directory.Identity{nw.Stewards[0], org, other}, nil)
	c.meshUp(7)
	ref := &reference{t: t, nw: nw}
	ref.publish(c.nodes[0], nw.Genesis, nw.Admit(t, org, "Colectivo Incautado"), nw.Admit(t, other, "Colectivo Sano"))
	c.admitExtras(ref, 0)
	before := entries(t, nw, org, "antes", 3)
	ref.publish(c.nodes[1], before...)
	ref.publish(c.nodes[2], entryRec(t, nw, other, "refugio", 1))
	// Once revoked, the organization's node gets nothing by sync: it must
	// hold everything else before the revocation, which reaches it by
	// gossip.
	waitFor(t, 15*time.Second, "the network before the revocation", func() bool { return c.converged(ref.digest()) })
	topicUp(t, 2, c.nodes...)
	ref.publish(c.nodes[0], nw.RevokeBy(t, org.Public()))
	want := ref.digest()
	if !waitUntil(15*time.Second, func() bool { return c.converged(want) }) {
		for i, n := range c.nodes {
			t.Logf("node %d: digest ok %v, revoked known %v", i, n.State().Digest() == want, n.State().IsRevoked(org.Public()))
		}
		t.Fatal("the revocation did not reach every node")
	}
	if !hasNone(c.nodes, before...) {
		t.Fatal("a node still holds what the revoked key published before its revocation")
	}

	// What the seized key signs now: a new entry, an update of an old one,
	// one backdated a month before the revocation, a reader grant, and an
	// approval of an admission a steward proposed, as if it were a steward.
	backdated := dirtest.SampleEntry("antiguo", 1, nw.Now.Add(-30*24*time.Hour))
	reader, crony := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	proposal := nw.Sign(t, &directory.Membership{Charter: 1, Org: crony.Public(), KEM: crony.KEMPublic(), KEMSig: crony.KEMBinding(), Name: "Fachada", Issued: nw.Now.Unix()}, nw.Stewards[0])
	ref.publish(c.nodes[0], proposal)
	approval, err := directory.NewApproval(proposal, org)
	if err != nil {
		t.Fatal(err)
	}
	late := []*directory.Record{
		entryRec(t, nw, org, "nuevo", 1),
		entryRec(t, nw, org, "antes-0", 2),
		nw.Sign(t, backdated, org),
		nw.Vouch(t, org, reader),
		approval,
	}
	recs := c.recordAll()
	for _, r := range late {
		if _, err := c.nodes[1].Publish(t.Context(), r); !errors.Is(err, directory.ErrRevoked) && !errors.Is(err, directory.ErrNotSteward) {
			t.Fatalf("the organization's own node published a %s after its revocation: %v", r.Type, err)
		}
	}
	// The seized device, with the key and the epoch-1 read key, serves
	// the records by sync and publishes them on the topic.
	m := c.attacker()
	topic := rawTopic(t, m, nw.Key)
	insiderServer(m, nw.ID, 1, nw.Key, late)
	c.connectAll(m)
	for _, n := range c.nodes {
		if _, _, err := n.sync.session(m.ID()); err != nil {
			t.Fatalf("sync with the insider: %v", err)
		}
	}
	refused := func(rec *recorder, via Via) map[directory.Hash]bool {
		out := map[directory.Hash]bool{}
		for _, ev := range rec.snapshot() {
			if ev.Kind == EventRejected && (errors.Is(ev.Err, directory.ErrRevoked) || errors.Is(ev.Err, directory.ErrNotSteward)) && (via == "" || ev.Via == via) {
				out[ev.Hash] = true
			}
		}
		return out
	}
	refusedEverywhere := func() bool {
		// GossipSub drops what a peer publishes before its streams are
		// up, so the device keeps publishing (new sealings, new messages).
		for _, r := range late {
			topic.publishRecord(t.Context(), r, directory.Seal(r, nw.Key))
		}
		time.Sleep(50 * time.Millisecond)
		for _, rec := range recs {
			if len(refused(rec, "")) < len(late) || len(refused(rec, ViaGossip)) == 0 {
				return false
			}
		}
		return true
	}
	if !waitUntil(10*time.Second, refusedEverywhere) {
		for i, rec := range recs {
			for _, ev := range rec.snapshot() {
				if ev.Kind == EventRejected {
					t.Logf("node %d: %s %s via %s: %v", i, ev.Type, ev.Hash.Short(), ev.Via, ev.Err)
				}
			}
		}
		t.Fatal("not every node refused every late record")
	}
	want = ref.digest()
	if !hasNone(c.nodes, late...) || !c.converged(want) {
		t.Fatal("a record signed after the revocation entered a node's state")
	}
	for i, n := range c.nodes {
		if _, ok := n.State().Member(crony.Public()); ok {
			t.Fatalf("node %d counted a member's approval as a steward's", i)
		}
	}
}

// What backdating or forward-dating an entry can and cannot do. The
// protocol has no rule tying a record's issue date to its signer's
// admission; what it promises is that an entry is refused when expired on
// arrival and when dated beyond the clock skew, and not shown while it
// outlives the charter's maximum lifetime counted from its own issue date
// (accepted, so the state does not depend on when an amendment lowering
// that lifetime arrived). So backdating only shortens an entry's life, and
// forward-dating gains at most the skew.
func TestDatesCannotStretchAnEntry(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	mustPublish(t, n, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "asesoria", 1))
	day := 24 * time.Hour
	maxLife := time.Duration(directory.DefaultMaxEntryLifetime) * time.Second
	skew := time.Duration(directory.DefaultClockSkew) * time.Second
	dated := func(id string, seq uint64, issued, expires time.Time) *directory.Record {
		e := dirtest.SampleEntry(id, seq, issued)
		e.Expires = expires.Unix()
		return nw.Sign(t, e, org)
	}
	now := nw.Now
	for _, c := range []struct {
		name string
		rec  *directory.Record
		want error
	}{
		{"backdated a year and expired on arrival", dated("viejo", 1, now.Add(-365*day), now.Add(-day)), directory.ErrExpired},
		{"backdated to outlive the charter's lifetime (accepted, not shown)", dated("largo", 1, now.Add(-30*day), now.Add(maxLife)), nil},
		{"forward-dated beyond the clock skew", dated("futuro", 1, now.Add(skew+time.Minute), now.Add(30*day)), directory.ErrFromFuture},
		{"backdated within its lifetime, higher seq", dated("asesoria", 2, now.Add(-10*day), now.Add(20*day)), nil},
		{"the superseded version replayed", entryRec(t, nw, org, "asesoria", 1), directory.ErrStale},
		// New content under a seq already used is not a way back either:
		// it is equivocation evidence, reported, and changes nothing.
		{"an old seq with new content", dated("asesoria", 1, now, now.Add(30*day)), nil},
		{"forward-dated within the skew, full lifetime", dated("pronto", 1, now.Add(skew), now.Add(skew+maxLife)), nil},
	} {
		_, err := n.Publish(t.Context(), c.rec)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The backdated update is simply the newest version; it expires 20
	// days from now, not later.
	l, ok := n.State().Lookup("entry/" + org.Public().Hex() + "/asesoria")
	if !ok || l.Entry.Seq != 2 || time.Unix(l.Entry.Expires, 0).After(now.Add(20*day)) {
		t.Fatalf("the backdated update: %+v, %v", l.Entry, ok)
	}
	for _, r := range n.State().Search(directory.Query{}) {
		if r.Entry.ID == "largo" {
			t.Fatal("an entry backdated to outlive the charter's lifetime is shown")
		}
	}
	if u := n.State().Usage(org.Public()); u.Held != 1 {
		t.Fatalf("usage %+v, want the backdated entry held", u)
	}
	if eq := n.State().Equivocations(); len(eq) != 1 || eq[0].Key != org.Public() {
		t.Fatalf("reusing seq 1 with new content is not reported: %+v", eq)
	}
}

// One compromised steward of a 2-of-3 network cannot admit an
// organization, revoke a member, rotate the read key or amend the charter
// on its own, on any node. Once the other two revoke it, its approval no
// longer counts towards an admission, on any node.
func TestCompromisedStewardCannotActAlone(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	bad, good1, good2 := nw.Stewards[0], nw.Stewards[1], nw.Stewards[2]
	honestOrg, crony, later := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	c := newCluster(t, nw, 5, []*directory.Identity{bad, good1, good2, honestOrg}, nil)
	c.meshUp(3)
	ref := &reference{t: t, nw: nw}
	ref.publish(c.nodes[1], nw.Genesis, nw.Admit(t, honestOrg, "Colectivo Sano"))
	c.admitExtras(ref, 1)
	ref.publish(c.nodes[3], entryRec(t, nw, honestOrg, "asesoria", 1))

	admitCrony := nw.Sign(t, &directory.Membership{Charter: 1, Org: crony.Public(), KEM: crony.KEMPublic(), KEMSig: crony.KEMBinding(), Name: "Fachada", Issued: nw.Now.Unix()}, bad)
	revokeHonest := nw.Sign(t, &directory.Revocation{Key: honestOrg.Public(), Charter: 1, Reason: "falso", Issued: nw.Now.Unix()}, bad)
	epoch, _, err := directory.NewEpoch(nw.ID, 2, 1, directory.Hash{}, directory.NewReadKey(),
		[]directory.Recipient{{Key: bad.Public(), KEM: bad.KEMPublic()}}, nw.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	takeover, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards[:1], 1, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	alone := []*directory.Record{admitCrony, revokeHonest, nw.Sign(t, epoch, bad), nw.Sign(t, takeover, bad), entryRec(t, nw, crony, "fachada", 1)}
	ref.publish(c.nodes[0], alone...)
	want := ref.digest()
	waitFor(t, 15*time.Second, "every node to hold the lone steward's proposals, pending", func() bool {
		if !c.converged(want) {
			return false
		}
		for _, n := range c.nodes {
			if !n.State().Has(admitCrony.Hash()) {
				return false
			}
		}
		return true
	})
	for i, n := range c.nodes {
		st := n.State()
		if _, ok := st.Member(crony.Public()); ok {
			t.Fatalf("node %d: one steward alone admitted an organization", i)
		}
		if st.IsRevoked(honestOrg.Public()) {
			t.Fatalf("node %d: one steward alone revoked a member", i)
		}
		if st.CurrentEpoch() != 0 || st.Charter().Version != 1 {
			t.Fatalf("node %d: one steward alone rotated (epoch %d) or amended the charter (version %d)", i, st.CurrentEpoch(), st.Charter().Version)
		}
		if len(st.Search(directory.Query{Text: "asesoria"})) != 1 {
			t.Fatalf("node %d lost the honest entry", i)
		}
	}

	// The other two revoke it. Its approval of an admission proposed by a
	// good steward then does not count; a second good approval does.
	ref.publish(c.nodes[1], nw.Sign(t, &directory.Revocation{Key: bad.Public(), Charter: 1, Reason: "comprometido", Issued: nw.Now.Unix()}, good1, good2))
	proposal := nw.Sign(t, &directory.Membership{Charter: 1, Org: later.Public(), KEM: later.KEMPublic(), KEMSig: later.KEMBinding(), Name: "Colectivo Nuevo", Issued: nw.Now.Unix()}, good1)
	ref.publish(c.nodes[1], proposal)
	want = ref.digest()
	waitFor(t, 15*time.Second, "the revocation of the steward everywhere", func() bool { return c.converged(want) })
	lateApproval, err := directory.NewApproval(proposal, bad)
	if err != nil {
		t.Fatal(err)
	}
	// Its own node knows it is revoked and refuses; so does every node
	// the approval is gossiped to.
	if _, err := c.nodes[0].Publish(t.Context(), lateApproval); !errors.Is(err, directory.ErrRevoked) {
		t.Fatalf("a revoked steward's approval: %v, want ErrRevoked", err)
	}
	m := c.attacker()
	topic := rawTopic(t, m, nw.Key)
	recs := c.recordAll()
	c.connectAll(m)
	// GossipSub drops what a peer publishes before its streams are up,
	// so the device keeps sending (each sealing is a new message).
	waitFor(t, 15*time.Second, "every node to refuse the late approval", func() bool {
		topic.publishRecord(t.Context(), lateApproval, directory.Seal(lateApproval, nw.Key))
		time.Sleep(50 * time.Millisecond)
		for _, rec := range recs {
			if rec.count(func(ev Event) bool {
				return ev.Kind == EventRejected && ev.Hash == lateApproval.Hash() && errors.Is(ev.Err, directory.ErrRevoked)
			}) == 0 {
				return false
			}
		}
		return true
	})
	for i, n := range c.nodes {
		if _, ok := n.State().Member(later.Public()); ok {
			t.Fatalf("node %d counted a revoked steward's approval", i)
		}
	}
	second, err := directory.NewApproval(proposal, good2)
	if err != nil {
		t.Fatal(err)
	}
	ref.publish(c.nodes[2], second)
	want = ref.digest()
	waitFor(t, 15*time.Second, "the admission with two good approvals everywhere", func() bool { return c.converged(want) })
	if _, ok := c.nodes[4].State().Member(later.Public()); !ok {
		t.Fatal("two good stewards could not admit")
	}
}

// A seized member key signs two different versions of an entry with the
// same seq and hands them to different nodes at once. Every node keeps the
// same one, and every node reports the equivocation to its stewards.
func TestEquivocationIsReportedOnEveryNode(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	c := newCluster(t, nw, 6, nil, nil)
	c.meshUp(11)
	ref := &reference{t: t, nw: nw}
	ref.publish(c.nodes[0], nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "asesoria", 1))
	c.admitExtras(ref, 0)
	waitFor(t, 15*time.Second, "the entry everywhere", func() bool { return c.converged(ref.digest()) })
	x := entryRec(t, nw, org, "asesoria", 2)
	ye := dirtest.SampleEntry("asesoria", 2, nw.Now)
	ye.Service.Contacts[0].Value = "+52 55 9999 9999" // the attacker's number
	y := nw.Sign(t, ye, org)
	done := make(chan error, 2)
	for i, r := range map[int]*directory.Record{1: x, 4: y} {
		go func() { _, err := c.nodes[i].Publish(t.Context(), r); done <- err }()
	}
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, directory.ErrDuplicate) {
			t.Fatalf("publishing one side of the equivocation: %v", err)
		}
	}
	ref.recs = append(ref.recs, x, y)
	want := ref.digest()
	start := time.Now()
	waitFor(t, 15*time.Second, "every node to keep the same version and report the equivocation", func() bool {
		if !c.converged(want) {
			return false
		}
		for _, n := range c.nodes {
			if !slices.ContainsFunc(n.State().Equivocations(), func(e directory.Equivocation) bool { return e.Key == org.Public() }) {
				return false
			}
		}
		return true
	})
	t.Logf("equivocation reported on all %d nodes %s after it was published", len(c.nodes), time.Since(start).Round(time.Millisecond))
}

// In a 2-of-3 network a steward proposes a new read key and a second
// steward approves it from another node. The approval is what makes the
// epoch effective, so it must reach nodes that do not hold the new key
// yet: every node adopts the key. (The approval used to be sealed under
// the new key, which only the approving node held; nobody else could open
// it, by gossip or sync, and the rotation never completed anywhere else.)
func TestRotationApprovedElsewhereReachesEveryNode(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	c := newCluster(t, nw, 4, []*directory.Identity{nw.Stewards[0], nw.Stewards[1], org}, nil)
	c.connect(0, 1)
	c.connect(1, 2)
	c.connect(2, 3)
	ref := &reference{t: t, nw: nw}
	ref.publish(c.nodes[0], nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"))
	// Node 3's key is admitted nowhere, so no node serves it sync; what it
	// holds came by gossip, and it is not waited for.
	waitFor(t, 10*time.Second, "the network", func() bool { return sameDigest(c.nodes[:3], ref.digest()) })
	epochRec, err := c.nodes[0].Rotate(t.Context(), directory.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	ref.recs = append(ref.recs, rotationRecs(t, c.nodes[0], epochRec)...)
	waitFor(t, 10*time.Second, "the proposal on the approving steward's node", func() bool { return c.nodes[1].State().Has(epochRec.Hash()) })
	approval, err := directory.NewApproval(epochRec, nw.Stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	ref.publish(c.nodes[1], approval)
	want := ref.digest()
	waitFor(t, 15*time.Second, "every member and steward node to adopt the new key", func() bool {
		return sameDigest(c.nodes[:3], want) && c.nodes[0].Status().KeyEpoch == 2 && c.nodes[1].Status().KeyEpoch == 2 && c.nodes[2].Status().KeyEpoch == 2
	})
	// Node 3 is neither steward, member nor reader: it got no package,
	// and what is published now is sealed under a key it does not have.
	if c.nodes[3].Status().KeyEpoch != 1 {
		t.Fatal("a node that is no recipient holds the new key")
	}
	later := entryRec(t, nw, org, "nuevo", 1)
	ref.publish(c.nodes[2], later)
	waitFor(t, 10*time.Second, "an entry sealed under the new key on every recipient's node", func() bool {
		return sameDigest(c.nodes[:3], ref.digest())
	})
	if c.nodes[3].State().Has(later.Hash()) {
		t.Fatal("a node without the new key holds an entry published after the rotation")
	}
}

// Replays of older versions, served by an insider through sync and put
// on the topic, after the network moved on (charter version 2, read key
// epoch 2, entry seq 2): every node keeps the newer charter, epoch and
// entry, and does not count the replays against an honest-looking peer.
func TestRollbacksAreRefused(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	c := newCluster(t, nw, 3, []*directory.Identity{nw.Stewards[0], org, nw.Stewards[1]}, nil)
	c.connect(0, 1) // node 2 joins later, so it never sees version 1 of the entry
	ref := &reference{t: t, nw: nw}
	admit := nw.Admit(t, org, "Colectivo Ejemplo")
	v1 := entryRec(t, nw, org, "asesoria", 1)
	ref.publish(c.nodes[0], nw.Genesis, nw.FirstEpoch, admit)
	v2charter, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{StaleAfter: 3600}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	ref.publish(c.nodes[0], nw.Sign(t, v2charter, nw.Stewards[0], nw.Stewards[1]))
	v2 := entryRec(t, nw, org, "asesoria", 2)
	ref.publish(c.nodes[1], v1, v2)
	waitFor(t, 15*time.Second, "the first two nodes to agree", func() bool { return sameDigest(c.nodes[:2], ref.digest()) })
	c.connect(2, 0)
	c.connect(2, 1)
	waitFor(t, 15*time.Second, "the third node to catch up", func() bool { return c.converged(ref.digest()) })
	epochRec, err := c.nodes[0].Rotate(t.Context(), directory.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	// Threshold 2: the rotation needs a second steward's approval.
	approval, err := directory.NewApproval(epochRec, nw.Stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	ref.recs = append(ref.recs, rotationRecs(t, c.nodes[0], epochRec)...)
	ref.publish(c.nodes[0], approval)
	want := ref.digest()
	if !waitUntil(15*time.Second, func() bool { return c.convergedWithKey(want, 2) }) {
		for i, n := range c.nodes {
			t.Logf("node %d: digest ok %v, charter %d, epoch %d, key epoch %d", i, n.State().Digest() == want, n.State().Charter().Version, n.State().CurrentEpoch(), n.Status().KeyEpoch)
		}
		t.Fatal("timed out waiting for charter 2, epoch 2 and entry seq 2 everywhere")
	}

	// The insider holds the epoch-1 key and replays the old world.
	m := c.attacker()
	old := []*directory.Record{nw.Genesis, admit, v1}
	insiderServer(m, nw.ID, 1, nw.Key, old)
	topic := rawTopic(t, m, nw.Key)
	recs := c.recordAll()
	c.connectAll(m)
	for _, n := range c.nodes {
		if _, _, err := n.sync.session(m.ID()); err != nil {
			t.Fatalf("sync with the replaying insider: %v", err)
		}
	}
	waitFor(t, 10*time.Second, "the replaying insider on the topic", func() bool { return len(topic.ListPeers()) > 0 })
	for _, r := range old {
		topic.publishRecord(t.Context(), r, directory.Seal(r, nw.Key))
	}
	// Node 2 never had version 1: it pulled it from the insider and refused it as stale.
	waitFor(t, 10*time.Second, "the node that never had version 1 to refuse it", func() bool {
		return recs[2].count(func(ev Event) bool { return ev.Kind == EventRejected && errors.Is(ev.Err, directory.ErrStale) }) > 0
	})
	for i, n := range c.nodes {
		st := n.State()
		l, _ := st.Lookup("entry/" + org.Public().Hex() + "/asesoria")
		if st.Charter().Version != 2 || st.CurrentEpoch() != 2 || n.Status().KeyEpoch != 2 || l.Entry.Seq != 2 || st.Digest() != want {
			t.Fatalf("node %d rolled back: charter %d, epoch %d, key epoch %d, entry seq %d", i, st.Charter().Version, st.CurrentEpoch(), n.Status().KeyEpoch, l.Entry.Seq)
		}
		if n.sync.appScore(m.ID()) < 0 {
			t.Fatalf("node %d penalized a peer for serving an outdated record, which honest peers do", i)
		}
	}
}

// A node whose peers all go away (or are cut off) shows its copy as
// stale once the charter's stale_after has passed, and entries it holds
// stop showing when they expire, however long it is fed nothing: a freeze
// cannot keep an old directory looking current. Expiry runs on the
// directory clock (Config.Now, faked here); "fresh as of" on the wall
// clock, so the charter here sets stale_after to two seconds.
func TestFrozenNodeGoesStaleAndItsEntriesExpire(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	stewards := slices.Clone(nw.Charter.Stewards)
	genesis, err := directory.NewGenesis("Red congelada", stewards, 2, directory.Policy{StaleAfter: 2}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	nw.Charter, nw.ID = genesis, directory.GenesisIDOf(genesis)
	nw.Genesis = nw.Sign(t, genesis, nw.Stewards...)
	org := dirtest.MustIdentity(t)
	var clock atomic.Int64
	clock.Store(nw.Now.Unix())
	c := newCluster(t, nw, 2, []*directory.Identity{nw.Stewards[0], org}, func(_ int, cfg *Config) {
		cfg.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
		cfg.SyncInterval = 300 * time.Millisecond
		cfg.ExpireInterval = 200 * time.Millisecond
	})
	c.connect(0, 1)
	a, b := c.nodes[0], c.nodes[1]
	ref := &reference{t: t, nw: nw}
	e := entryRec(t, nw, org, "asesoria", 1) // expires in 90 days
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), e)
	// The entry can arrive before the genesis (it waits in the pool), so
	// wait for both.
	waitFor(t, 10*time.Second, "the second node to hold the entry and the charter", func() bool {
		return b.State().Has(e.Hash()) && b.State().Charter() != nil
	})
	bound := b.State().Charter().Policy.StaleBound()
	stale := func() bool { return time.Since(b.Status().FreshAsOf) > bound }
	waitFor(t, 5*time.Second, "the second node to be fresh while its peer answers", func() bool { return !stale() })

	// The freeze: its only peer is cut off.
	if err := c.mn.UnlinkPeers(a.Host().ID(), b.Host().ID()); err != nil {
		t.Fatal(err)
	}
	c.mn.DisconnectPeers(a.Host().ID(), b.Host().ID())
	frozen := time.Now()
	waitFor(t, bound+5*time.Second, "the frozen node to show its copy as stale", stale)
	t.Logf("frozen node stale %s after the freeze (stale_after %s); fresh as of %s ago",
		time.Since(frozen).Round(10*time.Millisecond), bound, time.Since(b.Status().FreshAsOf).Round(10*time.Millisecond))
	if len(b.State().Search(directory.Query{Text: "asesoria"})) != 1 {
		t.Fatal("a stale copy is still a copy: the entry should show, marked stale")
	}

	// Ninety days on the directory clock: the entry expires on the frozen
	// node, and the same record replayed to it now is refused.
	clock.Add(91 * 24 * 3600)
	waitFor(t, 5*time.Second, "the frozen node's entry to expire", func() bool {
		return len(b.State().Search(directory.Query{Text: "asesoria"})) == 0 && !b.State().Has(e.Hash())
	})
	if _, err := b.Publish(t.Context(), entryRec(t, nw, org, "otra", 1)); !errors.Is(err, directory.ErrExpired) {
		t.Fatalf("an entry expired on arrival: %v, want ErrExpired", err)
	}
}

// A reader's device is seized, its key revoked by two stewards and the
// read key rotated; the device holds only the epoch-1 key. It seals 200
// entries signed by throwaway keys under that key (such records used to
// wait in every pool for an admission that never comes). Since admission
// at the connection the member's node cuts the device first, so the
// records come from a peer past admission that kept the old key: 100 by
// gossip and 100 by sync.
// Neither that node nor the two behind it (a steward's and another
// member's) stores one, so none is forwarded; entries of the members still
// reach every node that holds the new key.
func TestRevokedReaderCannotFillNodesUnderOldKey(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, org2, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgM := testConfig(t, nw, org, t.TempDir())
	cfgM.Bootstrap = []string{addr(s)}
	m := startNode(t, cfgM)
	cfgX := testConfig(t, nw, org2, t.TempDir())
	cfgX.Bootstrap = []string{addr(s)}
	x := startNode(t, cfgX)
	cfgR := testConfig(t, nw, reader, t.TempDir())
	cfgR.Bootstrap = []string{addr(m)}
	r := startNode(t, cfgR)
	honest := []*Node{s, m, x}

	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Uno"), nw.Admit(t, org2, "Colectivo Dos"))
	ref.publish(m, nw.Vouch(t, org, reader))
	waitFor(t, 15*time.Second, "the reader everywhere", func() bool { return sameDigest(append(honest, r), ref.digest()) })

	rev := nw.RevokeBy(t, reader.Public())
	ref.publish(s, rev)
	epochRec, err := s.Rotate(t.Context(), rev.ProposalID())
	if err != nil {
		t.Fatal(err)
	}
	approval, err := directory.NewApproval(epochRec, nw.Stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	ref.recs = append(ref.recs, rotationRecs(t, s, epochRec)...)
	ref.publish(s, approval)
	waitFor(t, 15*time.Second, "every honest node on epoch 2", func() bool {
		return sameDigest(honest, ref.digest()) && s.Status().KeyEpoch == 2 && m.Status().KeyEpoch == 2 && x.Status().KeyEpoch == 2
	})
	// The device itself is cut off at the connection: the member's node
	// closes it once it holds the revocation (admit.go), so it sends
	// nothing more, by gossip or sync.
	waitFor(t, 5*time.Second, "the member's node to cut the revoked device", func() bool {
		return len(m.Host().Network().ConnsToPeer(r.Host().ID())) == 0 && !slices.Contains(m.govTopic().ListPeers(), r.Host().ID())
	})

	var junk []*directory.Record
	for i := range 200 {
		junk = append(junk, entryRec(t, nw, dirtest.MustIdentity(t), fmt.Sprintf("basura-%d", i), 1))
	}
	byGossip, bySync := junk[:100], junk[100:]
	recs := map[*Node]*recorder{}
	for _, n := range honest {
		recs[n] = record(n)
	}
	// What it would have sent now needs a peer past admission that kept
	// the epoch-1 key (the worst insider: a steward's key): it gossips
	// half the records sealed under that key and serves the other half
	// by sync.
	// Two of them: each invalid message costs its sender score, and a
	// sender is graylisted after about 60, before all 100 would arrive.
	// The attackers size their own send queues: GossipSub's default of
	// 32 messages per peer drops the rest of a burst at the sender, which
	// would test only how fast the attacker's own host writes.
	bigQueue := pubsub.WithPeerOutboundQueueSize(len(byGossip))
	ins, topic := gossipAttackerWith(t, nw, m, nil, bigQueue)
	insiderServer(ins, nw.ID, 1, nw.Key, bySync)
	_, topic2 := gossipAttackerWith(t, nw, m, nil, bigQueue)
	refusedOld := func(n *Node, via Via) int {
		return recs[n].count(func(ev Event) bool {
			return ev.Kind == EventRejected && ev.Via == via && errors.Is(ev.Err, ErrOldSeal)
		})
	}
	isJunk := map[directory.Hash]bool{}
	for _, j := range junk {
		isJunk[j.Hash()] = true
	}
	arrived := func(via Via) int {
		return recs[m].count(func(ev Event) bool {
			return ev.Via == via && (ev.Kind == EventRejected || ev.Kind == EventRecord) && isJunk[ev.Hash]
		})
	}
	// In bursts of ten, each waited for: a burst the size of the whole
	// batch can outrun the recorder's event buffer on a loaded machine,
	// and then the count below would miss refusals that did happen.
	for start := 0; start < len(byGossip); start += 10 {
		for i, j := range byGossip[start:min(start+10, len(byGossip))] {
			tp := topic
			if i%2 == 1 {
				tp = topic2
			}
			if err := tp.publishRecord(t.Context(), j, directory.Seal(j, nw.Key)); err != nil {
				t.Fatal(err)
			}
		}
		want := min(start+10, len(byGossip))
		waitFor(t, 15*time.Second, "the gossiped records to reach the member's node", func() bool { return arrived(ViaGossip) >= want })
	}
	// Sync sessions with the device run on their own every half second;
	// this one only makes sure one has run since the records were there.
	if _, _, err := m.sync.session(ins.ID()); err != nil {
		t.Fatalf("sync with the insider: %v", err)
	}
	waitFor(t, 15*time.Second, "the records the insider holds to reach the member's node by sync", func() bool {
		m.sync.request(ins.ID())
		return arrived(ViaSync) >= len(bySync)
	})

	// The members go on publishing; their entries reach every node that
	// holds the new key. By then sync rounds have run between the honest
	// nodes: whatever one of them had taken would have spread.
	fromM, fromX := entryRec(t, nw, org, "asesoria", 1), entryRec(t, nw, org2, "refugio", 1)
	ref.publish(m, fromM)
	ref.publish(x, fromX)
	want := ref.digest()
	waitFor(t, 15*time.Second, "the members' entries on every honest node", func() bool { return sameDigest(honest, want) })
	time.Sleep(2 * time.Second)
	if !hasNone(honest, junk...) || !sameDigest(honest, want) {
		t.Fatal("a record sealed under the old key by a throwaway key entered an honest node")
	}
	if g, y := refusedOld(m, ViaGossip), refusedOld(m, ViaSync); g < len(byGossip) || y < len(bySync) {
		t.Fatalf("the member's node refused %d gossiped and %d synced records as sealed under the old key, want %d and %d", g, y, len(byGossip), len(bySync))
	}
	for i, n := range honest {
		n.mu.Lock()
		for _, j := range junk {
			if _, ok := n.stored[j.Hash()]; ok {
				n.mu.Unlock()
				t.Fatalf("honest node %d stores a record sealed under the old key by a throwaway key", i)
			}
		}
		n.mu.Unlock()
	}
	if r.State().Has(fromM.Hash()) {
		t.Fatal("the revoked device received an entry published after the rotation")
	}
}
