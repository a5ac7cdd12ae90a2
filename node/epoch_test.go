package node

import (
	"errors"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// After a revocation a steward rotates the read key. Every remaining
// member's node opens its package, has the key saved and seals what it
// publishes from then on under it; the revoked organization's node gets no
// key and, though still connected, receives nothing published since: not
// by gossip, not by sync. A node that restarts without the new key in its
// keystore re-derives it from the stored epoch record.
func TestRotationAfterRevocation(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, revoked := dirtest.MustIdentity(t), dirtest.MustIdentity(t)

	var saveMu sync.Mutex
	saved := map[directory.PublicKey]directory.Keyring{}
	save := func(ks *directory.Keystore) error {
		saveMu.Lock()
		defer saveMu.Unlock()
		saved[ks.Identity.Public()] = maps.Clone(ks.Keys)
		return nil
	}
	savedEpochs := func(id *directory.Identity) []uint64 {
		saveMu.Lock()
		defer saveMu.Unlock()
		return slices.Sorted(maps.Keys(saved[id.Public()]))
	}

	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgS.SaveKeys = save
	s := startNode(t, cfgS)
	cfgA := testConfig(t, nw, org, t.TempDir())
	cfgA.SaveKeys = save
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	cfgR := testConfig(t, nw, revoked, t.TempDir())
	cfgR.Bootstrap = []string{addr(s), addr(a)}
	r := startNode(t, cfgR)
	nodes := []*Node{s, a, r}
	// Once revoked, r gets nothing by sync: it learns what the others
	// publish, its revocation included, by gossip.
	topicUp(t, 2, nodes...)

	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Uno"), nw.Admit(t, revoked, "Colectivo Dos"))
	ref.publish(a, entryRec(t, nw, org, "asesoria", 1))
	ref.publish(r, entryRec(t, nw, revoked, "refugio", 1))
	waitFor(t, 15*time.Second, "everything before the revocation everywhere", func() bool { return sameDigest(nodes, ref.digest()) })
	rev := nw.RevokeBy(t, revoked.Public())
	ref.publish(s, rev)
	want := ref.digest()
	waitFor(t, 15*time.Second, "the revocation everywhere", func() bool { return sameDigest(nodes, want) })

	epochRec, err := s.Rotate(t.Context(), rev.ProposalID())
	if err != nil {
		t.Fatal(err)
	}
	ref.recs = append(ref.recs, rotationRecs(t, s, epochRec)...)
	waitFor(t, 15*time.Second, "the steward's and the member's nodes to adopt the epoch 2 key", func() bool {
		return s.Status().KeyEpoch == 2 && a.Status().KeyEpoch == 2
	})
	if got := savedEpochs(org); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("member's node saved keys for epochs %v, want [1 2]", got)
	}
	if got := r.Status().KeyEpoch; got != 1 {
		t.Fatalf("revoked organization's node holds the key of epoch %d", got)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(a.Keyring())), []uint64{1, 2}) || a.Keyring()[2] != s.Keyring()[2] {
		t.Fatal("the member's node and the steward's node hold different epoch 2 keys")
	}

	// Published after the rotation: sealed under epoch 2.
	later := entryRec(t, nw, org, "nuevo", 1)
	ref.publish(a, later)
	waitFor(t, 15*time.Second, "the steward's node to get the new entry", func() bool { return s.State().Has(later.Hash()) })
	// Deterministic sync sessions from the revoked node to both others:
	// its key is revoked, so both refuse its hello and serve nothing.
	for _, p := range []*Node{s, a} {
		if pulled, _, err := r.sync.session(p.Host().ID()); err == nil || pulled != 0 {
			t.Fatalf("sync from the revoked node: pulled %d, err %v; want a refusal", pulled, err)
		}
	}
	if r.State().Has(later.Hash()) {
		t.Fatal("the revoked organization's node received an entry published after the rotation")
	}
	if _, err := directory.Open(directory.Seal(later, a.Keyring()[2]), nw.ID, r.Keyring()); !errors.Is(err, directory.ErrNoKey) {
		t.Fatalf("revoked node opening an epoch 2 record: %v, want ErrNoKey", err)
	}

	// The member's node restarts with only the epoch 1 key (as if its
	// keystore had not been saved): the stored epoch record, sealed under
	// epoch 1, gives the key back and everything opens.
	a.Close()
	cfgA.SaveKeys = nil
	cfgA.Keystore = &directory.Keystore{Identity: org, Keys: directory.Keyring{1: nw.Key}}
	a2 := startNode(t, cfgA)
	if got := a2.Status().KeyEpoch; got != 2 {
		t.Fatalf("restarted node holds key epoch %d, want 2", got)
	}
	if !a2.State().Has(later.Hash()) {
		t.Fatal("restarted node lost the entry sealed under epoch 2")
	}
	want = ref.digest()
	waitFor(t, 15*time.Second, "steward and member to agree", func() bool { return sameDigest([]*Node{s, a2}, want) })
}

// Keys the network does not back, in a steward's keystore: one numbered
// 2^64-1 (issue 20: the state once let one steward's lone epoch of that
// number take effect, and nodes kept its key after it lapsed), and the key
// of a lone steward's epoch 2 that never took effect. The node never seals
// under either: what it publishes goes under epoch 1, which the member's
// node opens. The first goes at start, the second once its epoch record is
// in the pool and not effective, from the keyring and from the saved
// keystore; a record stored under a dropped key is stored again under one
// the node keeps. Rotate then numbers from the state: 2, not
// max(held)+1, which wrapped to 0.
func TestForeignHighEpochKeyIsNeverUsed(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	const top = math.MaxUint64
	bogusTop, bogus2 := directory.NewReadKey(), directory.NewReadKey()
	lone, lonePages, err := directory.NewEpoch(nw.ID, 2, 1, directory.Hash{}, bogus2,
		[]directory.Recipient{{Key: nw.Stewards[0].Public(), KEM: nw.Stewards[0].KEMPublic()}, {Key: nw.Stewards[1].Public(), KEM: nw.Stewards[1].KEMPublic()}}, nw.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	loneRec := nw.Sign(t, lone, nw.Stewards[1])

	var saveMu sync.Mutex
	var saved directory.Keyring
	savedHas := func(e uint64) bool {
		saveMu.Lock()
		defer saveMu.Unlock()
		_, ok := saved[e]
		return ok
	}
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgS.Datastore = ds
	cfgS.Keystore = &directory.Keystore{Identity: nw.Stewards[0], Keys: directory.Keyring{1: nw.Key, 2: bogus2, top: bogusTop}}
	cfgS.SaveKeys = func(ks *directory.Keystore) error {
		saveMu.Lock()
		defer saveMu.Unlock()
		saved = maps.Clone(ks.Keys)
		return nil
	}
	s := startNode(t, cfgS)
	cfgA := testConfig(t, nw, org, t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)

	storedUnder := func(n *Node, h directory.Hash) (uint64, bool) {
		n.mu.Lock()
		defer n.mu.Unlock()
		e, ok := n.stored[h]
		return e, ok
	}
	if _, ok := s.Keyring()[top]; ok || !savedHas(1) || savedHas(top) {
		t.Fatal("the node kept a key numbered beyond any epoch")
	}
	mustPublish(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Uno"))
	// No epoch is effective yet: epoch 1, not the highest key held.
	early := entryRec(t, nw, org, "temprana", 1)
	mustPublish(t, s, early)
	if e, _ := storedUnder(s, early.Hash()); e != 1 {
		t.Fatalf("before any epoch is effective, an entry was stored under epoch %d, want 1", e)
	}
	mustPublish(t, s, nw.FirstEpoch)
	later := entryRec(t, nw, org, "tardia", 1)
	mustPublish(t, s, later)
	if e, _ := storedUnder(s, later.Hash()); e != 1 {
		t.Fatalf("with epoch 1 effective, an entry was stored under epoch %d, want 1", e)
	}
	waitFor(t, 15*time.Second, "the member's node, on epoch 1, to receive both entries", func() bool {
		return a.State().Has(early.Hash()) && a.State().Has(later.Hash())
	})

	// The lone epoch reaches the node, pending: the key it carries goes.
	mustPublish(t, s, loneRec)
	for _, pg := range lonePages {
		mustPublish(t, s, nw.Sign(t, pg, nw.Stewards[1]))
	}
	if s.State().CurrentEpoch() != 1 {
		t.Fatalf("the lone steward's epoch took effect: current epoch %d", s.State().CurrentEpoch())
	}
	if _, ok := s.Keyring()[2]; ok || savedHas(2) {
		t.Fatal("the node kept the key of an epoch the state does not accept")
	}
	rot, err := s.Rotate(t.Context(), directory.Hash{})
	if err != nil {
		t.Fatalf("Rotate after the foreign keys were dropped: %v", err)
	}
	b, _ := rot.DecodeBody()
	if got := b.(*directory.Epoch).Number; got != 2 {
		t.Fatalf("Rotate numbered the epoch %d, want CurrentEpoch()+1 = 2", got)
	}
	approval, err := directory.NewApproval(rot, nw.Stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, approval)
	waitFor(t, 15*time.Second, "both nodes on the real epoch 2", func() bool {
		return s.Status().KeyEpoch == 2 && a.Status().KeyEpoch == 2
	})
	if k := s.Keyring()[2]; k == bogus2 || k != a.Keyring()[2] {
		t.Fatal("the steward's node holds another epoch 2 key than the member's")
	}

	// A restart with the key numbered 2^64-1 back in the keystore (as
	// saved before this fix) and a record stored under it: the key goes at
	// load, and the record is stored again under epoch 2, so it outlives
	// the key.
	s.Close()
	under := entryRec(t, nw, org, "bajo-llave-ajena", 1)
	if err := newRecordStore(ds).put(t.Context(), under.Hash(), directory.Seal(under, bogusTop)); err != nil {
		t.Fatal(err)
	}
	cfgS.Keystore = &directory.Keystore{Identity: nw.Stewards[0], Keys: directory.Keyring{1: nw.Key, top: bogusTop}}
	s2 := startNode(t, cfgS)
	if _, ok := s2.Keyring()[top]; ok {
		t.Fatal("after a restart the node kept a key numbered beyond any epoch")
	}
	if e, ok := storedUnder(s2, under.Hash()); !ok || e != 2 {
		t.Fatalf("a record stored under the dropped key: stored %v under epoch %d, want epoch 2", ok, e)
	}
	s2.Close()
	cfgS.Keystore = &directory.Keystore{Identity: nw.Stewards[0], Keys: directory.Keyring{1: nw.Key}}
	s3 := startNode(t, cfgS)
	if !s3.State().Has(under.Hash()) || !s3.State().Has(later.Hash()) {
		t.Fatal("records were lost with the dropped key")
	}
}
