package directory

import (
	"strings"
	"testing"
)

// entrySlotID is the slot ID of the entry's slot name, whatever the ID's
// length, so the ranks that decide which entries count against an
// author's limits are those every node computes from the name.
func TestEntrySlotIDIsTheNamesID(t *testing.T) {
	var pub PublicKey
	for i := range pub {
		pub[i] = byte(i * 7)
	}
	for _, id := range []string{"a", "asesoria-juridica", strings.Repeat("x", 64), strings.Repeat("y", 200)} {
		if got, want := entrySlotID(pub, id), SlotIDOf(entrySlotName(pub, id)); got != want {
			t.Errorf("entry %q: %x, the name's ID is %x", id, got, want)
		}
	}
}

// A full manifest page, with the largest page numbers and date a signer
// can put in it, encodes within the max_record_bytes it was sized for,
// from the smallest limit a charter may set to the protocol's: DHT
// servers store nothing larger.
func TestFullManifestPageFitsTheCharterLimit(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var net NetworkID
	for _, limit := range []int{4096, 8192, DefaultMaxRecordBytes, 100_000, MaxRecordBytes} {
		n := ManifestSlotsPerPage(limit)
		m := &Manifest{Page: 1<<32 - 2, Pages: 1<<32 - 1, Issued: 7258118400, Slots: make([]SlotID, n), Heads: make([]Head, n)}
		for i := range n {
			m.Slots[i][0], m.Heads[i][0] = 0xff, 0xff
		}
		r, err := NewRecord(net, m, id)
		if err != nil {
			t.Fatal(err)
		}
		if size := len(r.Encode()); size > limit {
			t.Errorf("a page of %d slots encodes to %d bytes, over the limit of %d it was sized for", n, size, limit)
		}
		if limit == DefaultMaxRecordBytes && n < 1900 {
			t.Errorf("a page lists %d slots at the default limit: more pages than needed", n)
		}
	}
}

// Heads, when a page has them, name one record per listed slot.
func TestManifestHeadsMatchItsSlots(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Page: 0, Pages: 1, Issued: 1700000000, Slots: make([]SlotID, 3), Heads: make([]Head, 2)}
	if _, err := NewRecord(NetworkID{}, m, id); err == nil || !strings.Contains(err.Error(), "2 heads for 3 slots") {
		t.Fatalf("a page of 3 slots and 2 heads: %v", err)
	}
	m.Heads = nil // a page made before heads: every slot is read
	if _, err := NewRecord(NetworkID{}, m, id); err != nil {
		t.Fatalf("a page without heads: %v", err)
	}
}
