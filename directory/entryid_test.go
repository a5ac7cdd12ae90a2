package directory

import (
	"regexp"
	"strings"
	"testing"
)

// The entry ID rule as the protocol states it (PROTOCOL.md), which
// validEntryID implements without a regular expression.
var entryIDRule = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func FuzzValidEntryID(f *testing.F) {
	for _, id := range []string{"", "a", "0", "-", "-a", "a-", "asesoria-juridica", "A", "a_b", "a b", "é", "a\n",
		strings.Repeat("x", 64), strings.Repeat("x", 65), "a" + strings.Repeat("-", 63), "\xff"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := validEntryID(id), entryIDRule.MatchString(id); got != want {
			t.Fatalf("validEntryID(%q) = %v, the rule says %v", id, got, want)
		}
	})
}
