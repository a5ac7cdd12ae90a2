package directory

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// vouchedSamples are encodings of entry records as Encode writes them,
// with the facts in every form they take (seq and dates of every integer
// width, deleted or not, one signer or several), and records of other
// types.
func vouchedSamples(tb testing.TB) (entries, others [][]byte) {
	tb.Helper()
	var net NetworkID
	net[0], net[31] = 7, 9
	ids := make([]*Identity, 3)
	for i := range ids {
		id, err := NewIdentity()
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = id
	}
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	service := func(name string) *Service {
		return &Service{Name: name, Status: "active", Categories: []string{"legal"}, Languages: []string{"es"},
			Areas: []Area{{City: "Quito", Country: "EC"}}, Contacts: []Contact{{Kind: "signal", Value: "+593 2 000 0000"}}}
	}
	for i, seq := range []uint64{1, 23, 24, 255, 256, 65535, 65536, 1 << 32, math.MaxInt64} {
		e := &Entry{ID: fmt.Sprintf("servicio-%d", i), Seq: seq, Issued: now.Unix(), Expires: now.Add(90 * 24 * time.Hour).Unix(), Service: service("Asesoría jurídica")}
		if i%3 == 1 {
			e.Service.Description = string(bytes.Repeat([]byte("acompañamiento "), 200))
		}
		r, err := NewRecord(net, e, ids[:1+i%3]...)
		if err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, r.Encode())
	}
	deleted, err := NewRecord(net, &Entry{ID: "cerrado", Seq: 4, Issued: now.Unix(), Expires: now.Add(time.Hour).Unix(), Deleted: true}, ids[0])
	if err != nil {
		tb.Fatal(err)
	}
	entries = append(entries, deleted.Encode())
	revocation, err := NewRecord(net, &Revocation{Key: ids[1].Public(), Reason: "compromised", Issued: now.Unix()}, ids[1])
	if err != nil {
		tb.Fatal(err)
	}
	others = append(others, revocation.Encode())
	return entries, others
}

// referenceDecode is what the general decoder makes of data, as
// decodeStored did for a vouched entry before decodeVouchedEntry.
func referenceDecode(data []byte) (Record, entryFactsWire, error) {
	var r Record
	if err := unmarshalChecked(data, &r, false); err != nil {
		return Record{}, entryFactsWire{}, err
	}
	var f entryFactsWire
	err := claimMode.Unmarshal(r.Body, &f)
	return r, f, err
}

func sameDecoding(t *testing.T, data []byte, r Record, f entryFactsWire, wr Record, wf entryFactsWire) {
	t.Helper()
	if r.Version != wr.Version || r.Type != wr.Type || r.Network != wr.Network || !bytes.Equal(r.Body, wr.Body) ||
		!slices.EqualFunc(r.Sigs, wr.Sigs, func(a, b Signature) bool { return a.Key == b.Key && bytes.Equal(a.Sig, b.Sig) }) {
		t.Fatalf("record decoded differently from the general decoder:\n%+v\n%+v\ninput %x", r, wr, data)
	}
	if f != wf {
		t.Fatalf("facts decoded differently from the general decoder: %+v, want %+v\ninput %x", f, wf, data)
	}
}

// Every entry Encode writes is read by the fast path, exactly as the
// general decoder reads it; a record of another type is left to it.
func TestVouchedEntryDecodingMatchesTheDecoder(t *testing.T) {
	entries, others := vouchedSamples(t)
	for _, data := range entries {
		r, f, ok := decodeVouchedEntry(data)
		if !ok {
			t.Fatalf("an entry as Encode writes it was not read: %x", data)
		}
		wr, wf, err := referenceDecode(data)
		if err != nil {
			t.Fatal(err)
		}
		sameDecoding(t, data, r, f, wr, wf)
		// The copies share nothing with the decrypted bytes.
		clear(data)
		if wr.Body[0] != r.Body[0] || !bytes.Equal(r.Sigs[0].Sig, wr.Sigs[0].Sig) {
			t.Fatal("the record read still refers to the bytes it was read from")
		}
	}
	for _, data := range others {
		if _, _, ok := decodeVouchedEntry(data); ok {
			t.Fatalf("a record of another type was read as an entry: %x", data)
		}
	}
}

// Whatever a damaged or foreign input makes of the fast path, it never
// reads something other than what the general decoder reads: it refuses
// (and the general decoder then says what is wrong) or agrees.
func TestVouchedEntryDecodingOfDamagedBytes(t *testing.T) {
	entries, _ := vouchedSamples(t)
	data := entries[len(entries)-1]
	for i := range data {
		for _, b := range []byte{0x00, 0x18, 0x1b, 0x5f, 0xa6, 0xf5, data[i] ^ 0x01} {
			damaged := slices.Clone(data)
			damaged[i] = b
			checkVouchedAgainstReference(t, damaged)
		}
		checkVouchedAgainstReference(t, data[:i])
	}
}

func checkVouchedAgainstReference(t *testing.T, data []byte) {
	t.Helper()
	r, f, ok := decodeVouchedEntry(data)
	if !ok {
		return
	}
	wr, wf, err := referenceDecode(data)
	if err != nil {
		// The general decoder checks what the fast path leaves to the
		// full decoding of the body (the service's fields, their UTF-8)
		// or limits a vouched record was within (4,096 signatures).
		return
	}
	sameDecoding(t, data, r, f, wr, wf)
}

func FuzzDecodeVouchedEntry(f *testing.F) {
	entries, others := vouchedSamples(f)
	for _, e := range append(entries, others...) {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkVouchedAgainstReference(t, data)
	})
}

// TestWriteVouchedEntrySeed writes the fuzz seed kept in testdata (run it
// again when the record's encoding changes):
//
//	CEIBA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteVouchedEntrySeed ./directory/
func TestWriteVouchedEntrySeed(t *testing.T) {
	if os.Getenv("CEIBA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("writes testdata only when CEIBA_WRITE_FUZZ_SEEDS is set")
	}
	entries, _ := vouchedSamples(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeVouchedEntry")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", entries[1])
	if err := os.WriteFile(filepath.Join(dir, "entry-two-signers"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
