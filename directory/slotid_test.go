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
