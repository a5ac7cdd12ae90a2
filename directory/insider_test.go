package directory_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Issue 19, finding 1: a voucher (or an invite holder) pairs a victim
// reader's signing key with its own encapsulation key, so the next rotation
// seals the victim's package to the attacker. Every admission now carries
// the admitted key's own signature on its KEM key.
func TestKeySubstitutionAtAdmission(t *testing.T) {
	f := newRejectFixture(t)
	nw := f.nw
	victim, attacker := f.reader, dirtest.MustIdentity(t)
	s := f.state(t)

	for name, sig := range map[string][]byte{
		"the attacker's own binding":   attacker.KEMBinding(),
		"the victim's binding, copied": victim.KEMBinding(),
		"no binding":                   nil,
	} {
		grant := &directory.Reader{Key: victim.Public(), KEM: attacker.KEMPublic(), KEMSig: sig, Issued: nw.Now.Unix() + 1}
		if _, err := directory.NewRecord(nw.ID, grant, f.org); !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("%s: a grant pairing the victim's key with the attacker's KEM key: %v, want ErrInvalid", name, err)
		}
		m := &directory.Membership{Charter: 1, Org: victim.Public(), KEM: attacker.KEMPublic(), KEMSig: sig, Name: "Fachada", Issued: nw.Now.Unix()}
		if _, err := directory.NewRecord(nw.ID, m, nw.Stewards[:2]...); !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("%s: a membership pairing the victim's key with the attacker's KEM key: %v, want ErrInvalid", name, err)
		}
	}
	for _, rc := range s.Recipients() {
		if rc.Key == victim.Public() && string(rc.KEM) != string(victim.KEMPublic()) {
			t.Fatal("the victim's package would be sealed to another KEM key")
		}
	}

	// A key that signed two KEM keys (its holder, or whoever seized it)
	// equivocates: stewards see it, and neither key gets the package.
	other, err := directory.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	second := directory.Reader{Key: victim.Public(), KEM: other.KEMPublic(), Issued: nw.Now.Unix() + 2}
	second.KEMSig = signBindingAs(t, victim, other.KEMPublic())
	mustApply(t, s, nw.Sign(t, &second, f.org))
	eq := s.Equivocations()
	if len(eq) != 1 || eq[0].Key != victim.Public() || eq[0].Slot != "kem/"+victim.Public().Hex() {
		t.Fatalf("equivocations %+v, want the victim key's two KEM keys", eq)
	}
	for _, rc := range s.Recipients() {
		if rc.Key == victim.Public() {
			t.Fatal("a key with two signed KEM keys still gets a package sealed to one picked by hash")
		}
	}
}

// signBindingAs makes id's signature on another KEM key, as a key holder
// that signs two would.
func signBindingAs(t *testing.T, id *directory.Identity, kemKey []byte) []byte {
	t.Helper()
	sig := directory.SignKEMBindingForTest(id, kemKey)
	if !directory.VerifyKEMBinding(id.Public(), kemKey, sig) {
		t.Fatal("test binding does not verify")
	}
	return sig
}

// Found in review: each revocation by stewards justifies one rotation by
// one steward, but only the previous epoch's revocation was compared, so
// two honest revocations of the same second let one steward alternate
// between them and move the network through any number of epochs alone,
// choosing every rotation's recipients.
func TestOneStewardRotatesOncePerRevocation(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	rs := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	first, firstPages := nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, rs, st[0], st[1])
	// A seized organization's reader and its own key, revoked in one
	// second by the stewards.
	revA, revB := nw.RevokeBy(t, f.reader.Public()), nw.RevokeBy(t, f.org.Public())
	s := f.state(t, append([]*directory.Record{first, revA, revB}, firstPages...)...)
	lone := []directory.Recipient{{Key: st[2].Public(), KEM: st[2].KEMPublic()}}
	afters := []directory.Hash{revA.ProposalID(), revB.ProposalID()}
	for n := uint64(2); n <= 5; n++ {
		e, pages := nw.Rotation(t, n, 1, afters[n%2], directory.NewReadKey(), lone, st[2])
		for _, r := range append([]*directory.Record{e}, pages...) {
			if _, err := s.Apply(r); err != nil && !errors.Is(err, directory.ErrDuplicate) {
				t.Fatalf("epoch %d: %v", n, err)
			}
		}
	}
	// Epochs 2 and 3 follow one revocation each; 4 and 5 name them again.
	if got := s.CurrentEpoch(); got != 3 {
		t.Fatalf("one steward alone moved the network from epoch 1 to epoch %d on two revocations, want 3", got)
	}
}

// Issue 20, finding 1: one steward revoked a throwaway key, then alone
// signed epoch 2^64−1 sealed to the stewards only, and it took effect.
func TestOneStewardCannotRotateAlone(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	rs := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	epoch := func(n uint64, after directory.Hash, rs []directory.Recipient) *directory.Epoch {
		e, _, err := directory.NewEpoch(nw.ID, n, 1, after, directory.NewReadKey(), rs, nw.Now, directory.DefaultMaxRecordBytes)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	s := f.state(t, nw.Sign(t, epoch(1, directory.Hash{}, rs), st[0], st[1]))

	// The throwaway key's self-revocation is refused: the network never
	// knew the key.
	throwaway := dirtest.MustIdentity(t)
	selfRev := nw.Sign(t, f.revocation(throwaway.Public()), throwaway)
	if _, err := s.Apply(selfRev); !errors.Is(err, directory.ErrPendingSignature) {
		t.Fatalf("self-revocation of a key the network never knew: %v", err)
	}
	// Nor when it comes as the key's approval of it (found in review: the
	// approval's path skipped the check, so any key could make every node
	// keep its self-revocations for good).
	before := s.Stats().Records
	asApproval, err := directory.NewApproval(selfRev, throwaway)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(asApproval); !errors.Is(err, directory.ErrPendingSignature) {
		t.Fatalf("self-revocation of a key the network never knew, as its approval: %v", err)
	}
	if s.Stats().Records != before || s.IsRevoked(throwaway.Public()) {
		t.Fatalf("the refused approval changed the state: %d records (was %d), revoked %v", s.Stats().Records, before, s.IsRevoked(throwaway.Public()))
	}
	// Even a self-revocation of a real recipient lets nobody rotate alone.
	orgRev := nw.Sign(t, f.revocation(f.org.Public()), f.org)
	mustApply(t, s, orgRev)

	huge := &directory.Epoch{Number: 1<<64 - 1, Charter: 1, After: orgRev.ProposalID(), Issued: nw.Now.Unix(), KeyCommit: directory.Hash{1},
		PageHashes: epoch(2, orgRev.ProposalID(), rs[:1]).PageHashes}
	if _, err := directory.NewRecord(nw.ID, huge, st[2]); !errors.Is(err, directory.ErrInvalid) {
		t.Fatalf("epoch 2^64-1: %v, want ErrInvalid", err)
	}
	// A revocation by the stewards, but older than the current epoch: it
	// cannot justify a rotation by one steward now.
	old := f.revocation(f.outsider.Public())
	old.Issued = nw.Now.Add(-time.Hour).Unix()
	oldRev := nw.Sign(t, old, st[0], st[1])
	mustApply(t, s, oldRev)
	for name, rec := range map[string]*directory.Record{
		"after a self-revocation":                nw.Sign(t, epoch(2, orgRev.ProposalID(), rs[:1]), st[2]),
		"skipping a number, by threshold":        nw.Sign(t, epoch(3, directory.Hash{}, rs[:1]), st[1], st[2]),
		"naming a revocation older than epoch 1": nw.Sign(t, epoch(2, oldRev.ProposalID(), rs[:1]), st[2]),
	} {
		if _, err := s.Apply(rec); err != nil && !errors.Is(err, directory.ErrUnknownCharter) {
			t.Fatalf("%s: %v", name, err)
		}
		if n := s.CurrentEpoch(); n != 1 {
			t.Fatalf("%s: one steward moved the network to epoch %d", name, n)
		}
	}
	if got := s.Epochs(); len(got) != 1 || got[0].Number != 1 {
		t.Fatalf("effective epochs %v, want only epoch 1", got)
	}
}

// Issue 19, finding 3: a reader (or a revoked device) signs records with
// fresh keys and every node keeps them. The pool now holds at most a quota
// of what keys that are not admitted members sign.
func TestPoolQuotas(t *testing.T) {
	f := newRejectFixture(t)
	nw := f.nw
	s := f.state(t)
	before := s.Stats().Records

	// One fresh key publishes 200 entries: at most the per-key quota wait.
	junk := dirtest.MustIdentity(t)
	taken := 0
	for i := range 200 {
		_, err := s.Apply(nw.Sign(t, dirtest.SampleEntry(fmt.Sprintf("basura-%d", i), 1, nw.Now), junk))
		switch {
		case err == nil:
			taken++
		case !errors.Is(err, directory.ErrQuota):
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	if taken != directory.MaxPendingEntriesPerKey {
		t.Fatalf("one unadmitted key placed %d entries in the pool, want the quota %d", taken, directory.MaxPendingEntriesPerKey)
	}
	// Many fresh keys: the pool's total stays bounded.
	for k := 0; k*directory.MaxPendingEntriesPerKey <= directory.MaxPendingEntries; k++ {
		id := dirtest.MustIdentity(t)
		for i := range directory.MaxPendingEntriesPerKey {
			if _, err := s.Apply(nw.Sign(t, dirtest.SampleEntry(fmt.Sprintf("b-%d", i), 1, nw.Now), id)); err != nil && !errors.Is(err, directory.ErrQuota) {
				t.Fatal(err)
			}
		}
	}
	if got := s.Stats().Records - before; got > directory.MaxPendingEntries {
		t.Fatalf("%d pending entries in the pool, quota %d", got, directory.MaxPendingEntries)
	}
	// A legitimate organization still publishes.
	mustApply(t, s, nw.Entry(t, f.org, "albergue", 1))

	// Self-revocations of fresh keys and memberships citing a charter far
	// ahead are refused; proposals waiting for a charter are bounded.
	for i := range 50 {
		id := dirtest.MustIdentity(t)
		if _, err := s.Apply(nw.Sign(t, f.revocation(id.Public()), id)); !errors.Is(err, directory.ErrPendingSignature) {
			t.Fatalf("self-revocation %d of a fresh key: %v", i, err)
		}
	}
	far := f.membership(dirtest.MustIdentity(t), nw.Now)
	far.Charter = 1 << 40
	if _, err := s.Apply(nw.Sign(t, far, junk)); !errors.Is(err, directory.ErrUnknownCharter) {
		t.Fatalf("membership citing charter 2^40: %v", err)
	}
	waiting := 0
	for range directory.MaxWaitingProposals + 20 {
		m := f.membership(dirtest.MustIdentity(t), nw.Now)
		m.Charter = 2
		if _, err := s.Apply(nw.Sign(t, m, junk)); err == nil {
			waiting++
		} else if !errors.Is(err, directory.ErrQuota) {
			t.Fatal(err)
		}
	}
	if waiting != directory.MaxWaitingProposals {
		t.Fatalf("%d proposals wait for charter 2, quota %d", waiting, directory.MaxWaitingProposals)
	}
	// Once charter 2 is linked, the ones no steward of it signed go.
	amend, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Apply(nw.Sign(t, amend, nw.Stewards[:2]...))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Dropped) < directory.MaxWaitingProposals {
		t.Fatalf("linking charter 2 dropped %d records, want the %d junk proposals", len(a.Dropped), directory.MaxWaitingProposals)
	}
}

// Slots remember a bounded number of seqs however often an entry changes
// (issue 21, finding 5).
func TestSlotMemoryBounded(t *testing.T) {
	f := newRejectFixture(t)
	s := f.state(t)
	for seq := uint64(3); seq < 200; seq++ {
		mustApply(t, s, f.entry(t, f.org, seq, nil))
	}
	if n := directory.SeenSeqsForTest(s, f.org.Public(), "asesoria"); n > 8 {
		t.Fatalf("the slot remembers %d seqs after 200 updates", n)
	}
	// A replay of an old version is still refused as stale.
	if _, err := s.Apply(f.entry(t, f.org, 5, nil)); !errors.Is(err, directory.ErrStale) {
		t.Fatalf("replay of seq 5: %v", err)
	}
}

// Records are accepted up to the protocol's 262,144 bytes whatever the
// charter says, so the pending pool is bounded in bytes as well as in
// count: fresh keys publishing entries near the largest the field limits
// allow (~30 KB) fill at most MaxPendingEntryBytes, where the count quota
// alone let them take about twice that.
func TestPendingPoolBoundedInBytes(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	s := nw.State()
	if _, err := s.Apply(nw.Genesis); err != nil {
		t.Fatal(err)
	}
	big := func(id *directory.Identity, name string) *directory.Record {
		e := dirtest.SampleEntry(name, 1, nw.Now)
		e.Service.Description = strings.Repeat("ñ", 4000)
		e.Service.Areas = nil
		for range 32 {
			e.Service.Areas = append(e.Service.Areas, directory.Area{City: strings.Repeat("ñ", 120), Text: strings.Repeat("ñ", 200)})
		}
		return nw.Sign(t, e, id)
	}
	refused := 0
	for k := 0; k*directory.MaxPendingEntriesPerKey < directory.MaxPendingEntries; k++ {
		id := dirtest.MustIdentity(t)
		for i := range directory.MaxPendingEntriesPerKey {
			switch _, err := s.Apply(big(id, fmt.Sprintf("g-%d", i))); {
			case errors.Is(err, directory.ErrQuota):
				refused++
			case err != nil:
				t.Fatal(err)
			}
		}
	}
	n, b := 0, 0
	for _, r := range s.Records() {
		if r.Type == directory.TypeEntry {
			n++
			b += len(r.Encode())
		}
	}
	if b > directory.MaxPendingEntryBytes || refused == 0 {
		t.Fatalf("unadmitted keys placed %d entries, %d bytes, in the pool (%d refused); at most %d bytes", n, b, refused, directory.MaxPendingEntryBytes)
	}
	t.Logf("%d entries of %d bytes from unadmitted keys: %d pooled, %d bytes, %d refused",
		directory.MaxPendingEntries, len(big(dirtest.MustIdentity(t), "x").Encode()), n, b, refused)
}
