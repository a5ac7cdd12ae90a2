package directory_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Evidence of an equivocation shows it on a node that holds one version
// or none, and in a state rebuilt from the pool (a restart): without it
// the losing version is pooled nowhere and the report is lost. Forged
// evidence is refused at decoding; a revocation settles it.
func TestEvidenceRules(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reporter := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	admit := nw.Admit(t, org, "Colectivo")
	a := nw.Entry(t, org, "asesoria", 1)
	b := nw.Sign(t, &directory.Entry{ID: "asesoria", Seq: 1, Issued: nw.Now.Unix(), Expires: nw.Now.Unix() + 3600,
		Service: dirtest.SampleEntry("asesoria", 1, nw.Now).Service}, org)
	ev, err := directory.NewEvidence(b, a, reporter)
	if err != nil {
		t.Fatal(err)
	}
	slot := "entry/" + org.Public().Hex() + "/asesoria"
	shows := func(s *directory.State) bool {
		eqs := s.Equivocations()
		return len(eqs) == 1 && eqs[0].Slot == slot && eqs[0].Key == org.Public() &&
			slices.Contains(eqs[0].Hashes, a.Hash()) && slices.Contains(eqs[0].Hashes, b.Hash())
	}

	// The node that saw both versions: the loser leaves no trace in the
	// pool, so a restart loses the report unless evidence is held.
	seen := nw.State()
	for _, r := range []*directory.Record{nw.Genesis, admit, a, b} {
		seen.Apply(decoded(t, r))
	}
	if !shows(seen) {
		t.Fatalf("both versions applied: %+v", seen.Equivocations())
	}
	restarted := nw.State()
	for _, r := range seen.Records() {
		restarted.Apply(decoded(t, r))
	}
	if len(restarted.Equivocations()) != 0 {
		t.Fatal("a restart kept the report without evidence: the test shows nothing")
	}
	if _, err := seen.Apply(decoded(t, ev)); err != nil {
		t.Fatalf("evidence: %v", err)
	}
	restarted = nw.State()
	for _, r := range seen.Records() {
		restarted.Apply(decoded(t, r))
	}
	if !shows(restarted) {
		t.Fatalf("restart with evidence pooled: %+v", restarted.Equivocations())
	}

	// A node that holds neither version, evidence arriving first.
	fresh := nw.State()
	for _, r := range []*directory.Record{ev, nw.Genesis, admit} {
		fresh.Apply(decoded(t, r))
	}
	if !shows(fresh) || !fresh.Has(ev.Hash()) {
		t.Fatalf("evidence alone: %+v", fresh.Equivocations())
	}
	// A second report of the same conflict: one is held, the lower hash.
	ev2, _ := directory.NewEvidence(a, b, dirtest.MustIdentity(t))
	_, err = fresh.Apply(decoded(t, ev2))
	held := 0
	for _, r := range []*directory.Record{ev, ev2} {
		if fresh.Has(r.Hash()) {
			held++
		}
	}
	if held != 1 || len(fresh.Equivocations()) != 1 {
		t.Fatalf("two reports of one conflict: %d held (%v)", held, err)
	}

	// Forgeries: not a conflict, two keys, wrong order, not entries.
	other := dirtest.MustIdentity(t)
	for name, body := range map[string]*directory.Evidence{
		"one record twice": {First: a.Encode(), Second: a.Encode()},
		"different seqs":   {First: a.Encode(), Second: nw.Entry(t, org, "asesoria", 2).Encode()},
		"two keys":         {First: a.Encode(), Second: nw.Entry(t, other, "asesoria", 1).Encode()},
		"not entries":      {First: nw.Genesis.Encode(), Second: admit.Encode()},
		"garbage":          {First: []byte{1, 2, 3}, Second: a.Encode()},
	} {
		if _, err := directory.NewRecord(nw.ID, body, reporter); err == nil {
			t.Errorf("%s: evidence built", name)
		}
	}
	swapped := &directory.Evidence{First: ev2Body(t, ev).Second, Second: ev2Body(t, ev).First}
	if _, err := directory.NewRecord(nw.ID, swapped, reporter); err == nil {
		t.Error("evidence with its records out of order built: one conflict would have two bodies")
	}

	// Revoking the equivocator settles it: the evidence goes, and more is
	// refused.
	if _, err := fresh.Apply(nw.RevokeBy(t, org.Public())); err != nil {
		t.Fatal(err)
	}
	if len(fresh.Equivocations()) != 0 || fresh.Has(ev.Hash()) || fresh.Has(ev2.Hash()) {
		t.Fatal("the revoked key's conflict is still reported")
	}
	_, err = fresh.Apply(decoded(t, ev))
	wantReject(t, err, directory.ErrRevoked)
}

func ev2Body(t testing.TB, r *directory.Record) *directory.Evidence {
	b, err := r.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	return b.(*directory.Evidence)
}

// A member that equivocates over and over (two variants of many entries)
// leaves one piece of evidence on every node, not one per conflict, in
// any order: otherwise it could make every node store evidence without
// end, up to twice the record limit a piece.
func TestEvidenceIsOnePiecePerKey(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reporter := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	admit := nw.Admit(t, org, "Colectivo")
	var evs []*directory.Record
	for i := range 20 {
		id := fmt.Sprintf("servicio-%d", i)
		a := nw.Entry(t, org, id, 1)
		other := dirtest.SampleEntry(id, 1, nw.Now)
		other.Service.Name = "Otro nombre"
		ev, err := directory.NewEvidence(a, nw.Sign(t, other, org), reporter)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	var digest directory.Hash
	for order := range 3 {
		s := nw.State()
		recs := append([]*directory.Record{nw.Genesis, admit}, evs...)
		if order > 0 {
			slices.Reverse(recs[2:])
		}
		if order == 2 {
			recs = append(evs, nw.Genesis, admit)
		}
		for _, r := range recs {
			s.Apply(decoded(t, r))
		}
		held := 0
		for _, ev := range evs {
			if s.Has(ev.Hash()) {
				held++
			}
		}
		if held != 1 || len(s.Equivocations()) != 1 {
			t.Fatalf("order %d: %d pieces of evidence held against one key, %d equivocations shown; want 1 and 1", order, held, len(s.Equivocations()))
		}
		if order == 0 {
			digest = s.Digest()
		} else if s.Digest() != digest {
			t.Fatalf("order %d gives another digest", order)
		}
	}
}
