package daemon

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// After the stewards revoke a reader's device, steward 0's daemon rotates
// alone, sealing to every steward and the organization; the rotation takes
// effect at once. A compromised steward 2 signs alone a rival epoch 2
// sealed to itself only, its proposal ID ground below the honest one's, so
// that it wins the tie of weight. Steward 1's daemon must approve the
// honest rotation in both cases, effective or beaten: that approval is what
// makes it outweigh the rival (it used to approve only epochs of the next
// number that were not yet effective, so the rival stayed). It approves
// the rival never, and once the honest one holds the threshold no other
// steward approves it again.
func TestCoStewardApprovesTheLoneRotationARivalContests(t *testing.T) {
	nw, org, _, all, e1, e1Pages, rev := revokedReaderNetwork(t)
	st := nw.Stewards
	honest, honestPages := nw.Rotation(t, 2, 1, rev.ProposalID(), directory.NewReadKey(), all[:4], st[0])
	var rival []*directory.Record
	for tries := 0; rival == nil; tries++ {
		r, pages := nw.Rotation(t, 2, 1, rev.ProposalID(), directory.NewReadKey(), all[2:3], st[2])
		a, b := r.ProposalID(), honest.ProposalID()
		if bytes.Compare(a[:], b[:]) < 0 {
			rival = append([]*directory.Record{r}, pages...)
		}
		if tries > 200 {
			t.Fatal("could not grind a lower proposal ID")
		}
	}
	base := append([]*directory.Record{nw.Genesis, e1, nw.Admit(t, org, "Uno"), rev}, e1Pages...)
	base = append(append(base, honest), honestPages...)
	apply := func(st *directory.State, recs ...*directory.Record) {
		t.Helper()
		for _, r := range recs {
			if _, err := st.Apply(r); err != nil {
				t.Fatalf("%s: %v", r.Type, err)
			}
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	offered := func(s *directory.State, me *directory.Identity) []directory.Hash {
		var ids []directory.Hash
		for _, p := range rotationsToApprove(s, &rotationWatch{readers: map[directory.PublicKey]bool{}}, me, map[directory.Hash]bool{}, log) {
			ids = append(ids, p.ID)
		}
		return ids
	}

	alone := nw.State()
	apply(alone, base...)
	if got := offered(alone, st[1]); !slices.Equal(got, []directory.Hash{honest.ProposalID()}) {
		t.Errorf("the effective lone rotation: approves %v, want only the honest one", got)
	}

	contested := nw.State()
	apply(contested, base...)
	apply(contested, rival...)
	if eps := contested.Epochs(); eps[len(eps)-1].Number != 2 || contested.HasPackage(eps[len(eps)-1], org.Public()) {
		t.Fatal("the rival did not take epoch 2 before the approval: the test no longer shows what the approval is for")
	}
	if got := offered(contested, st[1]); !slices.Equal(got, []directory.Hash{honest.ProposalID()}) {
		t.Errorf("the beaten lone rotation: approves %v, want only the honest one", got)
	}
	a, err := directory.NewApproval(honest, st[1])
	if err != nil {
		t.Fatal(err)
	}
	apply(contested, a)
	if eps := contested.Epochs(); !contested.HasPackage(eps[len(eps)-1], org.Public()) {
		t.Error("after the approval the rival still holds epoch 2")
	}
	if got := offered(contested, st[2]); len(got) != 0 {
		t.Errorf("with the threshold reached, steward 2 (were it honest) would still approve %v", got)
	}
}

// The compromised steward is quicker: its lone epoch 2, sealed to itself
// only, is the only one when the honest daemons look, so none rotates (the
// revoked key is left out already) and every other reader would stay
// without the key. The lowest-keyed steward that did not sign it answers
// with a rival sealed to everyone, the other honest steward approves that
// rival, and it takes epoch 2. Only one steward answers, and not again
// once an answer is held.
func TestLoneRotationThatCameFirstIsAnsweredWithARival(t *testing.T) {
	nw, org, reader, all, e1, e1Pages, rev := revokedReaderNetwork(t)
	st := nw.Stewards
	attack, attackPages := nw.Rotation(t, 2, 1, rev.ProposalID(), directory.NewReadKey(), all[2:3], st[2])
	s := nw.State()
	apply := func(recs ...*directory.Record) {
		t.Helper()
		for _, r := range recs {
			if _, err := s.Apply(r); err != nil {
				t.Fatalf("%s: %v", r.Type, err)
			}
		}
	}
	apply(append([]*directory.Record{nw.Genesis, e1, nw.Admit(t, org, "Uno"), rev}, e1Pages...)...)
	apply(append([]*directory.Record{attack}, attackPages...)...)
	if eps := s.Epochs(); eps[len(eps)-1].Number != 2 || s.HasPackage(eps[len(eps)-1], st[0].Public()) {
		t.Fatal("the lone rotation does not hold epoch 2: the test no longer shows the attack")
	}
	answerer, other := st[0], st[1]
	if k0, k1 := st[0].Public(), st[1].Public(); bytes.Compare(k1[:], k0[:]) < 0 {
		answerer, other = st[1], st[0]
	}
	if p := rivalNeeded(s, other.Public()); p != nil {
		t.Error("the higher-keyed honest steward answers too: two rivals where one is enough")
	}
	if p := rivalNeeded(s, st[2].Public()); p != nil {
		t.Error("the steward that signed the lone rotation answers it")
	}
	p := rivalNeeded(s, answerer.Public())
	if p == nil || p.ID != attack.ProposalID() {
		t.Fatalf("the lowest-keyed honest steward does not answer the lone rotation: %v", p)
	}
	rival, rivalPages := nw.Rotation(t, 2, 1, rev.ProposalID(), directory.NewReadKey(), all[:4], answerer)
	apply(append([]*directory.Record{rival}, rivalPages...)...)
	if p := rivalNeeded(s, answerer.Public()); p != nil {
		t.Error("answered again though a rival that seals to every steward is held")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var offered []directory.Hash
	for _, p := range rotationsToApprove(s, &rotationWatch{readers: map[directory.PublicKey]bool{}}, other, map[directory.Hash]bool{}, log) {
		offered = append(offered, p.ID)
	}
	if !slices.Equal(offered, []directory.Hash{rival.ProposalID()}) {
		t.Fatalf("the other honest steward approves %v, want only the rival", offered)
	}
	a, err := directory.NewApproval(rival, other)
	if err != nil {
		t.Fatal(err)
	}
	apply(a)
	eps := s.Epochs()
	if cur := eps[len(eps)-1]; cur.Number != 2 || !s.HasPackage(cur, org.Public()) || !s.HasPackage(cur, st[0].Public()) || s.HasPackage(cur, reader.Public()) {
		t.Error("after the approval the rival does not hold epoch 2 with the organization and the stewards in it, and not the revoked reader")
	}
}

// revokedReaderNetwork is a 2-of-3 network whose epoch 1 (e1 and its
// pages) seals to all: the three stewards, an organization and a reader,
// in that order; rev is the stewards' revocation of the reader.
func revokedReaderNetwork(t *testing.T) (nw *dirtest.Network, org, reader *directory.Identity, all []directory.Recipient, e1 *directory.Record, e1Pages []*directory.Record, rev *directory.Record) {
	t.Helper()
	nw = dirtest.New(t, 3, 2)
	st := nw.Stewards
	org, reader = dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	for _, id := range []*directory.Identity{st[0], st[1], st[2], org, reader} {
		all = append(all, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	e1, e1Pages = nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, all, st[0], st[1])
	return nw, org, reader, all, e1, e1Pages, nw.RevokeBy(t, reader.Public())
}
