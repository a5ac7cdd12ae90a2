package daemon

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// epochRecords counts the epoch records, effective or not, in a state.
func epochRecords(st *directory.State) int {
	n := 0
	for _, p := range st.Proposals() {
		if p.Type == directory.TypeEpoch {
			n++
		}
	}
	return n
}

// A reader's node publishes twenty self-revocations of throwaway keys (a
// valid record anyone can make, once the key has a grant pending from a
// voucher that is not a member). None of those keys could read anything,
// so the steward's daemon does not rotate: no new epoch record anywhere.
// (It used to rotate once per revocation: twenty epoch records on every
// node, a keystore save each.)
func TestRevocationsOfStrangersDoNotRotate(t *testing.T) {
	svc := &directory.Service{Name: "Refugio temporal", Status: "active", Categories: []string{"shelter"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "r@example.org"}}}
	steward, org, reader := readerNetwork(t, "Red", "Colectivo", "refugio", svc, "refugio")
	ctx := context.Background()
	st := steward.Node().State()
	before := epochRecords(st)
	var keys []directory.PublicKey
	var revs, pending []*directory.Record
	voucher, err := directory.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		id, err := directory.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		// A grant first: the state takes self-revocations only of keys
		// it has heard of, and a pending grant is enough (a pending entry
		// is not: the revocation drops it, and with it what showed the
		// key).
		now := time.Now()
		e, err := directory.NewRecord(st.Network(), &directory.Reader{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Issued: now.Unix()}, voucher)
		if err != nil {
			t.Fatal(err)
		}
		r, err := directory.NewRecord(st.Network(), &directory.Revocation{Key: id.Public(), Reason: "desechable", Issued: now.Unix()}, id)
		if err != nil {
			t.Fatal(err)
		}
		pending, revs = append(pending, e), append(revs, r)
		keys = append(keys, id.Public())
	}
	for _, e := range pending {
		if _, err := reader.Node().Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 15*time.Second, "the pending grants on every node", func() bool {
		for _, d := range []*Daemon{steward, org} {
			for _, e := range pending {
				if !d.Node().State().Has(e.Hash()) {
					return false
				}
			}
		}
		return true
	})
	for _, r := range revs {
		if _, err := reader.Node().Publish(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 30*time.Second, "the twenty revocations on the steward's node", func() bool {
		if got := epochRecords(st); got != before {
			t.Fatalf("the steward's node holds %d epoch records, %d before the revocations of keys that could read nothing", got, before)
		}
		for _, k := range keys {
			if !st.IsRevoked(k) {
				return false
			}
		}
		return true
	})
	// Past the coalescing window, with room for a rotation to be made and
	// to travel.
	time.Sleep(rotationWindow + 3*time.Second)
	for name, d := range map[string]*Daemon{"steward": steward, "org": org, "reader": reader} {
		s := d.Node().State()
		if got := epochRecords(s); got != before || s.CurrentEpoch() != 1 {
			t.Fatalf("%s's node: %d epoch records (%d before), current epoch %d: revocations of keys that could read nothing caused a rotation", name, got, before, s.CurrentEpoch())
		}
	}
}

// Three members and readers that hold a package in the current epoch are
// revoked by the steward within a second. The steward's daemon rotates
// once: one new epoch, sealed to nobody revoked; the remaining member's
// node adopts it, and the revoked reader's node, still connected, does not
// get it.
func TestRevocationsInAWindowRotateOnce(t *testing.T) {
	svc := &directory.Service{Name: "Asesoría jurídica", Status: "active", Categories: []string{"legal"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "a@example.org"}}}
	steward, org, reader := readerNetwork(t, "Red", "Colectivo", "asesoria", svc, "asesoria")
	ctx := context.Background()
	st := steward.Node().State()
	// Two more readers, vouched by the organization, without a node.
	var others []*directory.Identity
	for range 2 {
		id, err := directory.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		g, err := directory.NewRecord(st.Network(), &directory.Reader{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Issued: time.Now().Unix()}, org.me())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := org.Node().Publish(ctx, g); err != nil {
			t.Fatal(err)
		}
		others = append(others, id)
	}
	waitUntil(t, 15*time.Second, "the readers on the steward's node", func() bool {
		return st.IsReader(others[0].Public()) && st.IsReader(others[1].Public())
	})
	// A rotation by hand, so every one of them holds a package.
	if _, err := steward.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "epoch 2 on the organization's and the reader's nodes", func() bool {
		return org.Node().Status().KeyEpoch == 2 && reader.Node().Status().KeyEpoch == 2
	})
	cur := st.Epochs()[len(st.Epochs())-1]
	revoked := []directory.PublicKey{reader.me().Public(), others[0].Public(), others[1].Public()}
	for _, k := range revoked {
		if !st.HasPackage(cur, k) {
			t.Fatal("a reader has no package in epoch 2; the test proves nothing")
		}
	}
	before := epochRecords(st)
	for _, k := range revoked {
		if _, err := steward.Propose(ctx, api.ProposeRequest{Kind: "revoke", Key: k.Hex(), Reason: "dispositivo incautado"}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, 15*time.Second, "a rotation after the revocations", func() bool { return st.CurrentEpoch() == 3 })
	time.Sleep(rotationWindow + 3*time.Second)
	if got := epochRecords(st); got != before+1 || st.CurrentEpoch() != 3 {
		t.Fatalf("three revocations in a window gave %d new epoch records (current epoch %d), want 1", got-before, st.CurrentEpoch())
	}
	e := st.Epochs()[len(st.Epochs())-1]
	for _, k := range revoked {
		if st.HasPackage(e, k) {
			t.Fatalf("the rotation seals the new key to revoked %s", directory.Fingerprint(k))
		}
	}
	waitUntil(t, 15*time.Second, "the organization's node to adopt epoch 3", func() bool { return org.Node().Status().KeyEpoch == 3 })
	time.Sleep(time.Second)
	if got := reader.Node().Status().KeyEpoch; got != 2 {
		t.Fatalf("the revoked reader's node holds the key of epoch %d", got)
	}
}

// What a co-steward approves on its own (approveRotations): only an epoch
// that follows the current one and names an effective revocation of a key
// that could read it, sealed to every steward and member and to no
// revoked key. Anything else waits for the stewards' deliberate approval.
func TestCoStewardApprovesOnlyTheRotationARevocationCallsFor(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, org2, stranger := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	me := nw.Stewards[1]
	recipient := func(id *directory.Identity) directory.Recipient {
		return directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()}
	}
	var first []directory.Recipient
	for _, id := range append(slices.Clone(nw.Stewards), org, org2) {
		first = append(first, recipient(id))
	}
	e1, e1Pages := nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, first, nw.Stewards[:2]...)
	rev := nw.RevokeBy(t, org.Public())
	// A key that asked to be admitted and was not: its membership has one
	// steward's signature of the two it needs. (A pending entry no longer
	// lets its key's self-revocation in: the revocation drops the entry,
	// and a node that restarted refused it.)
	strangerAsked := nw.AdmitAt(t, 1, stranger, "Tres", nw.Stewards[0])
	selfRev := nw.Sign(t, &directory.Revocation{Key: stranger.Public(), Reason: "desechable", Issued: nw.Now.Unix()}, stranger)
	st := nw.State()
	for _, r := range append([]*directory.Record{nw.Genesis, e1, nw.Admit(t, org, "Uno"), nw.Admit(t, org2, "Dos"), rev, strangerAsked, selfRev}, e1Pages...) {
		if _, err := st.Apply(r); err != nil {
			t.Fatalf("%s: %v", r.Type, err)
		}
	}
	if !st.IsRevoked(org.Public()) || !st.IsRevoked(stranger.Public()) || st.CurrentEpoch() != 1 {
		t.Fatal("the setup did not take")
	}
	cur := st.Epochs()[0]
	// Each rotation reaches this steward's state with its pages, as a
	// co-steward's node would receive it.
	epoch := func(number uint64, after directory.Hash, rs []directory.Recipient) *directory.Epoch {
		r, pages := nw.Rotation(t, number, 1, after, directory.NewReadKey(), rs, nw.Stewards[0])
		for _, pr := range append([]*directory.Record{r}, pages...) {
			if _, err := st.Apply(pr); err != nil {
				t.Fatalf("%s: %v", pr.Type, err)
			}
		}
		b, _ := r.DecodeBody()
		return b.(*directory.Epoch)
	}
	without := func(ids ...*directory.Identity) []directory.Recipient {
		return slices.DeleteFunc(slices.Clone(first), func(r directory.Recipient) bool {
			return slices.ContainsFunc(ids, func(id *directory.Identity) bool { return id.Public() == r.Key })
		})
	}
	if err := checkRotation(st, st.Charter(), cur, epoch(2, rev.ProposalID(), without(org)), me, nil); err != nil {
		t.Fatalf("the rotation the revocation calls for: %v", err)
	}
	for name, e := range map[string]*directory.Epoch{
		"a number ahead":      epoch(3, rev.ProposalID(), without(org)),
		"no revocation named": epoch(2, directory.Hash{}, without(org)),
		"after a revocation of a key that could read nothing": epoch(2, selfRev.ProposalID(), without(org)),
		"sealed to the revoked key":                           epoch(2, rev.ProposalID(), first),
		"leaving out a member":                                epoch(2, rev.ProposalID(), without(org, org2)),
		"leaving out this steward":                            epoch(2, rev.ProposalID(), without(org, me)),
	} {
		if err := checkRotation(st, st.Charter(), cur, e, me, nil); err == nil {
			t.Errorf("%s: approved on its own", name)
		}
	}
}

// The automatic rotation fails three times (as a full disk or a node
// shutting down would make it); the daemon tries again, waiting longer each
// time, until it lands: one new epoch, without the revoked reader.
func TestAutomaticRotationIsRetriedUntilItLands(t *testing.T) {
	svc := &directory.Service{Name: "Atención psicosocial", Status: "active", Categories: []string{"psychosocial"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "p@example.org"}}}
	steward, org, reader := readerNetwork(t, "Red", "Colectivo", "psico", svc, "psicosocial")
	ctx := context.Background()
	st := steward.Node().State()
	if _, err := steward.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "epoch 2 on the reader's node", func() bool { return reader.Node().Status().KeyEpoch == 2 })

	var mu sync.Mutex
	var attempts []time.Time
	steward.mu.Lock()
	steward.rotateAuto = func(ctx context.Context, n *node.Node, after directory.Hash) error {
		mu.Lock()
		attempts = append(attempts, time.Now())
		k := len(attempts)
		mu.Unlock()
		if k <= 3 {
			return fmt.Errorf("attempt %d: %w", k, syscall.ENOSPC)
		}
		_, err := steward.rotate(ctx, n, after)
		return err
	}
	steward.mu.Unlock()
	before := epochRecords(st)
	if _, err := steward.Propose(ctx, api.ProposeRequest{Kind: "revoke", Key: reader.me().Public().Hex(), Reason: "dispositivo incautado"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the rotation to land after three failures", func() bool { return st.CurrentEpoch() == 3 })
	time.Sleep(rotationWindow + time.Second)
	mu.Lock()
	got := slices.Clone(attempts)
	mu.Unlock()
	if len(got) != 4 || epochRecords(st) != before+1 {
		t.Fatalf("%d attempts and %d new epoch records, want 4 and 1", len(got), epochRecords(st)-before)
	}
	for i := 2; i < len(got); i++ {
		if got[i].Sub(got[i-1]) <= got[i-1].Sub(got[i-2]) {
			t.Fatalf("the delays between attempts do not grow: %v", got)
		}
	}
	if st.HasPackage(st.Epochs()[len(st.Epochs())-1], reader.me().Public()) {
		t.Fatal("the rotation seals the new key to the revoked reader")
	}
	waitUntil(t, 15*time.Second, "the organization's node to adopt epoch 3", func() bool { return org.Node().Status().KeyEpoch == 3 })
}
