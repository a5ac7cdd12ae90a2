package directory_test

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// rejectFixture is a small network: three stewards (threshold 2), one
// admitted organization with one entry at seq 2, and one reader it vouches
// for.
type rejectFixture struct {
	nw       *dirtest.Network
	org      *directory.Identity
	reader   *directory.Identity
	outsider *directory.Identity
	base     []*directory.Record
}

func newRejectFixture(t *testing.T) *rejectFixture {
	nw := dirtest.New(t, 3, 2)
	f := &rejectFixture{nw: nw, org: dirtest.MustIdentity(t), reader: dirtest.MustIdentity(t), outsider: dirtest.MustIdentity(t)}
	f.base = []*directory.Record{
		nw.Genesis,
		nw.Admit(t, f.org, "Colectivo Ejemplo"),
		nw.Vouch(t, f.org, f.reader),
		nw.Entry(t, f.org, "asesoria", 2),
	}
	return f
}

// state applies the base records and then extra, each of which must be
// accepted.
func (f *rejectFixture) state(t *testing.T, extra ...*directory.Record) *directory.State {
	t.Helper()
	s := f.nw.State()
	mustApply(t, s, f.base...)
	mustApply(t, s, extra...)
	return s
}

func (f *rejectFixture) entry(t *testing.T, signer *directory.Identity, seq uint64, edit func(*directory.Entry)) *directory.Record {
	t.Helper()
	e := dirtest.SampleEntry("asesoria", seq, f.nw.Now)
	if edit != nil {
		edit(e)
	}
	return f.nw.Sign(t, e, signer)
}

func (f *rejectFixture) membership(org *directory.Identity, issued time.Time) *directory.Membership {
	return &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: "Red Nueva", Issued: issued.Unix()}
}

func (f *rejectFixture) revocation(key directory.PublicKey) *directory.Revocation {
	return &directory.Revocation{Key: key, Charter: 1, Reason: "dispositivo incautado", Issued: f.nw.Now.Unix()}
}

// clone copies r through its exported fields only, so nothing marks the
// copy as verified and changing it leaves r alone.
func clone(r *directory.Record) *directory.Record {
	c := &directory.Record{Version: r.Version, Type: r.Type, Network: r.Network, Body: slices.Clone(r.Body)}
	for _, s := range r.Sigs {
		c.Sigs = append(c.Sigs, directory.Signature{Key: s.Key, Sig: slices.Clone(s.Sig)})
	}
	return c
}

// flipNameCase changes the case of one letter of the service name inside
// an entry record's body: the body still decodes and passes every field
// check, so only the signature can catch it.
func flipNameCase(t testing.TB, r *directory.Record) *directory.Record {
	t.Helper()
	c := clone(r)
	i := bytes.Index(c.Body, []byte("Asesor"))
	if i < 0 {
		t.Fatal("sample entry body does not contain its service name")
	}
	c.Body[i] ^= 0x20
	return c
}

// resign signs a record of the given envelope fields, whatever they hold.
func resign(r *directory.Record, signers ...*directory.Identity) *directory.Record {
	c := clone(r)
	c.Sigs = nil
	for _, s := range signers {
		c.AddSignature(s)
	}
	return c
}

type snapshot struct {
	Digest        directory.Hash
	Stats         directory.Stats
	Hashes        []directory.Hash
	Equivocations []directory.Equivocation
	Proposals     int
}

func snap(s *directory.State) snapshot {
	return snapshot{s.Digest(), s.Stats(), s.Hashes(), s.Equivocations(), len(s.Proposals())}
}

// TestApplyRejects names every reason State.Apply refuses a record, and
// checks that a refused record leaves no trace: same digest, same counts,
// same pool.
func TestApplyRejects(t *testing.T) {
	f := newRejectFixture(t)
	nw, now := f.nw, f.nw.Now
	st := nw.Stewards
	other := dirtest.New(t, 3, 2)

	pending := nw.Sign(t, f.membership(f.outsider, now), st[0])
	revokeS2 := nw.Sign(t, f.revocation(st[2].Public()), st[0], st[1])
	amended, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, now)
	if err != nil {
		t.Fatal(err)
	}
	otherReader := dirtest.MustIdentity(t)

	cases := []struct {
		name  string
		setup []*directory.Record
		rec   *directory.Record
		want  error
		then  func(t *testing.T, s *directory.State)
	}{
		{name: "signature bit flipped", rec: func() *directory.Record {
			c := clone(f.entry(t, f.org, 3, nil))
			c.Sigs[0].Sig[10] ^= 0x04
			return c
		}(), want: directory.ErrBadSignature},
		{name: "body bit flipped", rec: flipNameCase(t, f.entry(t, f.org, 3, nil)), want: directory.ErrBadSignature},
		{name: "network field changed after signing", rec: func() *directory.Record {
			c := clone(f.entry(t, f.org, 3, nil))
			c.Network = other.ID
			return c
		}(), want: directory.ErrBadSignature},
		{name: "record of another network", rec: other.Genesis, want: directory.ErrWrongNetwork},
		{name: "entry signed for another network", rec: other.Entry(t, f.org, "asesoria", 3), want: directory.ErrWrongNetwork},
		{name: "unknown format version", rec: resign(func() *directory.Record {
			c := clone(f.entry(t, f.org, 3, nil))
			c.Version = directory.FormatVersion + 1
			return c
		}(), f.org), want: directory.ErrUnknownVersion},
		{name: "unknown record type", rec: resign(func() *directory.Record {
			c := clone(f.entry(t, f.org, 3, nil))
			c.Type = 42
			return c
		}(), f.org), want: directory.ErrUnknownType},
		{name: "one signer listed twice", rec: func() *directory.Record {
			c := nw.Sign(t, f.membership(f.outsider, now), st[0])
			c.Sigs = append(c.Sigs, c.Sigs[0])
			return c
		}(), want: directory.ErrMalformed},
		{name: "same record again", rec: f.base[3], want: directory.ErrDuplicate},
		{name: "older seq replayed", rec: nw.Entry(t, f.org, "asesoria", 1), want: directory.ErrStale},
		{name: "older charter replayed after an amendment",
			setup: []*directory.Record{nw.Sign(t, amended, st[0], st[1])},
			rec:   nw.Genesis, want: directory.ErrDuplicate},
		{name: "same steward approves twice",
			setup: []*directory.Record{approval(t, unsigned(t, nw, f.membership(f.outsider, now)), st[1])},
			rec:   approval(t, unsigned(t, nw, f.membership(f.outsider, now)), st[1]), want: directory.ErrDuplicate,
			then: func(t *testing.T, s *directory.State) {
				p, ok := s.Proposal(pending.ProposalID())
				if !ok || len(p.Approvers) != 1 || p.Effective {
					t.Errorf("proposal = %+v, want one approver and not effective", p)
				}
			}},
		{name: "steward approves what it already signed",
			setup: []*directory.Record{pending},
			rec:   approval(t, pending, st[0]), want: directory.ErrDuplicate},
		{name: "revoked steward approves",
			setup: []*directory.Record{revokeS2, pending},
			rec:   approval(t, pending, st[2]), want: directory.ErrRevoked},
		{name: "non-steward approves",
			setup: []*directory.Record{pending},
			rec:   approval(t, pending, f.org), want: directory.ErrNotSteward},
		{name: "membership signed by non-stewards only",
			rec: nw.Sign(t, f.membership(f.outsider, now), f.org, f.reader), want: directory.ErrNotSteward},
		{name: "reader publishes", rec: f.entry(t, f.reader, 1, nil), want: directory.ErrNotMember},
		{name: "steward publishes", rec: f.entry(t, st[0], 1, nil), want: directory.ErrNotMember},
		{name: "reader vouches for another reader", rec: nw.Vouch(t, f.reader, otherReader), want: directory.ErrNotMember},
		{name: "revoked member publishes",
			setup: []*directory.Record{nw.RevokeBy(t, f.org.Public())},
			rec:   f.entry(t, f.org, 3, nil), want: directory.ErrRevoked},
		// A grant for a revoked reader key is held, admitting nobody, as
		// what lets a node take the key's self-revocation
		// (TestReadersSelfRevocationSurvivesARestart).
		{name: "expired entry", rec: f.entry(t, f.org, 3, func(e *directory.Entry) {
			e.Issued, e.Expires = now.Add(-100*24*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}), want: directory.ErrExpired},
		{name: "expired reader grant", rec: nw.Sign(t, &directory.Reader{Key: otherReader.Public(), KEM: otherReader.KEMPublic(), KEMSig: otherReader.KEMBinding(),
			Issued: now.Add(-48 * time.Hour).Unix(), Expires: now.Add(-time.Hour).Unix()}, f.org), want: directory.ErrExpired},
		{name: "entry dated beyond the clock skew", rec: f.entry(t, f.org, 3, func(e *directory.Entry) {
			e.Issued = now.Add(time.Hour).Unix()
		}), want: directory.ErrFromFuture},
		{name: "approval of a proposal dated beyond the clock skew",
			rec:  approval(t, unsigned(t, nw, f.membership(f.outsider, now.Add(time.Hour))), st[0]),
			want: directory.ErrFromFuture},
		// An entry outliving the charter's maximum lifetime, or a record
		// above its max_record_bytes, is accepted and not shown
		// (TestPolicyTighteningKeepsOneDigest); the protocol's hard size
		// limit is refused on decoding (TestDecodeRejects).
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := f.state(t, tc.setup...)
			before := snap(s)
			had := s.Has(tc.rec.Hash())
			_, err := s.Apply(tc.rec)
			wantReject(t, err, tc.want)
			if after := snap(s); !reflect.DeepEqual(before, after) {
				t.Errorf("refused record changed the state:\nbefore %+v\nafter  %+v", before, after)
			}
			if s.Has(tc.rec.Hash()) != had {
				t.Error("refused record changed the pool")
			}
			if tc.then != nil {
				tc.then(t, s)
			}
		})
	}
}

// rawPair is one key and value of a CBOR map, both as encoded.
type rawPair struct {
	key uint64
	val cbor.RawMessage
}

func rawPairs(t testing.TB, enc []byte) []rawPair {
	t.Helper()
	var m map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(enc, &m); err != nil {
		t.Fatal(err)
	}
	var ps []rawPair
	for k, v := range m {
		ps = append(ps, rawPair{k, v})
	}
	slices.SortFunc(ps, func(a, b rawPair) int { return int(a.key) - int(b.key) })
	if !bytes.Equal(rawMap(ps), enc) {
		t.Fatal("rawMap does not rebuild the canonical encoding")
	}
	return ps
}

// rawMap writes pairs in the given order, duplicates and all, as a map of
// small integer keys.
func rawMap(ps []rawPair) []byte {
	out := []byte{0xa0 | byte(len(ps))}
	for _, p := range ps {
		out = append(out, byte(p.key))
		out = append(out, p.val...)
	}
	return out
}

func withVal(ps []rawPair, key uint64, val []byte) []rawPair {
	ps = slices.Clone(ps)
	for i := range ps {
		if ps[i].key == key {
			ps[i].val = val
		}
	}
	return ps
}

var detEnc, _ = cbor.CoreDetEncOptions().EncMode()

// bodyRecord signs raw body bytes as a record of type t, so tests can
// present a validly signed record whose body is wrong in one way.
func bodyRecord(nw *dirtest.Network, typ directory.RecordType, body []byte, signer *directory.Identity) []byte {
	r := &directory.Record{Version: directory.FormatVersion, Type: typ, Network: nw.ID, Body: body}
	r.AddSignature(signer)
	return r.Encode()
}

// TestDecodeRejects feeds DecodeRecord each kind of bad input a peer could
// send and checks the sentinel it is refused with.
func TestDecodeRejects(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	rec := nw.Entry(t, org, "asesoria", 1)
	enc := rec.Encode()
	ps := rawPairs(t, enc)
	body := rawPairs(t, rec.Body)

	// The body field's byte string, with a 4-byte length where 2 bytes do.
	var bodyBytes []byte
	if err := cbor.Unmarshal(ps[3].val, &bodyBytes); err != nil || ps[3].key != 4 {
		t.Fatalf("record field 4 is not the body: %v", err)
	}
	longLen := binary.BigEndian.AppendUint32([]byte{0x5a}, uint32(len(bodyBytes)))
	longLen = append(longLen, bodyBytes...)

	// An entry body with deleted=false present, which canonical form omits.
	withDeleted := slices.Insert(slices.Clone(body), 4, rawPair{5, cbor.RawMessage{0xf4}})
	if body[4].key != 6 {
		t.Fatalf("sample entry body keys %v, want 1 2 3 4 6", body)
	}
	badCategory := dirtest.SampleEntry("asesoria", 1, nw.Now)
	badCategory.Service.Categories = []string{"weapons"}
	badCategoryBody, err := detEnc.Marshal(badCategory)
	if err != nil {
		t.Fatal(err)
	}
	var other directory.NetworkID
	other[0] = 1
	genesisElsewhere := clone(nw.Genesis)
	genesisElsewhere.Network = other
	genesisElsewhere = resign(genesisElsewhere, nw.Stewards...)
	twoSigned := clone(approval(t, unsigned(t, nw, &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(),
		Name: "Red", Issued: nw.Now.Unix()}), nw.Stewards[0]))
	twoSigned.AddSignature(nw.Stewards[1])
	approvesEntry := &directory.Record{Version: directory.FormatVersion, Type: directory.TypeApproval, Network: nw.ID}
	approvesEntry.Body, _ = detEnc.Marshal(&directory.Approval{Of: directory.TypeEntry, Proposal: rec.Body})
	approvesEntry.AddSignature(org)
	twoSigs := nw.Sign(t, &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: "Red", Issued: nw.Now.Unix()},
		nw.Stewards[0], nw.Stewards[1])
	reversed := clone(twoSigs)
	slices.Reverse(reversed.Sigs)
	noSig := clone(rec)
	noSig.Sigs = nil

	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty input", nil, directory.ErrMalformed},
		{"not a map", []byte{0x01}, directory.ErrMalformed},
		{"truncated", enc[:len(enc)/2], directory.ErrMalformed},
		{"trailing byte", append(slices.Clone(enc), 0), directory.ErrMalformed},
		{"duplicate map key", rawMap(append(slices.Clone(ps), ps[0])), directory.ErrMalformed},
		{"indefinite-length map", append(append([]byte{0xbf}, rawMap(ps)[1:]...), 0xff), directory.ErrMalformed},
		{"CBOR tag", append([]byte{0xd9, 0xd9, 0xf7}, enc...), directory.ErrMalformed},
		{"unknown envelope field", rawMap(append(slices.Clone(ps), rawPair{6, cbor.RawMessage{0x00}})), directory.ErrMalformed},
		{"map keys out of order", rawMap([]rawPair{ps[1], ps[0], ps[2], ps[3], ps[4]}), directory.ErrNonCanonical},
		{"integer not in shortest form", rawMap(withVal(ps, 1, []byte{0x18, 0x01})), directory.ErrNonCanonical},
		{"length not in shortest form", rawMap(withVal(ps, 4, longLen)), directory.ErrNonCanonical},
		{"larger than any record", make([]byte, directory.MaxRecordBytes+1), directory.ErrTooLarge},
		{"body integer not in shortest form, validly signed",
			bodyRecord(nw, directory.TypeEntry, rawMap(withVal(body, 2, []byte{0x18, 0x01})), org), directory.ErrNonCanonical},
		{"body keys out of order, validly signed",
			bodyRecord(nw, directory.TypeEntry, rawMap(append([]rawPair{body[1], body[0]}, body[2:]...)), org), directory.ErrNonCanonical},
		{"body with a zero-valued optional field, validly signed",
			bodyRecord(nw, directory.TypeEntry, rawMap(withDeleted), org), directory.ErrNonCanonical},
		{"body with an unknown field, validly signed",
			bodyRecord(nw, directory.TypeEntry, rawMap(append(slices.Clone(body), rawPair{7, cbor.RawMessage{0x00}})), org), directory.ErrMalformed},
		{"body with a duplicate key, validly signed",
			bodyRecord(nw, directory.TypeEntry, rawMap(append(slices.Clone(body), body[0])), org), directory.ErrMalformed},
		{"body failing its field checks, validly signed",
			bodyRecord(nw, directory.TypeEntry, badCategoryBody, org), directory.ErrInvalid},
		{"signature bit flipped", func() []byte {
			c := clone(rec)
			c.Sigs[0].Sig[0] ^= 1
			return c.Encode()
		}(), directory.ErrBadSignature},
		{"body bit flipped", flipNameCase(t, rec).Encode(), directory.ErrBadSignature},
		{"no signature", noSig.Encode(), directory.ErrBadSignature},
		{"unknown format version", resign(func() *directory.Record { c := clone(rec); c.Version = 9; return c }(), org).Encode(), directory.ErrUnknownVersion},
		{"unknown record type", resign(func() *directory.Record { c := clone(rec); c.Type = 200; return c }(), org).Encode(), directory.ErrUnknownType},
		{"one signer listed twice", func() []byte {
			c := clone(twoSigs)
			c.Sigs[1] = c.Sigs[0]
			return c.Encode()
		}(), directory.ErrMalformed},
		{"signatures out of order", reversed.Encode(), directory.ErrMalformed},
		{"genesis naming another network", genesisElsewhere.Encode(), directory.ErrWrongNetwork},
		{"approval with two signatures", twoSigned.Encode(), directory.ErrInvalid},
		{"approval of an entry", approvesEntry.Encode(), directory.ErrInvalid},
	}
	if _, err := directory.DecodeRecord(enc); err != nil {
		t.Fatalf("the unaltered record is refused: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := directory.DecodeRecord(tc.data)
			if r != nil {
				t.Fatal("DecodeRecord returned a record along with refusing it")
			}
			wantReject(t, err, tc.want)
		})
	}
}

// TestDecodeRejectsEveryBitFlip: no single flipped bit anywhere in a
// record's encoding yields a record that is accepted.
func TestDecodeRejectsEveryBitFlip(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	enc := nw.Entry(t, dirtest.MustIdentity(t), "asesoria", 1).Encode()
	for i := range enc {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			bad := slices.Clone(enc)
			bad[i] ^= bit
			if _, err := directory.DecodeRecord(bad); err == nil {
				t.Fatalf("flipping bit %#x of byte %d gives a valid record", bit, i)
			}
		}
	}
}

// applyExpect applies r and fails unless it is refused for want, or
// accepted when want is nil.
func applyExpect(t *testing.T, s *directory.State, r *directory.Record, want error) {
	t.Helper()
	_, err := s.Apply(r)
	if want == nil {
		if err != nil {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
		return
	}
	wantReject(t, err, want)
}

// inAllOrders applies recs in every order to fresh states and fails unless
// they all end in the same view; it returns one of them.
func inAllOrders(t *testing.T, nw *dirtest.Network, recs ...*directory.Record) *directory.State {
	t.Helper()
	var first *directory.State
	var want view
	for i, r := range recs {
		recs[i] = decoded(t, r) // as peers hold them, and verified once
	}
	permute(recs, func(order []*directory.Record) {
		s := nw.State()
		if err := applyAll(s, order); err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first, want = s, viewOf(s)
			return
		}
		if got := viewOf(s); !reflect.DeepEqual(got, want) {
			t.Fatalf("order %v disagrees:\n%s", typesOf(order), diffViews(want, got))
		}
	})
	return first
}

func permute(recs []*directory.Record, fn func([]*directory.Record)) {
	var rec func(k int)
	a := slices.Clone(recs)
	rec = func(k int) {
		if k == len(a) {
			fn(slices.Clone(a))
			return
		}
		for i := k; i < len(a); i++ {
			a[k], a[i] = a[i], a[k]
			rec(k + 1)
			a[k], a[i] = a[i], a[k]
		}
	}
	rec(0)
}

func typesOf(recs []*directory.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Type.String())
	}
	return strings.Join(s, ",")
}

func TestMembershipBelowThreshold(t *testing.T) {
	f := newRejectFixture(t)
	nw := f.nw
	org := dirtest.MustIdentity(t)
	m := nw.Sign(t, f.membership(org, nw.Now), nw.Stewards[0])
	s := f.state(t, m, f.entry(t, org, 1, func(e *directory.Entry) { e.ID = "refugio" }))
	if _, ok := s.Member(org.Public()); ok {
		t.Fatal("membership with 1 of 2 approvals is effective")
	}
	if res := s.Search(directory.Query{}); len(res) != 1 {
		t.Fatalf("search shows %d entries, want only the admitted organization's", len(res))
	}
	p, _ := s.Proposal(m.ProposalID())
	if p.Effective || p.Threshold != 2 || len(p.Approvers) != 1 {
		t.Fatalf("proposal = %+v, want pending at 1 of 2", p)
	}
	mustApply(t, s, approval(t, m, nw.Stewards[2]))
	if _, ok := s.Member(org.Public()); !ok {
		t.Fatal("membership at threshold is not effective")
	}
	if res := s.Search(directory.Query{}); len(res) != 2 {
		t.Fatalf("search shows %d entries, want the waiting entry too", len(res))
	}
}

// A revoked steward's approval never counts towards a membership, whether
// it arrived before the revocation (kept, not counted) or after (refused).
func TestRevokedStewardApprovalNeverCounts(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	org := dirtest.MustIdentity(t)
	m := nw.Sign(t, f.membership(org, nw.Now), st[0])
	late := approval(t, m, st[2])
	revoke := nw.Sign(t, f.revocation(st[2].Public()), st[0], st[1])
	entry := f.entry(t, org, 1, func(e *directory.Entry) { e.ID = "refugio" })

	s := inAllOrders(t, nw, nw.Genesis, m, late, revoke, entry)
	if _, ok := s.Member(org.Public()); ok {
		t.Fatal("a revoked steward's approval made a membership effective")
	}

	s = f.state(t, revoke, m)
	applyExpect(t, s, late, directory.ErrRevoked)
}

// A proposal record signed by a revoked steward and a good one keeps the
// good signature's weight in every order: refusing the whole record when
// the revocation came first would lose it.
func TestProposalWithRevokedCosignerCountsInAnyOrder(t *testing.T) {
	nw := dirtest.New(t, 4, 3)
	st := nw.Stewards
	org := dirtest.MustIdentity(t)
	revoke := nw.Sign(t, &directory.Revocation{Key: st[3].Public(), Charter: 1, Issued: nw.Now.Unix()}, st[0], st[1], st[2])
	m := &directory.Membership{Charter: 1, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(), Name: "Red", Issued: nw.Now.Unix()}
	mixed := nw.Sign(t, m, st[0], st[3])
	s := inAllOrders(t, nw, nw.Genesis, revoke, mixed, approval(t, mixed, st[1]), approval(t, mixed, st[2]))
	if _, ok := s.Member(org.Public()); !ok {
		t.Fatal("membership approved by three unrevoked stewards is not effective")
	}
}

func TestCharterAmendment(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	newcomer := dirtest.MustIdentity(t)
	stewards := []directory.Steward{
		nw.Charter.Stewards[0], nw.Charter.Stewards[1],
		{Key: newcomer.Public(), KEM: newcomer.KEMPublic(), KEMSig: newcomer.KEMBinding(), Name: "nueva"},
	}
	// Version 2 replaces steward 3 (whichever sorts last) by the newcomer.
	dropped := slices.IndexFunc(st, func(id *directory.Identity) bool { return id.Public() == nw.Charter.Stewards[2].Key })
	kept := slices.DeleteFunc(slices.Clone(st), func(id *directory.Identity) bool { return id == st[dropped] })
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	r2 := nw.Sign(t, v2, kept[0])

	s := f.state(t, r2)
	if v := charterVersion(s); v != 1 {
		t.Fatalf("amendment with 1 of 2 approvals took effect: version %d", v)
	}
	mustApply(t, s, approval(t, r2, kept[1]))
	if v := charterVersion(s); v != 2 {
		t.Fatalf("amendment at threshold: version %d, want 2", v)
	}
	before := snap(s)
	applyExpect(t, s, nw.Genesis, directory.ErrDuplicate)
	applyExpect(t, s, r2, directory.ErrDuplicate)
	if !reflect.DeepEqual(before, snap(s)) {
		t.Fatal("replaying older charter records changed the state")
	}

	// The removed steward and one current steward try version 3: only one
	// signature counts, so it waits.
	v3, err := directory.Amend(v2, r2.ProposalID(), nw.Charter.Stewards, 1, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, nw.Sign(t, v3, st[dropped], kept[0]))
	if v := charterVersion(s); v != 2 {
		t.Fatalf("a removed steward's signature counted: version %d", v)
	}
	// The removed steward alone is refused: for a reason that may pass,
	// since a fork of version 2 that names it may still be linked.
	applyExpect(t, s, approval(t, unsigned(t, nw, v3), st[dropped]), directory.ErrPendingSignature)

	// A competing version 2 signed by one steward is not a fork.
	rival, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 3, directory.Policy{}, nw.Now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, nw.Sign(t, rival, st[dropped]))
	if s.CharterID() != r2.ProposalID() || len(s.Equivocations()) != 0 {
		t.Fatal("a competing version 2 below threshold moved the chain or was reported as a fork")
	}
}

// forkOf returns an amendment of the genesis, signed by k stewards, whose
// proposal ID sorts below (lower) or above the given one.
func forkOf(t *testing.T, nw *dirtest.Network, than directory.Hash, lower bool) *directory.Record {
	for i := 1; i < 200; i++ {
		c, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, nw.Threshold, directory.Policy{}, nw.Now.Add(-time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		r := nw.Sign(t, c, nw.Stewards[:nw.Threshold]...)
		id := r.ProposalID()
		if (bytes.Compare(id[:], than[:]) < 0) == lower {
			return r
		}
	}
	t.Fatal("no fork candidate on the wanted side in 200 tries")
	return nil
}

// Two valid successors of one charter version, signed by as many
// stewards each: every node freezes the chain at version 1 and reports
// the fork, whatever the proposal IDs (which the signers of a fork can
// grind). A revocation made under either branch stands, because
// revocation is for good. Once a third steward signs one side, that side
// wins everywhere.
func TestCharterForkResolvesTheSameEverywhere(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	newcomer := dirtest.MustIdentity(t)
	// Version 2's proposal ID must leave room below it for a fork; an ID
	// near zero would make forkOf search for a very long time.
	var v2 *directory.Charter
	var r2 *directory.Record
	for i := 0; r2 == nil || r2.ProposalID()[0] < 0x80; i++ {
		var err error
		v2, err = directory.Amend(nw.Charter, nw.Genesis.ProposalID(), append(slices.Clone(nw.Charter.Stewards),
			directory.Steward{Key: newcomer.Public(), KEM: newcomer.KEMPublic(), KEMSig: newcomer.KEMBinding()}), 2, directory.Policy{}, nw.Now.Add(-time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		r2 = nw.Sign(t, v2, nw.Stewards[0], nw.Stewards[1])
	}
	v3, err := directory.Amend(v2, r2.ProposalID(), v2.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	r3 := nw.Sign(t, v3, nw.Stewards[0], newcomer)
	// Revoked by the newcomer, a steward only in versions 2 and 3.
	revoke := nw.Sign(t, &directory.Revocation{Key: org.Public(), Charter: 3, Issued: nw.Now.Unix()}, newcomer, nw.Stewards[1])

	for _, ground := range []bool{true, false} { // the fork's ID below or above the honest one
		fork := forkOf(t, nw, r2.ProposalID(), ground)
		s := inAllOrders(t, nw, nw.Genesis, r2, r3, revoke, fork)
		if s.CharterID() != nw.Genesis.ProposalID() {
			t.Fatalf("fork with the lower ID %v: chain at version %d, want frozen at 1", ground, charterVersion(s))
		}
		if !s.IsRevoked(org.Public()) {
			t.Fatal("a frozen fork brought a revoked key back")
		}
		eq := s.Equivocations()
		if len(eq) != 1 || eq[0].Slot != "charter/2" {
			t.Fatalf("equivocations = %+v, want the charter fork", eq)
		}
		s = inAllOrders(t, nw, nw.Genesis, r2, r3, revoke, fork, approval(t, r2, nw.Stewards[2]))
		if charterVersion(s) != 3 || len(s.Equivocations()) != 1 {
			t.Fatalf("three stewards against two: chain at version %d, want the honest version 3, fork reported", charterVersion(s))
		}
	}
}

func TestEpochRotation(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	withOrg := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	withoutOrg := withOrg[:1]
	// rotation is an epoch record with its pages, signed by one steward.
	rotation := func(n uint64, after directory.Hash, rs []directory.Recipient, by *directory.Identity) []*directory.Record {
		e, pages := nw.Rotation(t, n, 1, after, directory.NewReadKey(), rs, by)
		return append([]*directory.Record{e}, pages...)
	}
	firstRecs := rotation(1, directory.Hash{}, withOrg, st[0])
	first := firstRecs[0]
	s := f.state(t, firstRecs...)
	if n := s.CurrentEpoch(); n != 0 {
		t.Fatalf("epoch signed by one steward without a revocation took effect: %d", n)
	}
	mustApply(t, s, approval(t, first, st[1]))
	if n := s.CurrentEpoch(); n != 1 {
		t.Fatalf("first epoch approved by the threshold: current epoch %d, want 1", n)
	}

	// The organization's device is seized: it revokes itself while the
	// stewards revoke it too. A self-revocation lets no steward rotate
	// alone; a revocation by the stewards of a key that held a package
	// does, once.
	self := nw.Sign(t, f.revocation(f.org.Public()), f.org)
	byStewards := f.revocation(f.org.Public())
	byStewards.Reason = "aviso de la organización"
	pending := nw.Sign(t, byStewards, st[0])
	mustApply(t, s, self, pending)
	mustApply(t, s, rotation(2, self.ProposalID(), withoutOrg, st[2])...)
	if n := s.CurrentEpoch(); n != 1 {
		t.Fatalf("one steward rotated alone after a self-revocation: current epoch %d", n)
	}
	mustApply(t, s, rotation(2, pending.ProposalID(), withoutOrg, st[1])...)
	if n := s.CurrentEpoch(); n != 1 {
		t.Fatalf("rotation after a revocation still short of threshold took effect: %d", n)
	}
	mustApply(t, s, approval(t, pending, st[2]))
	if n := s.CurrentEpoch(); n != 2 {
		t.Fatalf("rotation after the stewards' revocation: current epoch %d, want 2", n)
	}
	// The same revocation does not let a steward rotate again: the key it
	// removed held no package in epoch 2.
	mustApply(t, s, rotation(3, pending.ProposalID(), withoutOrg, st[2])...)
	if n := s.CurrentEpoch(); n != 2 {
		t.Fatalf("one revocation let a steward rotate twice: current epoch %d", n)
	}
	for _, p := range s.Proposals() {
		if p.Type == directory.TypeRevocation && !p.Effective {
			t.Errorf("revocation %s shown as pending although it took effect", p.ID.Short())
		}
	}
}

// Two versions of one seq are equivocation whether they arrive before or
// after a newer seq, and the evidence is the same on every node.
func TestEquivocationAtAnOlderSeq(t *testing.T) {
	f := newRejectFixture(t)
	nw := f.nw
	a := f.entry(t, f.org, 3, func(e *directory.Entry) { e.Service.Fees = "Gratuito" })
	b := f.entry(t, f.org, 3, func(e *directory.Entry) { e.Service.Fees = "Cuota solidaria" })
	c := f.entry(t, f.org, 4, nil)
	s := inAllOrders(t, nw, a, b, c, nw.Genesis, nw.Admit(t, f.org, "Colectivo Ejemplo"))
	eq := s.Equivocations()
	want := []directory.Hash{a.Hash(), b.Hash()}
	slices.SortFunc(want, func(x, y directory.Hash) int { return bytes.Compare(x[:], y[:]) })
	if len(eq) != 1 || eq[0].Key != f.org.Public() || !slices.Equal(eq[0].Hashes, want) {
		t.Fatalf("equivocations = %+v, want seq 3's two versions", eq)
	}
	if res := s.Search(directory.Query{}); len(res) != 1 || res[0].Entry.Seq != 4 {
		t.Fatalf("search = %+v, want seq 4", res)
	}
	// Once the key is revoked the evidence has done its work; nodes that
	// learnt of the revocation first never saw it.
	s = inAllOrders(t, nw, nw.Genesis, a, b, nw.RevokeBy(t, f.org.Public()))
	if eq := s.Equivocations(); len(eq) != 0 {
		t.Fatalf("equivocations of a revoked key = %+v, want none", eq)
	}
}

// A record returned by Open is not verified again by Apply, but one changed
// after Open is.
func TestOpenedRecordChangedAfterwardsIsVerifiedAgain(t *testing.T) {
	f := newRejectFixture(t)
	s := f.state(t)
	r, err := directory.Open(directory.Seal(f.entry(t, f.org, 3, nil), f.nw.Key), f.nw.ID, directory.Keyring{1: f.nw.Key})
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(r.Body, []byte("Asesor"))
	r.Body[i] ^= 0x20
	applyExpect(t, s, r, directory.ErrBadSignature)
	r.Body[i] ^= 0x20
	applyExpect(t, s, r, nil)
}

// A steward revoked by the others at version 1 no longer counts on links
// citing version 1 or later: with one more compromised steward it cannot
// amend the charter, in any order of arrival. A link it signed citing an
// earlier version than its revocation names still stands (history).
func TestRevokedStewardLosesWeightOnLaterLinks(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	bad, second, honest := nw.Stewards[0], nw.Stewards[1], nw.Stewards[2]
	attacker := dirtest.MustIdentity(t)
	takeover, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), []directory.Steward{
		{Key: bad.Public(), KEM: bad.KEMPublic(), KEMSig: bad.KEMBinding()},
		{Key: attacker.Public(), KEM: attacker.KEMPublic(), KEMSig: attacker.KEMBinding()},
	}, 1, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	revokeBad := nw.Sign(t, &directory.Revocation{Key: bad.Public(), Charter: 1, Reason: "dispositivo incautado", Issued: nw.Now.Unix()}, second, honest)
	s := inAllOrders(t, nw, nw.Genesis, revokeBad, nw.Sign(t, takeover, bad, second))
	if charterVersion(s) != 1 || !s.IsRevoked(bad.Public()) {
		t.Fatalf("a revoked steward and one more amended the charter: version %d", charterVersion(s))
	}

	// Version 2 signed by both before the compromise, and the revocation
	// naming version 2: version 2 stands, the takeover from it does not.
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	r2 := nw.Sign(t, v2, bad, second)
	takeover3, err := directory.Amend(v2, r2.ProposalID(), takeover.Stewards, 1, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	revokeAt2 := nw.Sign(t, &directory.Revocation{Key: bad.Public(), Charter: 2, Reason: "dispositivo incautado", Issued: nw.Now.Unix()}, second, honest)
	s = inAllOrders(t, nw, nw.Genesis, r2, revokeAt2, nw.Sign(t, takeover3, bad, second))
	if charterVersion(s) != 2 {
		t.Fatalf("chain at version %d, want 2: the link before the revocation stands, the takeover after it does not", charterVersion(s))
	}
}
