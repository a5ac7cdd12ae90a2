package directory_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func TestSealOpenRoundTrip(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	keys := directory.Keyring{1: directory.NewReadKey(), 7: nw.Key}
	for _, r := range []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo"), nw.Entry(t, org, "asesoria", 1)} {
		sealed := directory.Seal(r, nw.Key)
		if n, ok := directory.SealedEpoch(sealed, keys); !ok || n != 7 {
			t.Fatalf("SealedEpoch = %d, %v; want 7", n, ok)
		}
		if _, ok := directory.SealedEpoch(sealed, directory.Keyring{7: directory.NewReadKey()}); ok {
			t.Fatal("SealedEpoch named an epoch whose key the record is not sealed under")
		}
		// Ciphertext sizes come in steps of the padding block, so a
		// watcher cannot tell records of similar size apart.
		if n := len(sealed) - directory.SealHeaderLen - chacha20poly1305.Overhead; n%256 != 0 || n <= len(r.Encode()) {
			t.Fatalf("%s: padded plaintext is %d bytes for a %d-byte record", r.Type, n, len(r.Encode()))
		}
		got, err := directory.Open(sealed, nw.ID, keys)
		if err != nil {
			t.Fatalf("%s: %v", r.Type, err)
		}
		if !bytes.Equal(got.Encode(), r.Encode()) || got.Network != nw.ID {
			t.Fatalf("%s: opened record differs from the sealed one", r.Type)
		}
		if bytes.Equal(directory.Seal(r, nw.Key), sealed) {
			t.Fatal("sealing twice gave the same bytes: the nonce is not fresh")
		}
	}
}

// OpenUnverified tells what a record claims before its signatures are
// checked, and only Verify hands out the record: a forged signature opens
// unverified and fails there, as it fails Open.
func TestOpenUnverifiedChecksSignaturesOnlyInVerify(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	r := nw.Entry(t, org, "asesoria", 4)
	r.Sigs[0].Sig = slices.Clone(r.Sigs[0].Sig)
	r.Sigs[0].Sig[5] ^= 1
	sealed := directory.Seal(r, nw.Key)
	keys := directory.Keyring{1: nw.Key}
	u, err := directory.OpenUnverified(sealed, nw.ID, keys)
	if err != nil {
		t.Fatalf("opening without checking signatures: %v", err)
	}
	e, ok := u.Entry()
	if !ok || e.ID != "asesoria" || e.Seq != 4 || u.Type() != directory.TypeEntry || u.Hash() != r.Hash() ||
		len(u.Signers()) != 1 || u.Signers()[0] != org.Public() {
		t.Fatalf("the unverified record does not say what was sealed: %+v", u)
	}
	if _, err := u.Verify(); !errors.Is(err, directory.ErrBadSignature) {
		t.Fatalf("Verify of a forged signature: %v, want ErrBadSignature", err)
	}
	if _, err := directory.Open(sealed, nw.ID, keys); !errors.Is(err, directory.ErrBadSignature) {
		t.Fatalf("Open of a forged signature: %v, want ErrBadSignature", err)
	}
	good := nw.Entry(t, org, "asesoria", 5)
	u, err = directory.OpenUnverified(directory.Seal(good, nw.Key), nw.ID, keys)
	if err != nil {
		t.Fatal(err)
	}
	got, err := u.Verify()
	if err != nil || got.Hash() != good.Hash() {
		t.Fatalf("Verify of a genuine record: %v", err)
	}
	if epoch, ok := got.OpenedUnder(); !ok || epoch != 1 {
		t.Fatalf("the verified record forgot the epoch that opened it: %d, %v", epoch, ok)
	}
}

// A claim (type, signers, entry slot and seq) is read from an unsealed
// record without decoding the rest: a record Decode refuses still has one,
// so a node can refuse a flood by its claimed author before paying for
// the decode; a claim of a revocation has no slot.
func TestClaimIsReadBeforeDecoding(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	keys := directory.Keyring{1: nw.Key}
	r := nw.Entry(t, org, "asesoria", 7)
	r.Version = 99 // no node decodes this format
	s, err := directory.Unseal(directory.Seal(r, nw.Key), keys)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Claim()
	if err != nil || c.Type != directory.TypeEntry || c.EntryID != "asesoria" || c.Seq != 7 ||
		len(c.Signers) != 1 || c.Signers[0] != org.Public() {
		t.Fatalf("claim of an entry in an unknown format: %+v, %v", c, err)
	}
	if _, err := s.Decode(nw.ID); !errors.Is(err, directory.ErrUnknownVersion) {
		t.Fatalf("decoding it: %v, want ErrUnknownVersion", err)
	}
	rv := nw.RevokeBy(t, org.Public())
	s, err = directory.Unseal(directory.Seal(rv, nw.Key), keys)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Claim(); err != nil || c.Type != directory.TypeRevocation || c.EntryID != "" || len(c.Signers) != len(rv.Sigs) {
		t.Fatalf("claim of a revocation: %+v, %v", c, err)
	}
}

// The header says nothing that outlives a read key: records sealed under
// successive epochs' keys share no header byte but the seal version, and
// records sealed under one key share its tag and nothing else. Before, the
// header carried the network tag (constant for the network's life) and the
// epoch number in clear (which showed each rotation, i.e. each revocation).
func TestSealHeaderChangesWithEachKey(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	rec := nw.Entry(t, org, "asesoria", 1)
	const epochs = 8
	kr := directory.Keyring{}
	headers := make([][]byte, 0, epochs)
	for e := uint64(1); e <= epochs; e++ {
		kr[e] = directory.NewReadKey()
		sealed := directory.Seal(rec, kr[e])
		headers = append(headers, sealed[:directory.SealHeaderLen])
		if got, ok := directory.SealedEpoch(sealed, kr); !ok || got != e {
			t.Fatalf("epoch %d: SealedEpoch = %d, %v", e, got, ok)
		}
		// A second record under the same key carries the same tag (that
		// is how a holder finds the key) and a fresh nonce.
		again := directory.Seal(nw.Admit(t, org, "Colectivo"), kr[e])
		if !bytes.Equal(again[1:1+directory.KeyTagLen], sealed[1:1+directory.KeyTagLen]) {
			t.Fatalf("epoch %d: two records under one key carry different tags", e)
		}
		if bytes.Equal(again[1+directory.KeyTagLen:directory.SealHeaderLen], sealed[1+directory.KeyTagLen:directory.SealHeaderLen]) {
			t.Fatalf("epoch %d: two records under one key share a nonce", e)
		}
	}
	for i := range directory.SealHeaderLen {
		same := true
		for _, h := range headers[1:] {
			same = same && h[i] == headers[0][i]
		}
		if i == 0 && !same {
			t.Fatal("the seal version differs between epochs")
		}
		if i > 0 && same {
			t.Fatalf("header byte %d is %#x under all %d epochs' keys: it links them", i, headers[0][i], epochs)
		}
	}
	// Nothing derived from the network alone, nor the epoch number, is in
	// the header.
	for e, h := range headers {
		var num [8]byte
		binary.BigEndian.PutUint64(num[:], uint64(e+1))
		if bytes.Contains(h, num[:]) || bytes.Contains(h, nw.ID[:4]) {
			t.Fatalf("epoch %d: the header carries the epoch number or the network ID: %x", e+1, h)
		}
	}
}

// sealRaw seals arbitrary plaintext under header the way Seal does, so
// tests can present a correctly authenticated message with a bad inside.
func sealRaw(t *testing.T, header []byte, key directory.ReadKey, plain []byte) []byte {
	t.Helper()
	sk := readSubkey(t, key, "ceiba read key v1: seal")
	aead, err := chacha20poly1305.NewX(sk)
	if err != nil {
		t.Fatal(err)
	}
	return aead.Seal(slices.Clone(header), header[len(header)-chacha20poly1305.NonceSizeX:], plain, header)
}

// pad follows PROTOCOL.md §5: the end marker, then zeros up to the size
// bucket, a power of two from 1 KiB to 64 KiB, above that a multiple of
// 16 KiB.
func pad(b []byte) []byte {
	b = append(slices.Clone(b), 0x80)
	size := 1024
	for size < len(b) && size < 64<<10 {
		size *= 2
	}
	if size < len(b) {
		size = (len(b) + 16<<10 - 1) / (16 << 10) * (16 << 10)
	}
	return append(b, make([]byte, size-len(b))...)
}

func TestOpenRejects(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	other := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	rec := nw.Entry(t, org, "asesoria", 1)
	keys := directory.Keyring{1: nw.Key}
	sealed := directory.Seal(rec, nw.Key)
	header := sealed[:directory.SealHeaderLen]
	otherKey := directory.NewReadKey()

	mutate := func(f func(b []byte) []byte) []byte { return f(slices.Clone(sealed)) }
	cases := []struct {
		name string
		data []byte
		net  directory.NetworkID
		keys directory.Keyring
		want error
	}{
		{name: "no key for the tag", data: directory.Seal(rec, otherKey), want: directory.ErrNoKey},
		{name: "key tag changed to another held key's", data: mutate(func(b []byte) []byte {
			tag := otherKey.Tag()
			copy(b[1:], tag[:])
			return b
		}), keys: directory.Keyring{1: nw.Key, 2: otherKey}, want: directory.ErrDecrypt},
		{name: "opened as another network", data: sealed, net: other.ID, want: directory.ErrWrongNetwork},
		{name: "key tag changed", data: mutate(func(b []byte) []byte { b[1] ^= 1; return b }), want: directory.ErrNoKey},
		{name: "last byte of the key tag changed", data: mutate(func(b []byte) []byte { b[directory.KeyTagLen] ^= 1; return b }), want: directory.ErrNoKey},
		{name: "nonce changed", data: mutate(func(b []byte) []byte { b[directory.SealHeaderLen-1] ^= 1; return b }), want: directory.ErrDecrypt},
		{name: "ciphertext changed", data: mutate(func(b []byte) []byte { b[directory.SealHeaderLen+3] ^= 1; return b }), want: directory.ErrDecrypt},
		{name: "tag of the AEAD changed", data: mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), want: directory.ErrDecrypt},
		{name: "unknown seal version", data: mutate(func(b []byte) []byte { b[0] = 3; return b }), want: directory.ErrUnknownVersion},
		{name: "seal version 1, under the bare read key", data: mutate(func(b []byte) []byte { b[0] = 1; return b }), want: directory.ErrUnknownVersion},
		{name: "truncated to the header", data: sealed[:directory.SealHeaderLen+4], want: directory.ErrMalformed},
		{name: "empty", data: nil, want: directory.ErrMalformed},
		{name: "truncated ciphertext (not a size bucket)", data: sealed[:len(sealed)-1], want: directory.ErrMalformed},
		{name: "padded to a size between buckets", data: sealRaw(t, header, nw.Key, append(pad(rec.Encode()), make([]byte, 256)...)), want: directory.ErrMalformed},
		{name: "cut to a smaller size bucket", data: func() []byte {
			big := directory.Seal(nw.Genesis, nw.Key) // 8 KiB bucket
			return big[:directory.SealHeaderLen+4096+16]
		}(), want: directory.ErrDecrypt},
		{name: "too large", data: make([]byte, directory.MaxSealedBytes+1), want: directory.ErrTooLarge},
		{name: "padding without its marker", data: sealRaw(t, header, nw.Key, make([]byte, 1024)), want: directory.ErrMalformed},
		{name: "padding ending in a non-zero byte", data: sealRaw(t, header, nw.Key, func() []byte {
			p := pad(rec.Encode())
			p[len(p)-1] = 1
			return p
		}()), want: directory.ErrMalformed},
		{name: "no padding at all", data: sealRaw(t, header, nw.Key, rec.Encode()), want: directory.ErrMalformed},
		{name: "record of another network under this network's seal",
			data: sealRaw(t, header, nw.Key, pad(other.Entry(t, org, "asesoria", 1).Encode())), want: directory.ErrWrongNetwork},
		{name: "forged record inside a good seal",
			data: sealRaw(t, header, nw.Key, pad(flipNameCase(t, rec).Encode())), want: directory.ErrBadSignature},
		{name: "trailing byte after the record inside a good seal",
			data: sealRaw(t, header, nw.Key, pad(append(rec.Encode(), 0))), want: directory.ErrMalformed},
	}
	if _, err := directory.Open(sealRaw(t, header, nw.Key, pad(rec.Encode())), nw.ID, keys); err != nil {
		t.Fatalf("sealRaw does not seal the way Seal does: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net, kr := nw.ID, keys
			if tc.net != (directory.NetworkID{}) {
				net = tc.net
			}
			if tc.keys != nil {
				kr = tc.keys
			}
			r, err := directory.Open(tc.data, net, kr)
			if r != nil {
				t.Fatal("Open returned a record along with refusing it")
			}
			wantReject(t, err, tc.want)
		})
	}
}

func TestKeyPackages(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	ids := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	var recipients []directory.Recipient
	for _, id := range ids {
		recipients = append(recipients, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	recipients = append(recipients, recipients[0]) // listed twice, sealed once
	key := directory.NewReadKey()
	e, pages, err := directory.NewEpoch(nw.ID, 4, 1, directory.Hash{}, key, recipients, nw.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	// Three recipients, padded to the smallest bucket: an outsider sees
	// 64 packages however few are real.
	n := 0
	for _, p := range pages {
		n += len(p.Packages)
	}
	if n != 64 {
		t.Fatalf("%d packages for 3 distinct recipients, want them padded to 64", n)
	}
	for i, id := range ids {
		got, err := directory.OpenKeyPackage(id, nw.ID, e, pages)
		if err != nil || got != key {
			t.Fatalf("recipient %d: key %x, %v; want the epoch key", i, got[:4], err)
		}
	}
	// The pages travel as records; a member opens its package from there.
	var decoded []*directory.EpochPage
	for _, p := range pages {
		r, err := directory.DecodeRecord(nw.Sign(t, p, nw.Stewards[0]).Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := r.DecodeBody()
		decoded = append(decoded, body.(*directory.EpochPage))
	}
	if got, err := directory.OpenKeyPackage(ids[1], nw.ID, e, decoded); err != nil || got != key {
		t.Fatalf("package from the decoded pages: %v", err)
	}

	if _, err := directory.OpenKeyPackage(dirtest.MustIdentity(t), nw.ID, e, pages); !errors.Is(err, directory.ErrNotRecipient) {
		t.Fatalf("non-recipient: err = %v, want ErrNotRecipient", err)
	}
	if _, err := directory.OpenKeyPackage(dirtest.MustIdentity(t), nw.ID, e, nil); !errors.Is(err, directory.ErrPagesMissing) {
		t.Fatalf("no pages held: err = %v, want ErrPagesMissing", err)
	}
	// A package replayed as another epoch or network is not found under
	// its tag, and opens for no one when put under the right tag.
	renumbered := *e
	renumbered.Number = 5
	replay := func(net directory.NetworkID, ep *directory.Epoch) []*directory.EpochPage {
		sealed, ok := directory.FindPackage(nw.ID, e, pages, ids[0].Public())
		if !ok {
			t.Fatal("package not found")
		}
		return []*directory.EpochPage{{Number: ep.Number, Rotation: ep.Rotation, Packages: []directory.Package{{Tag: directory.PackageTag(net, ep.Number, ep.Rotation, ids[0].Public()), Sealed: sealed}}}}
	}
	if _, err := directory.OpenKeyPackage(ids[0], nw.ID, &renumbered, replay(nw.ID, &renumbered)); !errors.Is(err, directory.ErrDecrypt) {
		t.Fatalf("package replayed as another epoch: err = %v, want ErrDecrypt", err)
	}
	elsewhere := dirtest.New(t, 1, 1).ID
	if _, err := directory.OpenKeyPackage(ids[0], elsewhere, e, replay(elsewhere, e)); !errors.Is(err, directory.ErrDecrypt) {
		t.Fatalf("package replayed in another network: err = %v, want ErrDecrypt", err)
	}
	// A package put under another recipient's tag opens for neither.
	s0, _ := directory.FindPackage(nw.ID, e, pages, ids[0].Public())
	s1, _ := directory.FindPackage(nw.ID, e, pages, ids[1].Public())
	swapped := []*directory.EpochPage{{Number: e.Number, Rotation: e.Rotation, Packages: []directory.Package{
		{Tag: directory.PackageTag(nw.ID, e.Number, e.Rotation, ids[0].Public()), Sealed: s1},
		{Tag: directory.PackageTag(nw.ID, e.Number, e.Rotation, ids[1].Public()), Sealed: s0},
	}}}
	// A page's packages are sorted by tag: that is how a recipient finds its own.
	slices.SortFunc(swapped[0].Packages, func(a, b directory.Package) int { return bytes.Compare(a.Tag[:], b.Tag[:]) })
	for _, id := range ids[:2] {
		if _, err := directory.OpenKeyPackage(id, nw.ID, e, swapped); !errors.Is(err, directory.ErrDecrypt) {
			t.Fatalf("swapped package: err = %v, want ErrDecrypt", err)
		}
	}
}

// A watcher of the wire sees a sealed record's length. A revocation, a
// steward's approval, a reader grant and an entry must not be told apart
// by it, and every length must be one of the buckets of PROTOCOL.md §5.
func TestSealedSizesRevealOnlyABucket(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	admit := nw.Admit(t, org, "Colectivo Ejemplo")
	revocation := nw.RevokeBy(t, reader.Public())
	small := map[string]*directory.Record{
		"revocation": revocation,
		"approval":   nw.Sign(t, &directory.Approval{Of: directory.TypeRevocation, Proposal: revocation.Body}, nw.Stewards[0]),
		"entry":      nw.Entry(t, org, "asesoria", 1),
		"tombstone":  nw.Sign(t, &directory.Entry{ID: "asesoria", Seq: 2, Issued: time.Now().Unix(), Expires: time.Now().Add(time.Hour).Unix(), Deleted: true}, org),
	}
	want := -1
	for name, r := range small {
		n := len(directory.Seal(r, nw.Key))
		if want == -1 {
			want = n
		}
		if n != want {
			t.Errorf("a sealed %s is %d bytes, another small record %d: the length tells them apart", name, n, want)
		}
	}
	for _, r := range []*directory.Record{admit, nw.Vouch(t, org, reader), nw.Genesis} {
		sealed := directory.Seal(r, nw.Key)
		if _, err := directory.Open(sealed, nw.ID, directory.Keyring{1: nw.Key}); err != nil {
			t.Fatalf("a %v record does not open after sealing: %v", r.Type, err)
		}
	}
	// Every length around each bucket's edge, and every 97th in between.
	prev := 0
	for n := 0; n <= directory.MaxRecordBytes; n++ {
		b := directory.PaddedSize(n)
		if b <= n || b < prev {
			t.Fatalf("record of %d bytes: bucket %d, after %d for one byte less", n, b, prev)
		}
		if (b != prev || n%97 == 0) && len(pad(make([]byte, n))) != b {
			t.Fatalf("record of %d bytes: bucket %d, the spec's padding gives %d", n, b, len(pad(make([]byte, n))))
		}
		prev = b
	}
	if got := directory.PaddedSize(directory.MaxRecordBytes); directory.SealHeaderLen+got+16 > directory.MaxSealedBytes {
		t.Errorf("the largest record seals to %d bytes, above MaxSealedBytes %d", directory.SealHeaderLen+got+16, directory.MaxSealedBytes)
	}
}

// OpenVerified spares the signature check only for the exact hash it is
// told was verified: a forged record under any other hash is refused as
// Open refuses it, and one it vouches for still gets every other check
// (a record of another network is refused whatever the vouching).
func TestOpenVerifiedSparesOnlyTheVouchedHash(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	keys := directory.Keyring{1: nw.Key}
	good := nw.Entry(t, org, "asesoria", 1)
	forged := nw.Entry(t, org, "asesoria", 2)
	forged.Sigs[0].Sig[0] ^= 1
	vouchGood := vouchFor(directory.VouchedSignatures, good.Hash())
	// OpenVerified decrypts in place: each call opens a sealing of its own.
	if _, err := directory.OpenVerified(directory.Seal(forged, nw.Key), nw.ID, keys, vouchGood); !errors.Is(err, directory.ErrBadSignature) {
		t.Fatalf("a forged record vouched for under another hash: %v, want ErrBadSignature", err)
	}
	vouchAll := func(directory.Hash) directory.Vouched { return directory.VouchedSignatures }
	r, err := directory.OpenVerified(directory.Seal(forged, nw.Key), nw.ID, keys, vouchAll)
	if err != nil || r.Hash() != forged.Hash() {
		t.Fatalf("the vouched-for record did not open as itself: %v", err)
	}
	other := dirtest.New(t, 1, 1)
	if _, err := directory.OpenVerified(directory.Seal(good, nw.Key), other.ID, directory.Keyring{1: nw.Key}, vouchAll); err == nil {
		t.Fatal("vouching let a record of another network open")
	}
}

// vouchFor vouches v for the records hashes names, and nothing for others.
func vouchFor(v directory.Vouched, hashes ...directory.Hash) func(directory.Hash) directory.Vouched {
	return func(h directory.Hash) directory.Vouched {
		if slices.Contains(hashes, h) {
			return v
		}
		return directory.VouchedNothing
	}
}

// An entry opened on VouchedAll is not decoded, yet a state applying it
// ends as one applying the entry opened in full: same digest, same
// listing, same search results, the body decoded in full whenever read;
// and VouchedAll, like VouchedSignatures, spares nothing for a record of
// another hash.
func TestOpenVerifiedVouchedAllAppliesAsOpened(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	keys := directory.Keyring{1: nw.Key}
	admit := nw.Admit(t, org, "Colectivo")
	rec := nw.Entry(t, org, "asesoria", 1)
	sealedFull, sealed := directory.Seal(rec, nw.Key), directory.Seal(rec, nw.Key)
	full, err := directory.OpenVerified(sealedFull, nw.ID, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	lazy, err := directory.OpenVerified(sealed, nw.ID, keys, vouchFor(directory.VouchedAll, rec.Hash()))
	if err != nil || lazy.Hash() != rec.Hash() {
		t.Fatalf("the vouched-for entry did not open as itself: %v", err)
	}
	// Both were decrypted in place, and neither record shares their memory.
	for _, b := range [][]byte{sealedFull, sealed} {
		for i := range b {
			b[i] ^= 0xff
		}
	}
	want, _ := full.DecodeBody()
	if got, err := lazy.DecodeBody(); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("the body of an entry opened on VouchedAll did not decode in full: %v\n got %+v\nwant %+v", err, got, want)
	}
	a, b := nw.State(), nw.State()
	mustApply(t, a, nw.Genesis, admit, full)
	mustApply(t, b, nw.Genesis, admit, lazy)
	if a.Digest() != b.Digest() {
		t.Fatal("the states differ")
	}
	la, lb := a.Entries(org.Public()), b.Entries(org.Public())
	if len(la) != 1 || len(lb) != 1 || !reflect.DeepEqual(la[0].Entry, lb[0].Entry) || lb[0].Entry.Service == nil {
		t.Fatalf("listings differ:\n%+v\n%+v", la, lb)
	}
	if ra, rb := a.Search(directory.Query{Text: la[0].Entry.Service.Name}), b.Search(directory.Query{Text: la[0].Entry.Service.Name}); len(ra) != 1 || !reflect.DeepEqual(ra, rb) {
		t.Fatalf("searches differ: %v, %v", ra, rb)
	}
	if n := directory.DecodedEntriesHeldForTest(b); n != 0 {
		t.Fatalf("the state keeps %d decoded entries", n)
	}

	forged := nw.Entry(t, org, "asesoria", 2)
	forged.Sigs[0].Sig[0] ^= 1
	if _, err := directory.OpenVerified(directory.Seal(forged, nw.Key), nw.ID, keys, vouchFor(directory.VouchedAll, rec.Hash())); !errors.Is(err, directory.ErrBadSignature) {
		t.Fatalf("a forged record under another hash: %v, want ErrBadSignature", err)
	}
}

// OpenVerified leaves out the canonical-encoding check only for the bytes
// whose hash it is told were checked: a record re-encoded off the canonical
// form (same fields, same valid signature, another hash) is refused even
// while the canonical record's hash is vouched for, or one record could
// be stored and served under many hashes.
func TestOpenVerifiedChecksCanonicalUnlessVouched(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	keys := directory.Keyring{1: nw.Key}
	rec := nw.Entry(t, org, "asesoria", 1)
	vouchRec := vouchFor(directory.VouchedSignatures, rec.Hash())
	nonCanonical := rawMap(withVal(rawPairs(t, rec.Encode()), 1, []byte{0x18, 0x01}))
	if _, err := directory.DecodeRecord(nonCanonical); !errors.Is(err, directory.ErrNonCanonical) {
		t.Fatalf("the test's encoding is not refused as non-canonical on its own: %v", err)
	}
	_, err := directory.OpenVerified(directory.SealBytesForTest(nonCanonical, nw.Key), nw.ID, keys, vouchRec)
	if !errors.Is(err, directory.ErrNonCanonical) {
		t.Fatalf("a non-canonical encoding of a vouched-for record opened: %v, want ErrNonCanonical", err)
	}
	r, err := directory.OpenVerified(directory.Seal(rec, nw.Key), nw.ID, keys, vouchRec)
	if err != nil || r.Hash() != rec.Hash() {
		t.Fatalf("the vouched-for canonical record did not open as itself: %v", err)
	}
	if b, err := r.DecodeBody(); err != nil || b.(*directory.Entry).ID != "asesoria" {
		t.Fatalf("the vouched-for record's body did not decode: %v", err)
	}
}

// A node stores a record's sealing as it came only when it is what Seal
// would make: under the key the node would seal with, padded to the
// record's own bucket. Anything else (another key, a larger bucket that
// still opens) it seals afresh, so what it serves is padded as its own.
func TestSealsAsOnlyOwnBucketAndKey(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	rec := nw.Entry(t, org, "asesoria", 1)
	sealed := directory.Seal(rec, nw.Key)
	header := sealed[:directory.SealHeaderLen]
	keys := directory.Keyring{1: nw.Key}
	overPadded := sealRaw(t, header, nw.Key, append(pad(rec.Encode()), make([]byte, len(pad(rec.Encode())))...))
	if r, err := directory.Open(overPadded, nw.ID, keys); err != nil || r.Hash() != rec.Hash() {
		t.Fatalf("the over-padded sealing must open to the record for this test to mean anything: %v", err)
	}
	other := directory.NewReadKey()
	cases := []struct {
		name   string
		sealed []byte
		key    directory.ReadKey
		want   bool
	}{
		{"as Seal makes it", sealed, nw.Key, true},
		{"a fresh Seal (another nonce)", directory.Seal(rec, nw.Key), nw.Key, true},
		{"under another key than the node's", directory.Seal(rec, other), nw.Key, false},
		{"the node would seal under another key", sealed, other, false},
		{"padded to a larger bucket", overPadded, nw.Key, false},
		{"nothing", nil, nw.Key, false},
		{"the header only", header, nw.Key, false},
	}
	for _, c := range cases {
		if got := directory.SealsAs(c.sealed, rec, c.key); got != c.want {
			t.Errorf("%s: SealsAs = %v, want %v", c.name, got, c.want)
		}
	}
}

// OpenVerified decrypts in place, in every decoding path (a record of
// each type, vouched for or not): the record it returns shares no memory
// with the sealing, so overwriting the sealing afterwards changes nothing
// in it.
func TestOpenVerifiedRecordsOweNothingToTheSealing(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo"), nw.Entry(t, org, "asesoria", 1),
		nw.Vouch(t, org, reader), nw.Beat(t, 1, org), nw.RevokeBy(t, dirtest.MustIdentity(t).Public())}
	recs = append(recs, nw.FirstPages...)
	keys := directory.Keyring{1: nw.Key}
	for _, v := range []directory.Vouched{directory.VouchedNothing, directory.VouchedSignatures, directory.VouchedAll} {
		for _, rec := range recs {
			sealed := directory.Seal(rec, nw.Key)
			r, err := directory.OpenVerified(sealed, nw.ID, keys, vouchFor(v, rec.Hash()))
			if err != nil {
				t.Fatalf("%v, vouched %d: %v", rec.Type, v, err)
			}
			for i := range sealed {
				sealed[i] ^= 0xa5
			}
			if !bytes.Equal(r.Encode(), rec.Encode()) {
				t.Fatalf("%v, vouched %d: the opened record changed with the sealing it came from", rec.Type, v)
			}
			if _, err := r.DecodeBody(); err != nil {
				t.Fatalf("%v, vouched %d: body no longer decodes: %v", rec.Type, v, err)
			}
		}
	}
}
