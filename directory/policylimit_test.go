package directory_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// SECURITY.md open issue 2: an amendment that lowers max_entry_lifetime or
// max_record_bytes used to be checked against on arrival, so a node that
// got the entry first kept it visible for good and a node that got the
// amendment first refused it for good. Now both accept it and neither
// shows it while the lower limit is in force, and an amendment raising the
// limit again brings it back everywhere.
func TestPolicyTighteningKeepsOneDigest(t *testing.T) {
	day := 24 * time.Hour
	for _, c := range []struct {
		name   string
		policy directory.Policy
		entry  func(nw *dirtest.Network) *directory.Entry
	}{
		{"lower max_entry_lifetime", directory.Policy{MaxEntryLifetime: uint32(30 * day / time.Second)},
			func(nw *dirtest.Network) *directory.Entry { return dirtest.SampleEntry("asesoria", 1, nw.Now) }}, // 90 days
		{"lower max_record_bytes", directory.Policy{MaxRecordBytes: 4096},
			func(nw *dirtest.Network) *directory.Entry { return bigEntry(nw, "asesoria", 1, 4000) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			nw := dirtest.New(t, 3, 2)
			org := dirtest.MustIdentity(t)
			v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, c.policy, nw.Now)
			if err != nil {
				t.Fatal(err)
			}
			amend := nw.Sign(t, v2, nw.Stewards[:2]...)
			admit, entry := nw.Admit(t, org, "Colectivo Ejemplo"), nw.Sign(t, c.entry(nw), org)

			unamended := nw.State()
			mustApply(t, unamended, nw.Genesis, admit, entry)
			if got := visibleIDs(unamended); !slices.Equal(got, []string{"asesoria"}) {
				t.Fatalf("under the genesis charter the entry is not shown: %v", got)
			}
			entryFirst, amendFirst := nw.State(), nw.State()
			mustApply(t, entryFirst, nw.Genesis, admit, entry, amend)
			mustApply(t, amendFirst, nw.Genesis, admit, amend, entry)
			for name, s := range map[string]*directory.State{"entry first": entryFirst, "amendment first": amendFirst} {
				if got := visibleIDs(s); len(got) != 0 {
					t.Errorf("%s: an entry outside the amended charter is shown: %v", name, got)
				}
				if u := s.Usage(org.Public()); u.Held != 1 {
					t.Errorf("%s: usage %+v, want the entry held", name, u)
				}
			}
			if entryFirst.Digest() != amendFirst.Digest() {
				t.Fatal("same records, different digests: the order of the amendment and the entry decides")
			}
			if entryFirst.Digest() == unamended.Digest() {
				t.Fatal("the amendment changed nothing the digest covers")
			}

			// Raising the limit again shows the entry everywhere: it was
			// held, not refused.
			v3, err := directory.Amend(v2, amend.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
			if err != nil {
				t.Fatal(err)
			}
			raise := nw.Sign(t, v3, nw.Stewards[:2]...)
			mustApply(t, entryFirst, raise)
			mustApply(t, amendFirst, raise)
			for name, s := range map[string]*directory.State{"entry first": entryFirst, "amendment first": amendFirst} {
				if got := visibleIDs(s); !slices.Equal(got, []string{"asesoria"}) {
					t.Errorf("%s: after the limit is raised again: %v", name, got)
				}
			}
			if entryFirst.Digest() != amendFirst.Digest() {
				t.Fatal("digests differ after the limit is raised again")
			}
		})
	}
}

// Governance and every other record is checked against the protocol's hard
// size limit only, never the charter's: an epoch larger than a lowered
// max_record_bytes is pooled on every node whether or not the amendment
// came first. What a node refuses on arrival it can never take back, so
// the charter's limit can only decide what is shown.
func TestRecordsAboveLoweredLimitAccepted(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{MaxRecordBytes: 4096}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	amend := nw.Sign(t, v2, nw.Stewards[:2]...)
	big := &directory.Epoch{Number: 2, Charter: 2, Issued: nw.Now.Unix(), KeyCommit: directory.Hash{1}}
	for i := range 200 {
		big.PageHashes = append(big.PageHashes, directory.Hash{byte(i), byte(i >> 8)})
	}
	epoch := nw.Sign(t, big, nw.Stewards[:2]...)
	if n := len(epoch.Encode()); n <= 4096 {
		t.Fatalf("the epoch takes %d bytes, not above the lowered limit", n)
	}
	a, b := nw.State(), nw.State()
	mustApply(t, a, nw.Genesis, amend, epoch)
	mustApply(t, b, nw.Genesis, epoch, amend)
	if !a.Has(epoch.Hash()) || !b.Has(epoch.Hash()) || a.Digest() != b.Digest() {
		t.Fatal("a record above the lowered limit is held by one order and not the other")
	}
}

// An entry's expiry must lie in the protocol's date range: with the
// charter's lifetime no longer checked on arrival, that range is what
// bounds how long an entry can sit in the pool.
func TestEntryExpiryWithinDateRange(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	e := dirtest.SampleEntry("asesoria", 1, nw.Now)
	e.Expires = time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	_, err := directory.NewRecord(nw.ID, e, dirtest.MustIdentity(t))
	if !errors.Is(err, directory.ErrInvalid) {
		t.Fatalf("expiry in 2201: %v, want %v", err, directory.ErrInvalid)
	}
}
