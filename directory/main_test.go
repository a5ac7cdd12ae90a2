package directory

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
)

// TestMain checks, in every test of the package, that each derivation of
// revocations that reused the last one (deriveNewRevocations) gives what
// deriving the whole pool again gives. Not in benchmarks, which time the
// derivation.
func TestMain(m *testing.M) {
	flag.Parse()
	if b := flag.Lookup("test.bench"); b == nil || b.Value.String() == "" {
		verifyRevocationDerivation = checkRevocationDerivation
	}
	os.Exit(m.Run())
}

func checkRevocationDerivation(s *State) {
	want := s.weighAllRevocations()
	got := revocationDerivation{revokedAt: s.revDerived.revokedAt, revokedBy: s.stewardRevoked, valid: s.stewardRevocations, voided: s.voided}
	var diffs []string
	if !maps.Equal(got.revokedAt, want.revokedAt) {
		diffs = append(diffs, fmt.Sprintf("revoked at versions %v, want %v", got.revokedAt, want.revokedAt))
	}
	if !maps.Equal(got.revokedBy, want.revokedBy) {
		diffs = append(diffs, fmt.Sprintf("revoked by %v, want %v", got.revokedBy, want.revokedBy))
	}
	if !maps.Equal(got.valid, want.valid) {
		diffs = append(diffs, fmt.Sprintf("effective revocations %v, want %v", got.valid, want.valid))
	}
	if !maps.EqualFunc(got.voided, want.voided, slices.Equal) {
		diffs = append(diffs, fmt.Sprintf("voided %v, want %v", got.voided, want.voided))
	}
	for k := range want.revokedBy {
		if _, ok := s.revoked[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("key %s revoked by stewards but not in the revoked set", Fingerprint(k)))
		}
	}
	if diffs != nil {
		panic(fmt.Sprintf("directory: derivation of revocations differs from the whole pool's: %v", diffs))
	}
}
