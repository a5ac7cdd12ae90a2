package node

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

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
	ref.recs = append(ref.recs, epochRec)
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
	if _, err := directory.Open(directory.Seal(later, 2, a.Keyring()[2]), nw.ID, r.Keyring()); !errors.Is(err, directory.ErrNoKey) {
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
