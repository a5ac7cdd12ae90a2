package directory_test

import (
	"fmt"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// BenchmarkApplyGovernanceWithJunk is issue 19's finding 4: applying one
// governance record used to re-derive the view over every revoked key ×
// every reader grant (13 ms with 1,000 of each). Here 50 organizations are
// members and the pool holds
// 10,000 reader grants, a tenth of them self-revoked, and the full quota of
// junk that keys not admitted can leave (pending entries and proposals
// waiting for a charter); each iteration admits one more organization. The
// records arrive decoded and verified, as Open hands them over, so the
// time is the state's alone.
//
//	go test -run '^$' -bench ApplyGovernanceWithJunk -benchtime 200x ./directory/
func BenchmarkApplyGovernanceWithJunk(b *testing.B) {
	nw, s, org, apply := fiftyMembers(b)
	const grants = 10000
	for i := range grants {
		reader := dirtest.MustIdentity(b)
		apply(nw.Vouch(b, org, reader))
		if i%10 == 0 {
			apply(nw.Sign(b, &directory.Revocation{Key: reader.Public(), Issued: nw.Now.Unix()}, reader))
		}
	}
	pending := 0
	for pending < directory.MaxPendingEntries {
		id := dirtest.MustIdentity(b)
		for i := range directory.MaxPendingEntriesPerKey {
			apply(nw.Sign(b, dirtest.SampleEntry(fmt.Sprintf("basura-%d", i), 1, nw.Now), id))
			pending++
		}
	}
	junk := dirtest.MustIdentity(b)
	for range directory.MaxWaitingProposals {
		m := &directory.Membership{Charter: 2, Org: dirtest.MustIdentity(b).Public(), Name: "Basura", Issued: nw.Now.Unix()}
		id := dirtest.MustIdentity(b)
		m.Org, m.KEM, m.KEMSig = id.Public(), id.KEMPublic(), id.KEMBinding()
		apply(nw.Sign(b, m, junk))
	}
	b.Logf("pool: %+v", s.Stats())

	recs := make([]*directory.Record, b.N)
	for i := range recs {
		// Decoded as a node receives it, signatures already checked by
		// Open: what is timed is the state's work, not Ed25519.
		r, err := directory.DecodeRecord(nw.Admit(b, dirtest.MustIdentity(b), fmt.Sprintf("Organización %d", i)).Encode())
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = r
	}
	b.ResetTimer()
	for _, r := range recs {
		if _, err := s.Apply(r); err != nil {
			b.Fatal(err)
		}
	}
}

// fiftyMembers is a state of a network of three stewards (threshold 2)
// under its genesis charter, with 50 member organizations, org among
// them, and apply, which fails b when the state refuses a record.
func fiftyMembers(b *testing.B) (nw *dirtest.Network, s *directory.State, org *directory.Identity, apply func(*directory.Record)) {
	nw = dirtest.New(b, 3, 2)
	s = nw.State()
	org = dirtest.MustIdentity(b)
	apply = func(r *directory.Record) {
		b.Helper()
		if _, err := s.Apply(r); err != nil {
			b.Fatal(err)
		}
	}
	apply(nw.Genesis)
	apply(nw.Admit(b, org, "Colectivo Ejemplo"))
	for i := range 49 {
		apply(nw.Admit(b, dirtest.MustIdentity(b), fmt.Sprintf("Colectivo %d", i)))
	}
	return nw, s, org, apply
}
