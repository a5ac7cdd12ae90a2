package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// TestVectors checks every vector in docs/vectors against the code: what
// decodes re-encodes byte for byte and verifies, what is sealed opens to
// what the vector says, derivations and digests come out equal, and every
// negative vector is refused with its error class. Where the spec's text
// gives a formula, the check also computes it from the text, with the
// standard library alone (spec*), so that the vectors, the code and
// PROTOCOL.md cannot drift apart.
func TestVectors(t *testing.T) {
	var keys keysFile
	readVectors(t, "keys.json", &keys)
	ids := map[string]*Identity{}
	for _, v := range keys.Identities {
		id, err := identityFromSecrets(v.Ed25519Seed, v.XWingSeed)
		if err != nil {
			t.Fatalf("%s: %v", v.Name, err)
		}
		ids[v.Name] = id
		if !bytes.Equal(pkBytes(id.Public()), v.PublicKey) || !bytes.Equal(ed25519.NewKeyFromSeed(v.Ed25519Seed)[32:], v.PublicKey) {
			t.Errorf("%s: public key", v.Name)
		}
		if !bytes.Equal(id.KEMPublic(), v.KEMPublicKey) || len(v.KEMPublicKey) != KEMPublicKeySize {
			t.Errorf("%s: KEM public key", v.Name)
		}
		if id.Fingerprint() != v.Fingerprint || specFingerprint(v.PublicKey) != v.Fingerprint {
			t.Errorf("%s: fingerprint %s, code %s, spec %s", v.Name, v.Fingerprint, id.Fingerprint(), specFingerprint(v.PublicKey))
		}
		if !VerifyKEMBinding(id.Public(), v.KEMPublicKey, v.KEMSig) ||
			!ed25519.Verify(ed25519.PublicKey(v.PublicKey), slices.Concat([]byte("ceiba/v2/kem-binding\x00"), v.PublicKey, v.KEMPublicKey), v.KEMSig) {
			t.Errorf("%s: KEM binding does not verify", v.Name)
		}
	}
	for _, v := range keys.Fingerprints {
		n, err := NormalizeFingerprint(v.Input)
		if got := mustErrorName(t, err); got != v.Error || n != v.Normalized {
			t.Errorf("fingerprint %q: got %q, %q; vector %q, %q", v.Input, n, got, v.Normalized, v.Error)
		}
	}

	var recs recordsFile
	readVectors(t, "records.json", &recs)
	net := NetworkID(recs.NetworkID)
	byName := map[string]*Record{}
	for _, v := range recs.Records {
		r, err := DecodeRecord(v.Encoding)
		if err != nil {
			t.Errorf("record %s: %v", v.Name, err)
			continue
		}
		byName[v.Name] = r
		h := r.Hash()
		if !bytes.Equal(r.Encode(), v.Encoding) || !bytes.Equal(h[:], v.Hash) || sha256.Sum256(v.Encoding) != h {
			t.Errorf("record %s: re-encoding or hash differs", v.Name)
		}
		if r.Type != v.Type || r.Type.String() != v.TypeName || r.Network != net {
			t.Errorf("record %s: type or network", v.Name)
		}
		if v.ProposalID != nil {
			p := r.ProposalID()
			if !bytes.Equal(p[:], v.ProposalID) {
				t.Errorf("record %s: proposal ID", v.Name)
			}
		}
		if slot, err := r.Slot(); err != nil || slot != v.Slot || !bytes.Equal(specSlotID(slot), v.SlotID) {
			t.Errorf("record %s: slot %q (%v)", v.Name, slot, err)
		}
		// The signatures, checked as the text says: Ed25519 over domain
		// || 0x00 || network || body (an approval: the approved body).
		body := r.Body
		if r.Type == TypeApproval {
			var a Approval
			if err := unmarshalCanonical(r.Body, &a); err != nil {
				t.Fatal(err)
			}
			body = a.Proposal
		}
		if len(r.Sigs) != len(v.Signers) {
			t.Errorf("record %s: %d signers listed, %d signatures", v.Name, len(v.Signers), len(r.Sigs))
		}
		for i, s := range r.Sigs {
			if i < len(v.Signers) && (ids[v.Signers[i]] == nil || ids[v.Signers[i]].Public() != s.Key) {
				t.Errorf("record %s: signer %d is not %s", v.Name, i, v.Signers[i])
			}
			if !ed25519.Verify(s.Key[:], slices.Concat([]byte(v.Domain+"\x00"), net[:], body), s.Sig) {
				t.Errorf("record %s: signature %d does not verify over the documented input", v.Name, i)
			}
		}
		if r.Type == TypeCharter && GenesisID(r.Body) == net != (v.Name == "genesis") {
			t.Errorf("record %s: network ID", v.Name)
		}
	}

	var seal sealingFile
	readVectors(t, "sealing.json", &seal)
	key := ReadKey(seal.ReadKey)
	if sk := specHKDF(seal.ReadKey, "ceiba read key v1: seal"); !bytes.Equal(sk, seal.SealKey) {
		t.Error("seal key")
	}
	if tag := key.Tag(); !bytes.Equal(tag[:], seal.KeyTag) || !bytes.Equal(specHKDF(seal.ReadKey, "ceiba/v2/key-tag")[:16], seal.KeyTag) {
		t.Error("key tag")
	}
	for _, v := range seal.Sealings {
		r, err := Open(v.Sealed, NetworkID(seal.NetworkID), Keyring{seal.Epoch: key})
		if err != nil || !bytes.Equal(r.Encode(), v.Encoding) || !bytes.Equal(v.Encoding, byName[v.Record].Encode()) {
			t.Errorf("sealing %s: opens to another record (%v)", v.Name, err)
			continue
		}
		if !bytes.Equal(specSeal(seal.ReadKey, v.Nonce, v.Encoding, v.PaddedLength), v.Sealed) {
			t.Errorf("sealing %s: the text's construction gives other bytes", v.Name)
		}
		if SealsAs(v.Sealed, r, key) != v.ServeAsOwn || (PaddedSize(len(v.Encoding)) == v.PaddedLength) != v.ServeAsOwn {
			t.Errorf("sealing %s: serve_as_own", v.Name)
		}
	}

	for _, b := range seal.Buckets {
		if PaddedSize(b.RecordLength) != b.PaddedLength || specBucket(b.RecordLength) != b.PaddedLength {
			t.Errorf("a record of %d bytes pads to %d, code %d, text %d", b.RecordLength, b.PaddedLength, PaddedSize(b.RecordLength), specBucket(b.RecordLength))
		}
	}

	checkKeyPackages(t, ids, byName)
	checkDigests(t, net, byName)
	checkDerivations(t)
	checkSession(t, ids)
	checkInvite(t, ids)

	var neg negativeFile
	readVectors(t, "negative.json", &neg)
	for _, v := range neg.Vectors {
		got, err := runNegative(v.Kind, v.Input, NetworkID(neg.NetworkID), key)
		if got != v.Error {
			t.Errorf("negative %q (%s): want %q, code gives %q (%v)", v.Name, v.Kind, v.Error, got, err)
		}
	}
}

// TestVectorsAreCurrent regenerates every vector and compares it with
// docs/vectors byte for byte: the generator is deterministic, so the
// files change only when the code does. CEIBA_WRITE_VECTORS=1 writes them
// instead (after a deliberate change of a format or a rule).
func TestVectorsAreCurrent(t *testing.T) {
	files := generateVectors(t)
	if os.Getenv("CEIBA_WRITE_VECTORS") == "1" {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(vectorsDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d vector files to %s", len(files), vectorsDir)
		return
	}
	onDisk, err := filepath.Glob(filepath.Join(vectorsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(onDisk) != len(files) {
		t.Errorf("%s holds %d vector files, the generator makes %d", vectorsDir, len(onDisk), len(files))
	}
	for name, b := range files {
		old, err := os.ReadFile(filepath.Join(vectorsDir, name))
		if err != nil {
			t.Errorf("%v (regenerate with CEIBA_WRITE_VECTORS=1)", err)
			continue
		}
		if !bytes.Equal(old, b) {
			t.Errorf("%s differs from what the code generates now: a format or rule changed; if on purpose, regenerate with CEIBA_WRITE_VECTORS=1 go test -run TestVectorsAreCurrent ./directory/ and say so in PROTOCOL.md §10", name)
		}
	}
}

func readVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func mustErrorName(t *testing.T, err error) string {
	t.Helper()
	n, err2 := errorName(err)
	if err2 != nil {
		t.Error(err2)
	}
	return n
}

// runNegative reads in as kind says and returns the class of the error.
func runNegative(kind string, in []byte, net NetworkID, key ReadKey) (string, error) {
	var err error
	switch kind {
	case "cbor":
		var v any
		err = unmarshalCanonical(in, &v)
	case "record":
		_, err = DecodeRecord(in)
	case "public_key":
		if len(in) != len(PublicKey{}) {
			return "wrong length", nil
		}
		err = CheckPublicKey(PublicKey(in))
	case "sealed":
		_, err = Open(in, net, Keyring{1: key})
	default:
		return "unknown kind " + kind, nil
	}
	n, err2 := errorName(err)
	if err2 != nil {
		return err2.Error(), err
	}
	return n, err
}

func checkKeyPackages(t *testing.T, ids map[string]*Identity, byName map[string]*Record) {
	var f keyPackagesFile
	readVectors(t, "keypackages.json", &f)
	net := NetworkID(f.NetworkID)
	eb, err := byName[f.Epoch].DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	e := eb.(*Epoch)
	var pages []*EpochPage
	for i, n := range f.Pages {
		b, err := byName[n].DecodeBody()
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, b.(*EpochPage))
		if ph := domainHash("ceiba/v2/epoch-page", byName[n].Body); e.PageHashes[i] != ph {
			t.Errorf("page %d: hash not listed in the epoch", i)
		}
	}
	if e.Number != f.Number || !bytes.Equal(e.Rotation[:], f.Rotation) || !bytes.Equal(e.KeyCommit[:], f.KeyCommit) {
		t.Error("epoch fields")
	}
	spec := sha256.Sum256(slices.Concat([]byte("ceiba/v2/epoch-key\x00"), f.NetworkID, binary.BigEndian.AppendUint64(nil, f.Number), f.Rotation, f.ReadKey))
	if !bytes.Equal(spec[:], f.KeyCommit) {
		t.Error("key_commit is not the text's hash of the read key")
	}
	for _, v := range f.Packages {
		specTag := sha256.Sum256(slices.Concat([]byte("ceiba/v2/package-tag\x00"), f.NetworkID, binary.BigEndian.AppendUint64(nil, f.Number), f.Rotation, v.RecipientKey))
		specInfo := slices.Concat([]byte("ceiba epoch key v2\x00"), f.NetworkID, binary.BigEndian.AppendUint64(nil, f.Number), f.Rotation, v.RecipientKey)
		if !bytes.Equal(specTag[:16], v.Tag) || !bytes.Equal(specInfo, v.Info) {
			t.Errorf("package of %s: tag or info", v.Recipient)
		}
		if s, ok := pages[v.Page].find([16]byte(v.Tag)); !ok || !bytes.Equal(s, v.Sealed) {
			t.Errorf("package of %s: not in page %d", v.Recipient, v.Page)
		}
		sk, err := hpke.MLKEM768X25519().NewPrivateKey(v.XWingSeed)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := hpke.Open(sk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), v.Info, v.Sealed)
		if err != nil || !bytes.Equal(plain, f.ReadKey) {
			t.Errorf("package of %s does not open to the read key (%v)", v.Recipient, err)
		}
		if k, err := OpenKeyPackage(ids[v.Recipient], net, e, pages); err != nil || !bytes.Equal(k[:], f.ReadKey) {
			t.Errorf("OpenKeyPackage for %s: %v", v.Recipient, err)
		}
	}
	for _, v := range f.NoPackage {
		var sel []*EpochPage
		for _, i := range v.Pages {
			sel = append(sel, pages[i])
		}
		_, err := OpenKeyPackage(ids[v.Recipient], net, e, sel)
		if got := mustErrorName(t, err); got != v.Error {
			t.Errorf("no package for %s in pages %v: %q, want %q", v.Recipient, v.Pages, got, v.Error)
		}
	}
	m := f.KeyMismatch
	sk, err := hpke.MLKEM768X25519().NewPrivateKey(m.XWingSeed)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := hpke.Open(sk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), m.Info, m.Sealed)
	if err != nil || !bytes.Equal(plain, m.OpensTo) || VerifyEpochKey(net, e, ReadKey(plain)) || !bytes.Equal(m.KeyCommit, f.KeyCommit) || m.Error != "ErrKeyMismatch" {
		t.Errorf("key mismatch vector: opens to %x (%v), or matches the commitment", plain, err)
	}
}

func checkDigests(t *testing.T, net NetworkID, byName map[string]*Record) {
	var f digestsFile
	readVectors(t, "digests.json", &f)
	for _, s := range f.Sets {
		var recs []*Record
		for _, n := range s.Records {
			recs = append(recs, byName[n])
		}
		// Any order gives the same digest: as listed, reversed, and
		// rotated by half.
		rev := slices.Clone(recs)
		slices.Reverse(rev)
		rot := append(slices.Clone(recs[len(recs)/2:]), recs[:len(recs)/2]...)
		for i, order := range [][]*Record{recs, rev, rot} {
			d, lines, err := digestOf(net, order, time.Unix(s.Now, 0))
			if err != nil {
				t.Errorf("digest %s, order %d: %v", s.Name, i, err)
				continue
			}
			if !bytes.Equal(d[:], s.Digest) {
				t.Errorf("digest %s, order %d: %x, vector %x", s.Name, i, d[:], []byte(s.Digest))
			}
			if i == 0 && !slices.EqualFunc(lines, s.Lines, func(a, b vecDigestLine) bool {
				return a.Label == b.Label && slices.EqualFunc(a.Parts, b.Parts, func(x, y hexb) bool { return bytes.Equal(x, y) })
			}) {
				t.Errorf("digest %s: lines differ", s.Name)
			}
		}
		h := sha256.New()
		for _, l := range s.Lines {
			for _, p := range append([]hexb{hexb(l.Label)}, l.Parts...) {
				h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
				h.Write(p)
			}
		}
		if !bytes.Equal(h.Sum(nil), s.Digest) {
			t.Errorf("digest %s: the hash of its lines is not its digest", s.Name)
		}
	}
}

func checkDerivations(t *testing.T) {
	var f derivationsFile
	readVectors(t, "derivations.json", &f)
	key := ReadKey(f.ReadKey)
	for label, want := range map[string]hexb{"ceiba read key v1: seal": f.SealKey, "ceiba read key v1: dht slot": f.BlindKey, "ceiba/v2/rendezvous": f.RendezvousKey} {
		if !bytes.Equal(specHKDF(f.ReadKey, label), want) {
			t.Errorf("subkey %q", label)
		}
	}
	for kind, name := range f.Topics {
		id := TopicID(key, kind)
		if name != "/ceiba/t/"+hex.EncodeToString(id[:]) || name != "/ceiba/t/"+hex.EncodeToString(specHKDF(f.ReadKey, "ceiba/v2/topic "+kind))[:32] {
			t.Errorf("topic %s: %s", kind, name)
		}
	}
	if len(f.Topics) != 2 {
		t.Errorf("%d topics", len(f.Topics))
	}
	for _, v := range f.Rendezvous {
		day, err := time.Parse(time.DateOnly, v.Day)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, f.RendezvousKey)
		m.Write([]byte("ceiba rendezvous v2\x00" + v.Day))
		if !bytes.Equal(RendezvousKey(key, day), v.Value) || !bytes.Equal(m.Sum(nil), v.Value) || !bytes.Equal(rendezvousCID(v.Value), v.CID) {
			t.Errorf("rendezvous %s", v.Day)
		}
	}
	for _, v := range f.Slots {
		m := hmac.New(sha256.New, f.BlindKey)
		m.Write(append([]byte("ceiba dht slot v2\x00"), v.SlotID...))
		spec := "/ceiba/" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil))
		if !bytes.Equal(specSlotID(v.Slot), v.SlotID) || BlindSlot(key, SlotID(v.SlotID)) != v.DHTKey || spec != v.DHTKey {
			t.Errorf("slot %s", v.Slot)
		}
	}
}

func checkSession(t *testing.T, ids map[string]*Identity) {
	var f sessionFile
	readVectors(t, "session.json", &f)
	net := NetworkID(f.NetworkID)
	if sk := sha256.Sum256(slices.Concat([]byte("ceiba sync key v1\x00"), f.NetworkID)); !bytes.Equal(sk[:], f.SyncKey) || !bytes.Equal(SyncProofKey(net), f.SyncKey) {
		t.Error("sync key")
	}
	h := f.Hello
	for side, want := range map[byte]hexb{'I': h.ProofI, 'R': h.ProofR} {
		m := hmac.New(sha256.New, f.SyncKey)
		m.Write(slices.Concat([]byte("ceiba sync proof v1\x00"), []byte{side}, h.Initiator, []byte{0}, h.Responder))
		if !bytes.Equal(m.Sum(nil), want) || !bytes.Equal(SyncProof(f.SyncKey, side, h.Initiator, h.Responder), want) {
			t.Errorf("sync proof %c", side)
		}
	}
	id := ids[h.Signer]
	tail := binary.BigEndian.AppendUint16(nil, uint16(len(h.Epochs)))
	for _, e := range h.Epochs {
		tail = binary.BigEndian.AppendUint64(tail, e)
	}
	k := id.Public()
	signed := slices.Concat(f.NetworkID, binary.BigEndian.AppendUint16(nil, uint16(len(h.Initiator))), h.Initiator,
		binary.BigEndian.AppendUint16(nil, uint16(len(h.Responder))), h.Responder, k[:], binary.BigEndian.AppendUint64(nil, uint64(h.Time)), h.Nonce, tail)
	if !bytes.Equal(signed, h.Signed) {
		t.Error("sync hello: signed message is not the text's layout")
	}
	body := SyncHello(id, net, h.Initiator, h.Responder, time.Unix(h.Time, 0), h.Nonce, h.Epochs)
	if !bytes.Equal(append(slices.Clone(h.ProofI), body...), h.Body) {
		t.Error("sync hello body")
	}
	sig := h.Body[32+32+8+16 : 32+32+8+16+64]
	if !ed25519.Verify(k[:], slices.Concat([]byte("ceiba/v2/sync-hello\x00"), h.Signed), sig) {
		t.Error("sync hello signature does not verify over the documented input")
	}
	a := f.Admit
	for side, want := range map[byte]hexb{'O': a.MACO, 'A': a.MACA} {
		m := hmac.New(sha256.New, f.SyncKey)
		m.Write(slices.Concat([]byte("ceiba admit v2\x00"), []byte{side}, binary.BigEndian.AppendUint16(nil, uint16(len(a.Opener))), a.Opener,
			binary.BigEndian.AppendUint16(nil, uint16(len(a.Accepter))), a.Accepter, a.NonceO, a.NonceA))
		if !bytes.Equal(m.Sum(nil), want) || !bytes.Equal(AdmitMAC(f.SyncKey, side, a.Opener, a.Accepter, a.NonceO, a.NonceA), want) {
			t.Errorf("admit mac %c", side)
		}
	}
	so := ids[a.SignerO].Public()
	signedO := slices.Concat(f.NetworkID, binary.BigEndian.AppendUint16(nil, uint16(len(a.Opener))), a.Opener,
		binary.BigEndian.AppendUint16(nil, uint16(len(a.Accepter))), a.Accepter, so[:], make([]byte, 8), a.NonceO, a.NonceA, []byte{'O'})
	if !bytes.Equal(signedO, a.SignedO) || !bytes.Equal(a.ProofO[:32], so[:]) ||
		!ed25519.Verify(so[:], slices.Concat([]byte("ceiba/v2/admit\x00"), a.SignedO), a.ProofO[32:]) {
		t.Error("admit proof: not the text's layout, or does not verify")
	}
	if k, ok := CheckAdmitProof(net, a.ProofO, 'O', a.Opener, a.Accepter, a.NonceO, a.NonceA); !ok || k != so {
		t.Error("CheckAdmitProof refuses the vector")
	}
}

func checkInvite(t *testing.T, ids map[string]*Identity) {
	var f inviteFile
	readVectors(t, "invite.json", &f)
	c, err := ParseInviteCode(f.Code.Code)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Peer, f.Code.Peer) || !bytes.Equal(c.Token, f.Code.Token) || len(c.Addrs) != len(f.Code.Addrs) || c.String() != f.Code.Code {
		t.Error("invite code fields")
	}
	for i := range c.Addrs {
		if !bytes.Equal(c.Addrs[i], f.Code.Addrs[i]) {
			t.Errorf("invite address %d", i)
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(f.Code.Code, InviteCodePrefix))
	if err != nil || !bytes.Equal(raw, f.Code.CBOR) || !bytes.Equal(rawMap(1, f.Code.Peer, 2, [][]byte{f.Code.Addrs[0], f.Code.Addrs[1]}, 3, f.Code.Token), f.Code.CBOR) {
		t.Error("invite code: not base64url of the documented map")
	}
	r := f.Redemption
	id := ids[r.Redeemer]
	req, tr, err := NewInviteRequest(id, c, "M.", r.InviterPeer, r.RedeemerPeer)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := encMode.Marshal(req); !bytes.Equal(b, r.Request) {
		t.Error("invite request encoding")
	}
	th := sha256.Sum256(f.Code.Token)
	k := id.Public()
	msg := slices.Concat(th[:], binary.BigEndian.AppendUint16(nil, uint16(len(r.InviterPeer))), r.InviterPeer,
		binary.BigEndian.AppendUint16(nil, uint16(len(r.RedeemerPeer))), r.RedeemerPeer, k[:], binary.BigEndian.AppendUint16(nil, uint16(len(id.KEMPublic()))), id.KEMPublic())
	if !bytes.Equal(th[:], r.TokenHash) || !bytes.Equal(msg, r.Transcript) || !bytes.Equal(tr.message(), r.Transcript) {
		t.Error("invite transcript message")
	}
	if !VerifyInviteTranscript(tr, req.Sig) || !ed25519.Verify(k[:], slices.Concat([]byte("ceiba/v2/invite-transcript\x00"), r.Transcript), req.Sig) {
		t.Error("invite transcript signature")
	}
	if !bytes.Equal(slices.Concat([]byte("ceiba invite welcome v1\x00"), r.Transcript), r.WelcomeInfo) {
		t.Error("welcome info")
	}
	w, kr, err := OpenInviteWelcome(id, tr, r.Welcome)
	if err != nil || !bytes.Equal(marshal(w), r.Plaintext) || len(kr) != 1 {
		t.Errorf("welcome does not open to the plaintext: %v", err)
	}
	var resp InviteResponse
	if err := inviteDec.Unmarshal(r.Response, &resp); err != nil || !bytes.Equal(resp.Welcome, r.Welcome) || resp.Error != "" {
		t.Errorf("invite response: %v", err)
	}
	for _, v := range f.Refused {
		_, err := ParseInviteCode(v.Input)
		if got := mustErrorName(t, err); got != v.Error {
			t.Errorf("invite code %q: %q, want %q", v.Input, got, v.Error)
		}
	}
}

// specFingerprint computes a fingerprint as §2's text says.
func specFingerprint(k []byte) string {
	const alpha = "abcdefghijklmnopqrstuvwxyz234567"
	h := sha256.Sum256(slices.Concat([]byte("ceiba fingerprint v1\x00"), k))
	data := base32.NewEncoding(alpha).WithPadding(base32.NoPadding).EncodeToString(h[:])[:24]
	sum, factor := 0, 2
	for i := len(data) - 1; i >= 0; i-- {
		p := factor * strings.IndexByte(alpha, data[i])
		sum += p/32 + p%32
		factor = 3 - factor
	}
	full := data + string(alpha[(32-sum%32)%32])
	return full[0:5] + "-" + full[5:10] + "-" + full[10:15] + "-" + full[15:20] + "-" + full[20:25]
}

// specHKDF is HKDF-SHA256 with no salt and 32 bytes of output.
func specHKDF(ikm []byte, info string) []byte {
	b, err := hkdf.Key(sha256.New, ikm, nil, info, 32)
	if err != nil {
		panic(err)
	}
	return b
}

func specSlotID(slot string) []byte {
	h := sha256.Sum256([]byte("ceiba slot v1\x00" + slot))
	return h[:16]
}

// specSeal seals record as §5's text says, with the nonce given.
func specSeal(readKey, nonce, record []byte, paddedLen int) []byte {
	tag := specHKDF(readKey, "ceiba/v2/key-tag")[:16]
	hdr := slices.Concat([]byte{2}, tag, nonce)
	padded := make([]byte, paddedLen)
	copy(padded, record)
	padded[len(record)] = 0x80
	aead, err := chacha20poly1305.NewX(specHKDF(readKey, "ceiba read key v1: seal"))
	if err != nil {
		panic(err)
	}
	return aead.Seal(hdr, nonce, padded, hdr)
}

// specBucket is §5's size bucket of a record of n bytes: the smallest
// that holds n + 1, a power of two from 1,024 to 65,536, above that a
// multiple of 16,384.
func specBucket(n int) int {
	for b := 1024; b <= 65536; b *= 2 {
		if n+1 <= b {
			return b
		}
	}
	return (n + 1 + 16383) / 16384 * 16384
}
