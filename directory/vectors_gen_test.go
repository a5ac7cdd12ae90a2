package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"slices"
	"testing"
	"testing/cryptotest"
	"time"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/chacha20poly1305"
)

// The generator of the test vectors in docs/vectors (PROTOCOL.md §11).
// Everything is derived from fixed seeds and a fixed clock, and what the
// protocol draws at random (charter salt, rotation ID, seal nonces, HPKE
// encapsulations) comes from cryptotest.SetGlobalRandom's fixed stream, so
// running it twice on the same code gives the same bytes. It never writes
// files unless CEIBA_WRITE_VECTORS=1 (TestVectorsAreCurrent).

// vecNow is the vectors' clock: 2026-01-01 12:00:00 UTC.
var vecNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// vecSeed is a fixed 32-byte seed: SHA-256 of a label.
func vecSeed(label string) []byte {
	h := sha256.Sum256([]byte("ceiba test vector seed\x00" + label))
	return h[:]
}

type vecGen struct {
	t       *testing.T
	names   []string
	ids     map[string]*Identity
	net     NetworkID
	recs    map[string]*Record
	order   []string
	signers map[string][]string
	keyName map[PublicKey]string
}

func (g *vecGen) identity(name string) *Identity {
	if id, ok := g.ids[name]; ok {
		return id
	}
	id, err := identityFromSecrets(vecSeed(name+" ed25519"), vecSeed(name+" x-wing"))
	if err != nil {
		g.t.Fatal(err)
	}
	g.ids[name] = id
	g.names = append(g.names, name)
	g.keyName[id.Public()] = name
	return id
}

// add records r under name, in the order records.json lists them.
func (g *vecGen) add(name string, r *Record) *Record {
	if _, dup := g.recs[name]; dup {
		g.t.Fatalf("record %q twice", name)
	}
	if err := r.Verify(); err != nil {
		g.t.Fatalf("vector record %s: %v", name, err)
	}
	g.recs[name] = r
	g.order = append(g.order, name)
	return r
}

func (g *vecGen) sign(name string, body Body, signers ...string) *Record {
	var ids []*Identity
	for _, s := range signers {
		ids = append(ids, g.identity(s))
	}
	r, err := NewRecord(g.net, body, ids...)
	if err != nil {
		g.t.Fatalf("%s: %v", name, err)
	}
	return g.add(name, r)
}

// withSigs is r carrying the signatures of every record given (a proposal
// and its approvals merged into one record, as a fork's side is).
func withSigs(r *Record, more ...*Record) *Record {
	out := &Record{Version: r.Version, Type: r.Type, Network: r.Network, Body: r.Body, Sigs: slices.Clone(r.Sigs)}
	for _, m := range more {
		for _, s := range m.Sigs {
			out.putSig(s)
		}
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// generateVectors builds every vector file, by name.
func generateVectors(t *testing.T) map[string][]byte {
	// One worker: NewEpoch seals on every core, and the order in which
	// seals draw from the fixed random stream must not vary.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cryptotest.SetGlobalRandom(t, 2026)
	g := &vecGen{t: t, ids: map[string]*Identity{}, recs: map[string]*Record{}, signers: map[string][]string{}, keyName: map[PublicKey]string{}}
	for _, n := range []string{"steward-1", "steward-2", "steward-3", "member-1", "member-2", "reader-1", "reporter"} {
		g.identity(n)
	}
	files := map[string][]byte{}
	files["keys.json"] = g.keys()
	g.records()
	files["records.json"] = g.recordsFile()
	files["sealing.json"] = g.sealing()
	files["keypackages.json"] = g.keyPackages()
	files["digests.json"] = g.digests()
	files["derivations.json"] = g.derivations()
	files["session.json"] = g.session()
	files["invite.json"] = g.invite()
	files["negative.json"] = g.negative()
	return files
}

func (g *vecGen) keys() []byte {
	f := keysFile{Comment: "Identities the other files use: an Ed25519 seed (RFC 8032 private key) gives the public key; an X-Wing seed (the 32-byte private key of KEM MLKEM768-X25519, §2) gives the 1216-byte encapsulation key; kem_sig is the KEM binding (§2). fingerprints: what a reader of a typed fingerprint must accept (normalized) or refuse (error)."}
	for _, n := range g.names {
		id := g.ids[n]
		seed, kemSeed := id.secrets()
		f.Identities = append(f.Identities, vecIdentity{Name: n, Ed25519Seed: seed, PublicKey: pkBytes(id.Public()),
			Fingerprint: id.Fingerprint(), XWingSeed: kemSeed, KEMPublicKey: id.KEMPublic(), KEMSig: id.KEMBinding()})
	}
	fp := g.ids["steward-1"].Fingerprint()
	plain := stringsRemove(fp, '-')
	// One character changed: the check character catches it.
	bad := []byte(plain)
	bad[3] = fpAlphabet[(bytes.IndexByte([]byte(fpAlphabet), bad[3])+1)%32]
	// Two adjacent data characters swapped (chosen to differ).
	swap := []byte(plain)
	for i := 0; i+1 < fpDataChars; i++ {
		if swap[i] != swap[i+1] {
			swap[i], swap[i+1] = swap[i+1], swap[i]
			break
		}
	}
	for _, in := range []string{fp, upper(plain), " " + plain[:12] + "\n" + plain[12:] + " ", string(bad), string(swap), plain[:24], plain + "a", fp[:6] + "1" + fp[7:]} {
		n, err := NormalizeFingerprint(in)
		en, err2 := errorName(err)
		if err2 != nil {
			g.t.Fatal(err2)
		}
		f.Fingerprints = append(f.Fingerprints, vecFingerprint{Input: in, Normalized: n, Error: en})
	}
	return mustJSON(g.t, f)
}

func stringsRemove(s string, c byte) string {
	return string(bytes.ReplaceAll([]byte(s), []byte{c}, nil))
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// pkBytes is the key's 32 bytes as a slice.
func pkBytes(k PublicKey) []byte { return k[:] }

func (g *vecGen) steward(name string) Steward {
	id := g.ids[name]
	return Steward{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: "Steward " + name[len(name)-1:]}
}

func (g *vecGen) service(name string) *Service {
	return &Service{Name: name, Status: "active", Categories: []string{"legal"}, Languages: []string{"es"},
		Contacts: []Contact{{Kind: "signal", Value: "+34 600 000 000"}}}
}

// records builds one record of every type, and the extra records the
// digest sets need (an equivocation, a charter fork).
func (g *vecGen) records() {
	now := vecNow.Unix()
	c, err := NewGenesis("Red de prueba", []Steward{g.steward("steward-1"), g.steward("steward-2"), g.steward("steward-3")}, 2, Policy{}, vecNow)
	if err != nil {
		g.t.Fatal(err)
	}
	// The salt is fixed too, not drawn: the network ID, and every hash
	// that names it, stays the same should a Go release draw randomness
	// differently (only the HPKE packages and what lists them would change).
	c.Salt = vecSeed("charter salt")[:16]
	g.net = GenesisIDOf(c)
	genesis := g.sign("genesis", c, "steward-1", "steward-2", "steward-3")
	gid := genesis.ProposalID()

	// The rotation of epoch 1: to the stewards and the first member.
	var recips []Recipient
	for _, n := range []string{"steward-1", "steward-2", "steward-3", "member-1"} {
		recips = append(recips, Recipient{Key: g.ids[n].Public(), KEM: g.ids[n].KEMPublic()})
	}
	key := vecReadKey()
	e, pages, err := NewEpoch(g.net, 1, 1, Hash{}, key, recips, vecNow, DefaultMaxRecordBytes)
	if err != nil {
		g.t.Fatal(err)
	}
	g.sign("epoch-1", e, "steward-1", "steward-2")
	for i, p := range pages {
		g.sign(fmt.Sprintf("epoch-1-page-%d", i), p, "steward-1")
	}

	m1 := &Membership{Charter: 1, Org: g.ids["member-1"].Public(), KEM: g.ids["member-1"].KEMPublic(), KEMSig: g.ids["member-1"].KEMBinding(),
		Name: "Asociación Uno", Peers: []string{"12D3KooWExamplePeerOne"}, Issued: now}
	mr := g.sign("membership-1", m1, "steward-1", "steward-2")
	ap, err := NewApproval(mr, g.ids["steward-3"])
	if err != nil {
		g.t.Fatal(err)
	}
	g.add("approval-membership-1", ap)
	m2 := &Membership{Charter: 1, Org: g.ids["member-2"].Public(), KEM: g.ids["member-2"].KEMPublic(), KEMSig: g.ids["member-2"].KEMBinding(),
		Name: "Colectivo Dos", Issued: now}
	g.sign("membership-2", m2, "steward-1", "steward-3")
	rd := g.ids["reader-1"]
	g.sign("reader-1", &Reader{Key: rd.Public(), KEM: rd.KEMPublic(), KEMSig: rd.KEMBinding(), Label: "family of M.", Issued: now, Expires: now + 90*86400}, "member-1")

	full := &Service{Name: "Asesoría jurídica", Description: "Free legal advice on asylum.\nBy appointment.", Status: "active",
		Categories: []string{"legal", "migration"}, Languages: []string{"es", "en", "fr"},
		Areas:     []Area{{City: "Madrid", Country: "ES"}, {Text: "Online, any country"}},
		Schedules: []string{"Mon–Fri 10:00–14:00"}, Eligibility: "Anyone seeking asylum", ApplicationProcess: "Write first on Signal",
		Fees: "None", Contacts: []Contact{{Kind: "signal", Value: "+34 600 000 001", Preferred: true, Languages: []string{"es"}}, {Kind: "email", Value: "ayuda@example.org", PGP: "0123456789ABCDEF"}},
		Intake: &Intake{FirstContact: "Signal message", ResponseTime: "2 days", VettingRequired: true}, Alert: "Closed 24 December", LastVerified: "2025-12-15"}
	g.sign("entry-full", &Entry{ID: "asesoria-juridica", Seq: 3, Issued: now, Expires: now + 30*86400, Service: full}, "member-1")
	g.sign("entry-tombstone", &Entry{ID: "old-service", Seq: 2, Issued: now, Expires: now + 30*86400, Deleted: true}, "member-1")
	// member-2 signs two versions of one entry at one seq: equivocation.
	a := g.sign("entry-equivocation-a", &Entry{ID: "refugio", Seq: 1, Issued: now, Expires: now + 30*86400, Service: g.service("Refugio A")}, "member-2")
	b := g.sign("entry-equivocation-b", &Entry{ID: "refugio", Seq: 1, Issued: now, Expires: now + 30*86400, Service: g.service("Refugio B")}, "member-2")
	ev, err := NewEvidence(a, b, g.ids["reporter"])
	if err != nil {
		g.t.Fatal(err)
	}
	g.add("evidence-entries", ev)
	g.sign("revocation-member-2", &Revocation{Key: g.ids["member-2"].Public(), Charter: 1, Reason: "key lost", Issued: now}, "steward-1", "steward-2")
	g.sign("revocation-self", &Revocation{Key: rd.Public(), Issued: now}, "reader-1")
	// A manifest lists slots with the head of the record held in each.
	g.sign("manifest", &Manifest{Page: 0, Pages: 1, Issued: now,
		Slots: []SlotID{SlotIDOf("charter/1"), SlotIDOf("entry/" + g.ids["member-1"].Public().Hex() + "/asesoria-juridica")},
		Heads: []Head{HeadOf(g.recs["genesis"].Hash()), HeadOf(g.recs["entry-full"].Hash())}}, "member-1")

	// Two amendments of version 1, each signed by two stewards: a fork.
	// The third steward's approval settles it (digests.json).
	pol := Policy{MaxRecordBytes: 32768, MaxEntryLifetime: 90 * 86400, ClockSkew: 300, StaleAfter: 3 * 86400, Relays: []string{"/dns4/relay.example.org/tcp/443/wss"},
		MaxAuthorUpdatesPerHour: 30, MaxAuthorEntries: 100, MaxAuthorBytes: 1 << 20}
	stw := []Steward{g.steward("steward-1"), g.steward("steward-2"), g.steward("steward-3")}
	ca, err := Amend(c, gid, stw, 2, pol, vecNow)
	if err != nil {
		g.t.Fatal(err)
	}
	cb, err := Amend(c, gid, stw, 3, Policy{}, vecNow)
	if err != nil {
		g.t.Fatal(err)
	}
	sa := g.sign("charter-2a", ca, "steward-1", "steward-2")
	sb := g.sign("charter-2b", cb, "steward-2", "steward-3")
	ap3, err := NewApproval(sa, g.ids["steward-3"])
	if err != nil {
		g.t.Fatal(err)
	}
	g.add("approval-charter-2a", ap3)
	fe, err := NewEvidence(sa, sb, g.ids["reporter"])
	if err != nil {
		g.t.Fatal(err)
	}
	g.add("evidence-charter-fork", fe)

	st := NewState(g.net, func() time.Time { return vecNow })
	for _, n := range []string{"genesis", "epoch-1", "membership-1", "membership-2", "entry-full"} {
		if _, err := st.Apply(g.recs[n]); err != nil {
			g.t.Fatalf("%s: %v", n, err)
		}
	}
	hb, err := NewHeartbeat(st, g.ids["steward-1"], 3*time.Hour)
	if err != nil {
		g.t.Fatal(err)
	}
	g.add("heartbeat", hb)
}

// vecReadKey is epoch 1's read key in every vector.
func vecReadKey() ReadKey { return ReadKey(vecSeed("read key epoch 1")) }

func (g *vecGen) recordsFile() []byte {
	f := recordsFile{Comment: "One record of every type (§3, §4), and the extra ones digests.json uses. encoding is the record's canonical CBOR; hash = SHA-256(encoding); signatures are over domain || 0x00 || network || body (for an approval, the approved body under its type's domain); proposal_id for charters, memberships, revocations, epochs and approvals (§3); slot and slot_id as §7. Every record decodes, re-encodes byte for byte and verifies.",
		Now: vecNow.Unix(), NetworkID: g.net[:]}
	for _, n := range g.order {
		r := g.recs[n]
		vr := vecRecord{Name: n, Type: r.Type, TypeName: r.Type.String(), Domain: r.Type.domain(), Encoding: r.Encode()}
		h := r.Hash()
		vr.Hash = h[:]
		for _, s := range r.Sigs {
			vr.Signers = append(vr.Signers, g.keyName[s.Key])
		}
		switch r.Type {
		case TypeCharter, TypeMembership, TypeRevocation, TypeEpoch, TypeApproval:
			p := r.ProposalID()
			vr.ProposalID = p[:]
		}
		if r.Type == TypeApproval {
			var a Approval
			if err := unmarshalCanonical(r.Body, &a); err != nil {
				g.t.Fatal(err)
			}
			vr.Domain = a.Of.domain()
		}
		slot, err := r.Slot()
		if err != nil {
			g.t.Fatal(err)
		}
		sid := SlotIDOf(slot)
		vr.Slot, vr.SlotID = slot, sid[:]
		f.Records = append(f.Records, vr)
	}
	return mustJSON(g.t, f)
}

// sealRaw is Seal with a given nonce and padded plaintext: the vectors
// give both, so a reimplementation can reproduce the bytes.
func sealRaw(key ReadKey, nonce, padded []byte) []byte {
	tag := key.Tag()
	hdr := append([]byte{sealVersion}, tag[:]...)
	hdr = append(hdr, nonce...)
	sk := subkey(key, sealLabel)
	aead, _ := chacha20poly1305.NewX(sk[:])
	return aead.Seal(hdr, nonce, padded, hdr)
}

func padTo(rec []byte, n int) []byte {
	p := make([]byte, n)
	copy(p, rec)
	p[len(rec)] = 0x80
	return p
}

func (g *vecGen) sealing() []byte {
	key := vecReadKey()
	sk := subkey(key, sealLabel)
	tag := key.Tag()
	f := sealingFile{Comment: "Records sealed under epoch 1's read key (§5). nonce is the header's 24 bytes; padded_length the size bucket; sealed = 0x02 || key_tag || nonce || XChaCha20-Poly1305(seal_key, nonce, record || 0x80 || zeros to padded_length, aad = the 41-byte header). Opening gives encoding. serve_as_own false: padded beyond the record's own bucket, opens but a node seals afresh what it stores.",
		NetworkID: g.net[:], Epoch: 1, ReadKey: key[:], SealKey: sk[:], KeyTag: tag[:]}
	for _, c := range []struct {
		name, rec string
		bucket    int
	}{{"revocation, 1 KiB bucket", "revocation-member-2", 0}, {"membership, 2 KiB bucket", "membership-1", 0}, {"entry, 1 KiB bucket", "entry-full", 0}, {"genesis charter, 8 KiB bucket", "genesis", 0}, {"revocation padded to 2 KiB", "revocation-self", 2048}} {
		r := g.recs[c.rec]
		var sealed []byte
		if c.bucket == 0 {
			sealed = Seal(r, key)
		} else {
			nonce := make([]byte, chacha20poly1305.NonceSizeX)
			copy(nonce, vecSeed("nonce "+c.name))
			sealed = sealRaw(key, nonce, padTo(r.Encode(), c.bucket))
		}
		f.Sealings = append(f.Sealings, vecSealing{Name: c.name, Record: c.rec, Encoding: r.Encode(), Nonce: sealed[1+KeyTagLen : headerLen],
			PaddedLength: len(sealed) - headerLen - chacha20poly1305.Overhead, Sealed: sealed, ServeAsOwn: SealsAs(sealed, r, key)})
	}
	for _, n := range []int{0, 300, 1023, 1024, 2047, 2048, 65535, 65536, 81919, 81920, 262144} {
		f.Buckets = append(f.Buckets, vecBucket{RecordLength: n, PaddedLength: PaddedSize(n)})
	}
	return mustJSON(g.t, f)
}

func (g *vecGen) epochOf(name string) *Epoch {
	b, err := g.recs[name].DecodeBody()
	if err != nil {
		g.t.Fatal(err)
	}
	return b.(*Epoch)
}

func (g *vecGen) pages() (names []string, pages []*EpochPage) {
	for _, n := range g.order {
		if r := g.recs[n]; r.Type == TypeEpochPage {
			b, err := r.DecodeBody()
			if err != nil {
				g.t.Fatal(err)
			}
			names, pages = append(names, n), append(pages, b.(*EpochPage))
		}
	}
	return names, pages
}

func (g *vecGen) keyPackages() []byte {
	e := g.epochOf("epoch-1")
	key := vecReadKey()
	pageNames, pages := g.pages()
	f := keyPackagesFile{Comment: "Key packages of epoch 1 (records epoch-1, epoch-1-page-*), §2 and §4 EpochPage. HPKE encryption is randomized: these are open-this vectors. A recipient finds its package by tag in the pages, opens sealed (enc || ct) with HPKE base mode, suite MLKEM768-X25519 / HKDF-SHA256 / ChaCha20-Poly1305, its X-Wing seed as private key, info as given and no aad, gets read_key and checks it against key_commit. no_package: keys with no package among the pages listed (all pages: ErrNotRecipient; not all: ErrPagesMissing). key_mismatch: a package that opens to another key than the commitment: ErrKeyMismatch.",
		NetworkID: g.net[:], Epoch: "epoch-1", Pages: pageNames, Number: e.Number, Rotation: e.Rotation[:], ReadKey: key[:], KeyCommit: e.KeyCommit[:]}
	for _, n := range []string{"steward-1", "member-1"} {
		id := g.ids[n]
		tag := PackageTag(g.net, e.Number, e.Rotation, id.Public())
		vp := vecPackage{Recipient: n, RecipientKey: pkBytes(id.Public()), Tag: tag[:], Info: packageInfo(g.net, e.Number, e.Rotation, id.Public()), Page: -1}
		_, vp.XWingSeed = id.secrets()
		for i, p := range pages {
			if s, ok := p.find(tag); ok {
				vp.Page, vp.Sealed = i, s
			}
		}
		if k, err := OpenKeyPackage(id, g.net, e, pages); err != nil || k != key {
			g.t.Fatalf("%s: package opens to %x, %v", n, k, err)
		}
		f.Packages = append(f.Packages, vp)
	}
	for _, c := range []struct {
		who   string
		pages []int
	}{{"member-2", []int{0, 1}}, {"member-2", []int{0}}} {
		var sel []*EpochPage
		for _, i := range c.pages {
			sel = append(sel, pages[i])
		}
		_, err := OpenKeyPackage(g.ids[c.who], g.net, e, sel)
		en, err2 := errorName(err)
		if err2 != nil || en == "" {
			g.t.Fatalf("no package for %s: %v", c.who, err)
		}
		f.NoPackage = append(f.NoPackage, vecNoPackage{Recipient: c.who, RecipientKey: pkBytes(g.ids[c.who].Public()), Pages: c.pages, Error: en})
	}
	// A package sealing another key than the one committed to.
	id := g.ids["steward-1"]
	other := ReadKey(vecSeed("another read key"))
	info := packageInfo(g.net, e.Number, e.Rotation, id.Public())
	sealed, err := hpke.Seal(id.kem.PublicKey(), pkgKDF, pkgAEAD, info, other[:])
	if err != nil {
		g.t.Fatal(err)
	}
	_, seed := id.secrets()
	f.KeyMismatch = vecMismatch{XWingSeed: seed, Info: info, Sealed: sealed, OpensTo: other[:], KeyCommit: e.KeyCommit[:], Error: "ErrKeyMismatch"}
	return mustJSON(g.t, f)
}

// vecDigestSets are the record sets of digests.json.
var vecDigestSets = []struct {
	name, comment string
	records       []string
}{
	{"base", "a genesis, epoch 1 with its pages, two members (one approved by all three stewards), a reader, an entry and a tombstone",
		[]string{"genesis", "epoch-1", "epoch-1-page-0", "epoch-1-page-1", "membership-1", "approval-membership-1", "membership-2", "reader-1", "entry-full", "entry-tombstone"}},
	{"entry equivocation", "base and two versions of one entry at one seq by member-2, and the evidence of them: the lower record hash is the one kept",
		[]string{"genesis", "epoch-1", "epoch-1-page-0", "epoch-1-page-1", "membership-1", "approval-membership-1", "membership-2", "reader-1", "entry-full", "entry-tombstone", "entry-equivocation-a", "entry-equivocation-b", "evidence-entries"}},
	{"charter fork, tie", "base and two amendments of version 1, each signed by two of three stewards: neither has more signatures, the chain freezes at version 1",
		[]string{"genesis", "epoch-1", "epoch-1-page-0", "epoch-1-page-1", "membership-1", "approval-membership-1", "membership-2", "reader-1", "entry-full", "entry-tombstone", "charter-2a", "charter-2b", "evidence-charter-fork"}},
	{"charter fork, won", "the tie and the third steward's approval of charter-2a: three signatures against two, 2a is version 2",
		[]string{"genesis", "epoch-1", "epoch-1-page-0", "epoch-1-page-1", "membership-1", "approval-membership-1", "membership-2", "reader-1", "entry-full", "entry-tombstone", "charter-2a", "charter-2b", "evidence-charter-fork", "approval-charter-2a"}},
	{"revocation", "base, member-2's entry and the stewards' revocation of member-2: the key is revoked, its membership and entries gone",
		[]string{"genesis", "epoch-1", "epoch-1-page-0", "epoch-1-page-1", "membership-1", "approval-membership-1", "membership-2", "reader-1", "entry-full", "entry-tombstone", "entry-equivocation-a", "revocation-member-2", "revocation-self"}},
}

// digestOf applies records in order to a fresh state at now and returns
// its digest and lines.
func digestOf(net NetworkID, recs []*Record, now time.Time) (Hash, []vecDigestLine, error) {
	st := NewState(net, func() time.Time { return now })
	// A record refused for a passing reason (an epoch page before its
	// epoch) is applied again once others were, as a node does with its
	// parked records (node/parked.go), until nothing more is taken.
	for pending := recs; len(pending) > 0; {
		var again []*Record
		for _, r := range pending {
			_, err := st.Apply(r)
			switch {
			case err == nil, isExpectedRefusal(err):
			case MayPass(err):
				again = append(again, r)
			default:
				return Hash{}, nil, err
			}
		}
		if len(again) == len(pending) {
			break
		}
		pending = again
	}
	var lines []vecDigestLine
	st.mu.Lock()
	st.digestLines(func(parts ...[]byte) {
		l := vecDigestLine{Label: string(parts[0])}
		for _, p := range parts[1:] {
			l.Parts = append(l.Parts, slices.Clone(p))
		}
		lines = append(lines, l)
	})
	st.mu.Unlock()
	return st.Digest(), lines, nil
}

// isExpectedRefusal: records of a set that the state refuses and the
// digest rule expects refused (a revoked key's records, a record already
// known).
func isExpectedRefusal(err error) bool {
	return isAny(err, ErrRevoked, ErrDuplicate, ErrStale)
}

func isAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func (g *vecGen) digests() []byte {
	f := digestsFile{Comment: "Digests (§6) of record sets (names in records.json), applied at now in any order. lines are the digest's lines in order: label, then the other parts (hex); digest = SHA-256 over every part of every line as u32be(len) || bytes, label included."}
	for _, s := range vecDigestSets {
		var recs []*Record
		for _, n := range s.records {
			recs = append(recs, g.recs[n])
		}
		d, lines, err := digestOf(g.net, recs, vecNow)
		if err != nil {
			g.t.Fatalf("digest set %s: %v", s.name, err)
		}
		f.Sets = append(f.Sets, vecDigestSet{Name: s.name, Comment: s.comment, Now: vecNow.Unix(), Records: s.records, Lines: lines, Digest: d[:]})
	}
	return mustJSON(g.t, f)
}

// rendezvousCID is the CIDv1 (raw codec 0x55) of the SHA2-256 multihash
// of v, in binary: what nodes provide in the DHT (§7).
func rendezvousCID(v []byte) []byte {
	h := sha256.Sum256(v)
	return append([]byte{0x01, 0x55, 0x12, 0x20}, h[:]...)
}

func (g *vecGen) derivations() []byte {
	key := vecReadKey()
	sk, bk, rk := subkey(key, sealLabel), subkey(key, blindLabel), subkey(key, rendezvousLabel)
	tag := key.Tag()
	f := derivationsFile{Comment: "What a read key derives (§5, §7): subkeys by HKDF-SHA256 (no salt), the gossip topic names, the rendezvous of two days with the CIDv1 (raw, SHA2-256 multihash) nodes provide, and slot IDs with the DHT keys they are stored under in this epoch.",
		ReadKey: key[:], SealKey: sk[:], KeyTag: tag[:], BlindKey: bk[:], RendezvousKey: rk[:], Topics: map[string]string{}}
	for _, kind := range []string{"governance", "entries"} {
		id := TopicID(key, kind)
		f.Topics[kind] = "/ceiba/t/" + hex.EncodeToString(id[:])
	}
	for _, day := range []time.Time{vecNow, vecNow.AddDate(0, 0, -1)} {
		v := RendezvousKey(key, day)
		f.Rendezvous = append(f.Rendezvous, vecRendezvous{Day: day.Format(time.DateOnly), Value: v, CID: rendezvousCID(v)})
	}
	for _, n := range []string{"genesis", "membership-1", "epoch-1-page-0", "approval-membership-1", "reader-1", "entry-full", "manifest", "heartbeat", "evidence-entries", "evidence-charter-fork"} {
		slot, err := g.recs[n].Slot()
		if err != nil {
			g.t.Fatal(err)
		}
		sid := SlotIDOf(slot)
		f.Slots = append(f.Slots, vecSlotKey{Slot: slot, SlotID: sid[:], DHTKey: BlindSlot(key, sid)})
	}
	return mustJSON(g.t, f)
}

// vecPeerID is a binary libp2p peer ID of an Ed25519 key (identity
// multihash of the protobuf public key), made from a label.
func vecPeerID(label string) []byte {
	return append([]byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}, vecSeed("peer "+label)...)
}

func (g *vecGen) session() []byte {
	pk := SyncProofKey(g.net)
	ini, res := vecPeerID("initiator"), vecPeerID("responder")
	id := g.ids["member-1"]
	nonce := vecSeed("sync nonce")[:16]
	epochs := []uint64{1}
	body := SyncHello(id, g.net, ini, res, vecNow, nonce, epochs)
	tail := binary.BigEndian.AppendUint16(nil, uint16(len(epochs)))
	for _, e := range epochs {
		tail = binary.BigEndian.AppendUint64(tail, e)
	}
	f := sessionFile{Comment: "Session proofs (§7): sync_key = SHA-256(\"ceiba sync key v1\" || 0x00 || network_id). sync_hello: the proofs of both sides for two peer IDs, and the hello of member-1 (signed is what its Ed25519 signature covers after the domain \"ceiba/v2/sync-hello\" || 0x00; hello_body = proof_i || key || time || nonce || sig || n || epochs). admit: /ceiba/admit/2.0.0's macs and O's proof for two peer IDs and nonces (signed is what sig_o covers after \"ceiba/v2/admit\" || 0x00).",
		NetworkID: g.net[:], SyncKey: pk}
	f.Hello = vecSyncHello{Initiator: ini, Responder: res, ProofI: SyncProof(pk, 'I', ini, res), ProofR: SyncProof(pk, 'R', ini, res), Signer: "member-1",
		Time: vecNow.Unix(), Nonce: nonce, Epochs: epochs, Signed: SessionTranscript(g.net, ini, res, id.Public(), vecNow.Unix(), nonce, tail)}
	f.Hello.Body = append(slices.Clone(f.Hello.ProofI), body...)
	o, a := vecPeerID("opener"), vecPeerID("accepter")
	if bytes.Compare(o, a) > 0 {
		o, a = a, o
	}
	nO, nA := vecSeed("admit nO")[:16], vecSeed("admit nA")[:16]
	st := g.ids["steward-2"]
	f.Admit = vecAdmit{Opener: o, Accepter: a, NonceO: nO, NonceA: nA, MACO: AdmitMAC(pk, 'O', o, a, nO, nA), MACA: AdmitMAC(pk, 'A', o, a, nO, nA),
		SignerO: "steward-2", SignedO: admitTranscript(g.net, o, a, st.Public(), 'O', nO, nA), ProofO: AdmitProof(st, g.net, 'O', o, a, nO, nA)}
	return mustJSON(g.t, f)
}

func (g *vecGen) invite() []byte {
	inviter := vecPeerID("inviter")
	code := &InviteCode{Peer: inviter, Token: vecSeed("invite token")[:16], Addrs: [][]byte{
		{0x04, 192, 0, 2, 10, 0x91, 0x02, 0x0f, 0xa1, 0xcd, 0x03}, // /ip4/192.0.2.10/udp/4001/quic-v1
		{0x04, 192, 0, 2, 10, 0x06, 0x0f, 0xa1},                   // /ip4/192.0.2.10/tcp/4001
	}}
	cb, err := encMode.Marshal(code)
	if err != nil {
		g.t.Fatal(err)
	}
	f := inviteFile{Comment: "An invite (§9): the code's fields, its CBOR and its text; a redemption by reader-1 over a connection between two peer IDs (the request, the transcript message it signs, and the welcome: HPKE open-this, reader-1's X-Wing seed in keys.json opens welcome_sealed with info welcome_info to welcome_plaintext); codes a reader must refuse.",
		Code: vecInviteCode{Peer: code.Peer, Addrs: []hexb{code.Addrs[0], code.Addrs[1]},
			AddrsText: []string{"/ip4/192.0.2.10/udp/4001/quic-v1", "/ip4/192.0.2.10/tcp/4001"}, Token: code.Token, CBOR: cb, Code: code.String()}}
	red := g.ids["reader-1"]
	redeemer := vecPeerID("redeemer")
	req, tr, err := NewInviteRequest(red, code, "M.", inviter, redeemer)
	if err != nil {
		g.t.Fatal(err)
	}
	reqCBOR, err := encMode.Marshal(req)
	if err != nil {
		g.t.Fatal(err)
	}
	key := vecReadKey()
	w := &InviteWelcome{Network: g.net, Role: "reader", Keys: map[uint64][]byte{1: key[:]}, Records: [][]byte{g.recs["genesis"].Encode(), g.recs["reader-1"].Encode()}}
	sealed, err := SealInviteWelcome(tr, w)
	if err != nil {
		g.t.Fatal(err)
	}
	resp, err := encMode.Marshal(InviteResponse{Welcome: sealed})
	if err != nil {
		g.t.Fatal(err)
	}
	th := InviteTokenHash(code.Token)
	f.Redemption = vecInviteRedemption{Redeemer: "reader-1", InviterPeer: inviter, RedeemerPeer: redeemer, TokenHash: th[:], Transcript: tr.message(),
		Request: reqCBOR, WelcomeInfo: welcomeInfo(tr), Welcome: sealed, Plaintext: marshal(w), Response: resp}
	good := code.String()
	noAddrs := (&InviteCode{Peer: inviter, Token: code.Token}).String()
	shortToken := (&InviteCode{Peer: inviter, Token: code.Token[:15], Addrs: code.Addrs}).String()
	for _, in := range []string{"ceiba:" + good[len(InviteCodePrefix):], good[:len(good)-3] + "!!!", noAddrs, shortToken} {
		_, err := ParseInviteCode(in)
		en, err2 := errorName(err)
		if err2 != nil || en == "" {
			g.t.Fatalf("invite code %q: %v", in, err)
		}
		f.Refused = append(f.Refused, vecInviteParse{Input: in, Error: en})
	}
	return mustJSON(g.t, f)
}

// cborHead encodes a CBOR head of major type m and argument n, shortest.
func cborHead(m byte, n uint64) []byte {
	m <<= 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n < 1<<8:
		return []byte{m | 24, byte(n)}
	case n < 1<<16:
		return binary.BigEndian.AppendUint16([]byte{m | 25}, uint16(n))
	case n < 1<<32:
		return binary.BigEndian.AppendUint32([]byte{m | 26}, uint32(n))
	}
	return binary.BigEndian.AppendUint64([]byte{m | 27}, n)
}

// rawMap encodes a map of small-integer keys with the values given, in
// the order given (possibly not canonical).
func rawMap(pairs ...any) []byte {
	out := cborHead(5, uint64(len(pairs)/2))
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, cborHead(0, uint64(pairs[i].(int)))...)
		switch v := pairs[i+1].(type) {
		case rawCBOR:
			out = append(out, v...)
		default:
			out = append(out, marshal(v)...)
		}
	}
	return out
}

// rawCBOR is a value already encoded, which rawMap copies as it is.
type rawCBOR []byte

// rawRecord signs body bytes as given (canonical or not) by signers and
// encodes the envelope canonically, so that only the body is at fault.
func rawRecord(net NetworkID, t RecordType, body []byte, signers ...*Identity) *Record {
	r := &Record{Version: FormatVersion, Type: t, Network: net, Body: body}
	for _, s := range signers {
		r.putSig(Signature{Key: s.Public(), Sig: s.signDomain(t.domain(), signedMessage(net, body))})
	}
	return r
}

// envelope encodes a record's fields as a map in the order given.
func envelope(r *Record, order ...int) []byte {
	var pairs []any
	for _, k := range order {
		switch k {
		case 1:
			pairs = append(pairs, 1, r.Version)
		case 2:
			pairs = append(pairs, 2, r.Type)
		case 3:
			pairs = append(pairs, 3, r.Network)
		case 4:
			pairs = append(pairs, 4, r.Body)
		case 5:
			pairs = append(pairs, 5, r.Sigs)
		}
	}
	return rawMap(pairs...)
}

// smallOrderPoints are the encodings of the eight points of order
// dividing 8, computed from one point of order 8.
func smallOrderPoints() [][]byte {
	p8, err := new(edwards25519.Point).SetBytes(mustHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
	if err != nil {
		panic(err)
	}
	var out [][]byte
	acc := edwards25519.NewIdentityPoint()
	for range 8 {
		out = append(out, acc.Bytes())
		acc = new(edwards25519.Point).Add(acc, p8)
	}
	return out
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func (g *vecGen) negative() []byte {
	f := negativeFile{Comment: "Inputs a conforming implementation must refuse, each with the error class (errors.go) it refuses with; kind says what reads the input: cbor (the protocol's decoder, §1, into a generic value), record (decode and verify a record, §3), public_key (§2), sealed (open under sealing.json's key and network, §5), fingerprint and invite_code (text). A vector with error \"\" must be accepted.",
		NetworkID: g.net[:]}
	add := func(name, kind string, in []byte, want string) {
		got, err := runNegative(kind, in, g.net, vecReadKey())
		if got != want {
			g.t.Fatalf("negative vector %q: want %s, code gives %q (%v)", name, want, got, err)
		}
		f.Vectors = append(f.Vectors, vecNegative{Name: name, Kind: kind, Input: in, Error: want})
	}
	nest := func(depth int) []byte {
		b := bytes.Repeat([]byte{0x81}, depth-1)
		return append(b, 0x80)
	}
	// Generic decoder limits (§1).
	add("twelve nested arrays decode", "cbor", nest(12), "")
	add("thirteen nested arrays", "cbor", nest(13), "ErrMalformed")
	add("array of 4096 elements decodes", "cbor", append(cborHead(4, 4096), make([]byte, 4096)...), "")
	add("array of 4097 elements", "cbor", append(cborHead(4, 4097), make([]byte, 4097)...), "ErrMalformed")
	var m257 []byte
	for i := range 257 {
		m257 = append(m257, cborHead(0, uint64(i))...)
		m257 = append(m257, 0x00)
	}
	add("map of 257 pairs", "cbor", append(cborHead(5, 257), m257...), "ErrMalformed")
	add("integer not in its shortest form", "cbor", []byte{0x18, 0x01}, "ErrNonCanonical")
	add("map keys not sorted", "cbor", []byte{0xa2, 0x02, 0x00, 0x01, 0x00}, "ErrNonCanonical")
	add("duplicate map key", "cbor", []byte{0xa2, 0x01, 0x00, 0x01, 0x00}, "ErrMalformed")
	add("indefinite-length array", "cbor", []byte{0x9f, 0x01, 0xff}, "ErrMalformed")
	add("tag", "cbor", []byte{0xc1, 0x01}, "ErrMalformed")
	add("invalid UTF-8 in text", "cbor", []byte{0x62, 0xc3, 0x28}, "ErrMalformed")
	add("trailing bytes", "cbor", []byte{0x01, 0x00}, "ErrMalformed")

	// Records: each differs from a valid record (or is signed as given)
	// in one respect only.
	rev := g.recs["revocation-member-2"]
	enc := rev.Encode()
	add("valid revocation (control)", "record", enc, "")
	add("envelope map keys out of order", "record", envelope(rev, 2, 1, 3, 4, 5), "ErrNonCanonical")
	long := append([]byte{0xa5, 0x01, 0x18, 0x01}, enc[3:]...) // version 1 as 0x18 0x01
	add("version not in its shortest form", "record", long, "ErrNonCanonical")
	add("duplicate envelope key", "record", rawMap(1, rev.Version, 1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rev.Sigs), "ErrMalformed")
	add("unknown envelope key", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rev.Sigs, 6, 0), "ErrMalformed")
	add("trailing byte after the record", "record", append(slices.Clone(enc), 0x00), "ErrMalformed")
	add("envelope with a tag", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rawCBOR(append([]byte{0xd8, 0x40}, marshal(rev.Network)...)), 4, rev.Body, 5, rev.Sigs), "ErrMalformed")
	add("signatures nested 13 deep", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rawCBOR(nest(13))), "ErrMalformed")
	add("envelope version 1 (protocol version 1's)", "record", rawMap(1, 1, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rev.Sigs), "ErrUnknownVersion")
	add("envelope version 3", "record", rawMap(1, 3, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rev.Sigs), "ErrUnknownVersion")
	add("unknown record type 12", "record", rawMap(1, rev.Version, 2, 12, 3, rev.Network, 4, rev.Body, 5, rev.Sigs), "ErrUnknownType")
	add("no signature", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, []Signature{}), "ErrBadSignature")
	rsigs := slices.Clone(rev.Sigs)
	slices.Reverse(rsigs)
	add("signatures not sorted by key", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, rsigs), "ErrMalformed")

	// S >= L: the same signature with L added to S (still 32 bytes).
	L, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	bumped := slices.Clone(rev.Sigs)
	sig := slices.Clone(bumped[0].Sig)
	s := new(big.Int).SetBytes(reverse(sig[32:]))
	s.Add(s, L)
	sb := s.FillBytes(make([]byte, 32))
	copy(sig[32:], reverse(sb))
	bumped[0].Sig = sig
	add("signature with S + L in place of S", "record", rawMap(1, rev.Version, 2, rev.Type, 3, rev.Network, 4, rev.Body, 5, bumped), "ErrBadSignature")

	// The universal signature of a small-order key: R = identity, S = 0.
	weak := PublicKey(mustHex("0100000000000000000000000000000000000000000000000000000000000000"))
	wsig := append(mustHex("0100000000000000000000000000000000000000000000000000000000000000"), make([]byte, 32)...)
	if !ed25519.Verify(weak[:], signingInput(TypeRevocation.domain(), signedMessage(g.net, rev.Body)), wsig) {
		g.t.Fatal("the small-order key's universal signature should pass plain Ed25519")
	}
	add("revocation signed by the identity point with its universal signature", "record",
		rawMap(1, FormatVersion, 2, TypeRevocation, 3, g.net, 4, rev.Body, 5, []Signature{{Key: weak, Sig: wsig}}), "ErrBadSignature")
	add("revocation naming the identity point as the key revoked", "record",
		rawRecord(g.net, TypeRevocation, marshal(&Revocation{Key: weak, Charter: 1, Issued: vecNow.Unix()}), g.ids["steward-1"]).Encode(), "ErrInvalid")

	// Bodies signed as they are, so only the body is at fault.
	m2 := g.ids["member-2"]
	zeroField := rawMap(1, m2.Public(), 2, 0, 3, "", 4, vecNow.Unix()) // charter 0 and reason "" present
	add("revocation body with optional fields present at their zero value", "record", rawRecord(g.net, TypeRevocation, zeroField, g.ids["steward-1"]).Encode(), "ErrNonCanonical")
	bad := &Membership{Charter: 1, Org: m2.Public(), KEM: m2.KEMPublic(), KEMSig: g.ids["member-1"].KEMBinding(), Name: "Colectivo Dos", Issued: vecNow.Unix()}
	add("membership whose kem_sig is another key's", "record", rawRecord(g.net, TypeMembership, marshal(bad), g.ids["steward-1"]).Encode(), "ErrInvalid")
	add("entry expiring at its issue time", "record", rawRecord(g.net, TypeEntry, marshal(&Entry{ID: "x", Seq: 1, Issued: vecNow.Unix(), Expires: vecNow.Unix(), Service: g.service("X")}), g.ids["member-1"]).Encode(), "ErrInvalid")
	add("entry id with an upper-case letter", "record", rawRecord(g.net, TypeEntry, marshal(&Entry{ID: "Refugio", Seq: 1, Issued: vecNow.Unix(), Expires: vecNow.Unix() + 86400, Service: g.service("X")}), g.ids["member-1"]).Encode(), "ErrInvalid")
	e := *g.epochOf("epoch-1")
	e.Number = 1<<40 + 1
	add("epoch numbered 2^40 + 1", "record", rawRecord(g.net, TypeEpoch, marshal(&e), g.ids["steward-1"]).Encode(), "ErrInvalid")
	gen := g.recs["genesis"]
	other := NetworkID(vecSeed("other network"))
	add("genesis charter under a network ID that is not its hash", "record", rawRecord(other, TypeCharter, gen.Body, g.ids["steward-1"]).Encode(), "ErrWrongNetwork")
	ap := withSigs(g.recs["approval-membership-1"], &Record{Sigs: []Signature{{Key: g.ids["steward-1"].Public(), Sig: g.ids["steward-1"].signDomain(TypeMembership.domain(), signedMessage(g.net, g.recs["membership-1"].Body))}}})
	add("approval with two signatures", "record", ap.Encode(), "ErrInvalid")

	// Public keys (§2).
	for i, p := range smallOrderPoints() {
		add(fmt.Sprintf("small-order point %d", i), "public_key", p, "ErrWeakKey")
	}
	add("identity with the sign bit set (x = 0, non-canonical)", "public_key", mustHex("0100000000000000000000000000000000000000000000000000000000000080"), "ErrWeakKey")
	add("y = p + 1 (non-canonical identity)", "public_key", mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"), "ErrWeakKey")
	// A non-canonical encoding (y >= p) of a point of large order.
	for y := byte(2); y < 19; y++ {
		b := mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
		b[0] += y
		if p, err := new(edwards25519.Point).SetBytes(b); err == nil && new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 0 {
			add(fmt.Sprintf("y = p + %d (non-canonical encoding of a large-order point)", y), "public_key", b, "ErrWeakKey")
			break
		}
	}
	add("not a point on the curve", "public_key", mustHex("0200000000000000000000000000000000000000000000000000000000000000"), "ErrWeakKey")
	// A mixed-order key (large order plus a torsion component) is accepted.
	pub, _ := new(edwards25519.Point).SetBytes(pkBytes(g.ids["steward-1"].Public()))
	tors, _ := new(edwards25519.Point).SetBytes(smallOrderPoints()[1])
	add("mixed-order key (accepted)", "public_key", new(edwards25519.Point).Add(pub, tors).Bytes(), "")
	add("steward-1's key (accepted)", "public_key", pkBytes(g.ids["steward-1"].Public()), "")

	// Sealings (§5), under sealing.json's key: each built for its fault.
	key := vecReadKey()
	renc := rev.Encode()
	nonce := vecSeed("negative nonce")[:chacha20poly1305.NonceSizeX]
	good := sealRaw(key, nonce, padTo(renc, 1024))
	add("sealed revocation (control)", "sealed", good, "")
	v1 := slices.Clone(good)
	v1[0] = 1
	add("seal version 1", "sealed", v1, "ErrUnknownVersion")
	add("shorter than a header and a tag", "sealed", good[:headerLen+15], "ErrMalformed")
	add("padded to 1500 bytes, not a size bucket", "sealed", sealRaw(key, nonce, padTo(renc, 1500)), "ErrMalformed")
	otherKey := ReadKey(vecSeed("another read key"))
	add("sealed under a key not held (unknown tag)", "sealed", sealRaw(otherKey, nonce, padTo(renc, 1024)), "ErrNoKey")
	flip := slices.Clone(good)
	flip[len(flip)-1] ^= 1
	add("ciphertext changed", "sealed", flip, "ErrDecrypt")
	hdr := slices.Clone(good)
	hdr[1] ^= 1 // key tag changed: no key
	add("header's key tag changed", "sealed", hdr, "ErrNoKey")
	nonceFlip := slices.Clone(good)
	nonceFlip[headerLen-1] ^= 1
	add("header's nonce changed", "sealed", nonceFlip, "ErrDecrypt")
	add("no 0x80 end marker", "sealed", sealRaw(key, nonce, append(slices.Clone(renc), make([]byte, 1024-len(renc))...)), "ErrMalformed")
	foreign := rawRecord(other, TypeRevocation, rev.Body, g.ids["steward-1"], g.ids["steward-2"])
	add("a record of another network", "sealed", sealRaw(key, nonce, padTo(foreign.Encode(), 1024)), "ErrWrongNetwork")
	return mustJSON(g.t, f)
}

func reverse(b []byte) []byte {
	out := slices.Clone(b)
	slices.Reverse(out)
	return out
}
