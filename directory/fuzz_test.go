package directory_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
)

// The seed corpora under testdata/fuzz hold valid encodings of every record
// type (and sealed records under fuzzKey for fuzzNet), so the fuzzer starts
// from inputs that reach signature checks and body validation. Run one
// target with
//
//	go test -run '^$' -fuzz '^FuzzDecodeRecord$' -fuzztime 30s ./directory/

// A peer's input is refused with a *RejectError naming one of the
// sentinels, or accepted; nothing else.
var decodeSentinels = []error{
	directory.ErrMalformed, directory.ErrNonCanonical, directory.ErrTooLarge,
	directory.ErrUnknownVersion, directory.ErrUnknownType, directory.ErrWrongNetwork,
	directory.ErrBadSignature, directory.ErrInvalid,
}

func checkRefusal(t *testing.T, err error, allowed ...error) {
	t.Helper()
	var re *directory.RejectError
	if !errors.As(err, &re) {
		t.Fatalf("refusal is %T %v, not a *RejectError", err, err)
	}
	for _, s := range allowed {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("refusal %v names none of the expected reasons", err)
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := directory.DecodeRecord(data)
		if err != nil {
			checkRefusal(t, err, decodeSentinels...)
			return
		}
		// One record, one encoding: what is accepted is exactly its own
		// canonical encoding, so its hash identifies it.
		if !bytes.Equal(r.Encode(), data) {
			t.Fatalf("accepted input re-encodes differently:\n in  %x\n out %x", data, r.Encode())
		}
		if r.Hash() != sha256.Sum256(data) {
			t.Fatal("hash is not the hash of the accepted bytes")
		}
		if err := r.Verify(); err != nil {
			t.Fatalf("accepted record fails Verify: %v", err)
		}
		if _, err := r.DecodeBody(); err != nil {
			t.Fatalf("accepted record's body does not decode: %v", err)
		}
	})
}

var (
	fuzzNet = directory.NetworkID(sha256.Sum256([]byte("ceiba fuzz network")))
	fuzzKey = directory.ReadKey(sha256.Sum256([]byte("ceiba fuzz read key")))
)

// FuzzOpen feeds Open sealed bytes under a fixed keyring. Without the key
// the fuzzer cannot get past the AEAD, so when plain is set the input is
// the plaintext instead, sealed here under a valid header: that way the
// fuzzer also drives the padding and everything behind it.
func FuzzOpen(f *testing.F) {
	keys := directory.Keyring{1: fuzzKey}
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, plain bool) {
		if plain {
			data = sealUnder(fuzzKey, data)
		}
		// A claim is read before a record is decoded (node ingest): it
		// must not panic on anything, and must say what a record that
		// opens holds.
		var claim directory.Claim
		var claimErr error
		if s, err := directory.Unseal(data, keys); err == nil {
			claim, claimErr = s.Claim()
		}
		r, err := directory.Open(data, fuzzNet, keys)
		if err != nil {
			checkRefusal(t, err, append(decodeSentinels, directory.ErrNoKey, directory.ErrDecrypt)...)
			return
		}
		if r.Network != fuzzNet {
			t.Fatalf("opened a record of network %s", r.Network)
		}
		checkClaim(t, r, claim, claimErr)
		if err := r.Verify(); err != nil {
			t.Fatalf("opened record fails Verify: %v", err)
		}
		again, err := directory.Open(directory.Seal(r, fuzzKey), fuzzNet, keys)
		if err != nil || !bytes.Equal(again.Encode(), r.Encode()) {
			t.Fatalf("resealing an opened record: %v", err)
		}
	})
}

// checkClaim fails t unless c, read before r was decoded, says what r
// holds.
func checkClaim(t *testing.T, r *directory.Record, c directory.Claim, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("a record that opens has no claim: %v", err)
	}
	signers := make([]directory.PublicKey, len(r.Sigs))
	for i, s := range r.Sigs {
		signers[i] = s.Key
	}
	want := directory.Claim{Type: r.Type, Signers: signers}
	if b, err := r.DecodeBody(); err == nil {
		if e, ok := b.(*directory.Entry); ok {
			want.EntryID, want.Seq = e.ID, e.Seq
		}
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("claim %+v, the record holds %+v", c, want)
	}
}

// sealUnder seals plaintext as it is, padding and all, under a well-formed
// header with an all-zero nonce.
func sealUnder(key directory.ReadKey, plain []byte) []byte {
	tag := key.Tag()
	header := append([]byte{2}, tag[:]...)
	header = append(header, make([]byte, chacha20poly1305.NonceSizeX)...)
	sk, _ := hkdf.Key(sha256.New, key[:], nil, "ceiba read key v1: seal", 32)
	aead, _ := chacha20poly1305.NewX(sk)
	return aead.Seal(header, header[len(header)-chacha20poly1305.NonceSizeX:], plain, header)
}

// FuzzDecodeBody reaches the decoder and field checks of every body type
// directly; typ picks the type, including unknown ones.
func FuzzDecodeBody(f *testing.F) {
	f.Add(uint8(directory.TypeEntry), []byte{0xa0})
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		rt := directory.RecordType(typ)
		body, err := directory.DecodeBodyOf(rt, data)
		if err != nil {
			checkRefusal(t, err, directory.ErrMalformed, directory.ErrNonCanonical, directory.ErrTooLarge,
				directory.ErrUnknownType, directory.ErrInvalid)
			return
		}
		if body.RecordType() != rt {
			t.Fatalf("type %d decoded as a %s", typ, body.RecordType())
		}
		// An accepted body is canonical: encoding it again, as NewRecord
		// does before signing, gives the same bytes.
		r, err := directory.NewRecord(fuzzNet, body)
		if err != nil {
			t.Fatalf("accepted body fails NewRecord: %v", err)
		}
		if !bytes.Equal(r.Body, data) {
			t.Fatalf("accepted body re-encodes differently:\n in  %x\n out %x", data, r.Body)
		}
	})
}

func FuzzNormalizeFingerprint(f *testing.F) {
	f.Add("abcde-fghij-klmno-pqrst-uvwxy")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := directory.NormalizeFingerprint(s)
		if err != nil {
			if !errors.Is(err, directory.ErrBadFingerprint) {
				t.Fatalf("refusal %v is not ErrBadFingerprint", err)
			}
			return
		}
		if len(got) != 29 || strings.Count(got, "-") != 4 || strings.Trim(strings.ReplaceAll(got, "-", ""), fpAlphabet) != "" {
			t.Fatalf("normalized %q to %q, not the grouped form", s, got)
		}
		for i := 5; i < len(got); i += 6 {
			if got[i] != '-' {
				t.Fatalf("normalized %q to %q: groups are not of five", s, got)
			}
		}
		// Normalizing keeps exactly the fingerprint characters typed.
		var typed strings.Builder
		for _, r := range strings.ToLower(s) {
			if strings.ContainsRune(fpAlphabet, r) {
				typed.WriteRune(r)
			}
		}
		if typed.String() != strings.ReplaceAll(got, "-", "") {
			t.Fatalf("normalized %q to %q: characters changed", s, got)
		}
		for _, again := range []string{got, strings.ToUpper(got), strings.ReplaceAll(got, "-", "")} {
			if n, err := directory.NormalizeFingerprint(again); err != nil || n != got {
				t.Fatalf("%q normalizes to %q, %v; want %q", again, n, err, got)
			}
		}
	})
}

// TestFuzzSeedsStayValid keeps the committed corpora useful: the seeds
// named after a record type must still be accepted, or the fuzzers would
// silently start from inputs that never get past the decoder.
func TestFuzzSeedsStayValid(t *testing.T) {
	valid := map[string][]string{
		"FuzzDecodeRecord": {"genesis", "amendment", "membership", "reader", "entry", "tombstone", "revocation", "epoch", "epoch-page", "approval", "heartbeat", "heartbeat-members", "evidence", "evidence-fork", "evidence-kem", "manifest"},
		"FuzzDecodeBody":   {"genesis", "amendment", "membership", "reader", "entry", "tombstone", "revocation", "epoch", "epoch-page", "approval", "heartbeat", "heartbeat-members", "evidence", "evidence-fork", "evidence-kem", "manifest"},
		"FuzzOpen":         {"entry", "membership", "approval", "tombstone", "plain-entry"},
	}
	for target, names := range valid {
		for _, name := range names {
			args := readSeed(t, filepath.Join("testdata", "fuzz", target, name))
			var err error
			switch target {
			case "FuzzDecodeRecord":
				_, err = directory.DecodeRecord(args[len(args)-1])
			case "FuzzDecodeBody":
				_, err = directory.DecodeBodyOf(directory.RecordType(args[0][0]), args[1])
			case "FuzzOpen":
				data := args[0]
				if args[1][0] == 't' {
					data = sealUnder(fuzzKey, data)
				}
				_, err = directory.Open(data, fuzzNet, directory.Keyring{1: fuzzKey})
			}
			if err != nil {
				t.Errorf("%s seed %q is no longer accepted: %v", target, name, err)
			}
		}
	}
}

// readSeed parses a corpus file of []byte, byte and bool arguments.
func readSeed(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a fuzz corpus file", path)
	}
	var args [][]byte
	for _, l := range lines[1:] {
		lit := l[strings.Index(l, "(")+1 : strings.LastIndex(l, ")")]
		if strings.HasPrefix(l, "bool(") {
			args = append(args, []byte(lit))
			continue
		}
		lit, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if strings.HasPrefix(l, "byte(") {
			lit = string([]byte{byte([]rune(lit)[0])})
		}
		args = append(args, []byte(lit))
	}
	return args
}
