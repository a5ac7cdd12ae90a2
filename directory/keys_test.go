package directory_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
)

const fpAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func sampleFingerprints(n int) []string {
	var fps []string
	for range n {
		var k directory.PublicKey
		rand.Read(k[:])
		fps = append(fps, directory.Fingerprint(k))
	}
	return fps
}

func TestFingerprintFormat(t *testing.T) {
	for _, fp := range sampleFingerprints(5) {
		if len(fp) != 29 || strings.Count(fp, "-") != 4 {
			t.Fatalf("fingerprint %q is not five groups of five", fp)
		}
		for i, g := range strings.Split(fp, "-") {
			if len(g) != 5 || strings.Trim(g, fpAlphabet) != "" {
				t.Fatalf("fingerprint %q: group %d is %q", fp, i, g)
			}
		}
		got, err := directory.NormalizeFingerprint(fp)
		if err != nil || got != fp {
			t.Fatalf("NormalizeFingerprint(%q) = %q, %v", fp, got, err)
		}
	}
}

// People read fingerprints aloud, copy them from chats and type them on
// phones: case, spaces, dashes and line breaks must not matter.
func TestNormalizeFingerprintAcceptsAnyCaseAndSpacing(t *testing.T) {
	fp := sampleFingerprints(1)[0]
	bare := strings.ReplaceAll(fp, "-", "")
	for _, typed := range []string{
		fp,
		strings.ToUpper(fp),
		bare,
		strings.ToUpper(bare[:7]) + bare[7:],
		strings.ReplaceAll(fp, "-", " "),
		"  " + strings.ReplaceAll(fp, "-", "  ") + " ",
		strings.Join(strings.Split(bare, ""), " "),
		strings.Join(strings.Split(bare, ""), "-"),
		strings.ReplaceAll(fp, "-", "\n"),
		strings.ReplaceAll(fp, "-", "\t"),
		strings.ReplaceAll(fp, "-", "\u00a0"), // no-break space, as chat apps paste
		strings.ReplaceAll(fp, "-", "\u2013"), // en dash, as word processors write
		strings.ReplaceAll(fp, "-", "\u2010"), // Unicode hyphen
	} {
		got, err := directory.NormalizeFingerprint(typed)
		if err != nil || got != fp {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want %q", typed, got, err, fp)
		}
	}
}

func TestNormalizeFingerprintRejectsEverySingleCharacterChange(t *testing.T) {
	for _, fp := range sampleFingerprints(8) {
		bare := strings.ReplaceAll(fp, "-", "")
		for i := range bare {
			for _, c := range fpAlphabet + "0189" {
				if byte(c) == bare[i] {
					continue
				}
				typo := bare[:i] + string(c) + bare[i+1:]
				if _, err := directory.NormalizeFingerprint(typo); !errors.Is(err, directory.ErrBadFingerprint) {
					t.Fatalf("%q with position %d changed to %q: err = %v, want ErrBadFingerprint", bare, i, c, err)
				}
			}
		}
		for _, short := range []string{bare[1:], bare + "a", "", "----"} {
			if _, err := directory.NormalizeFingerprint(short); !errors.Is(err, directory.ErrBadFingerprint) {
				t.Fatalf("%q: err = %v, want ErrBadFingerprint", short, err)
			}
		}
	}
}

// Luhn mod 32 catches every swap of two neighbouring characters except the
// pair a/7 (values 0 and 31), whose doubled values differ by the same
// amount; swaps with the check character are caught most of the time.
func TestNormalizeFingerprintRejectsMostTranspositions(t *testing.T) {
	swaps, caught := 0, 0
	for _, fp := range sampleFingerprints(40) {
		bare := strings.ReplaceAll(fp, "-", "")
		for i := 0; i+1 < len(bare); i++ {
			if bare[i] == bare[i+1] {
				continue
			}
			swapped := bare[:i] + string(bare[i+1]) + string(bare[i]) + bare[i+2:]
			_, err := directory.NormalizeFingerprint(swapped)
			swaps++
			if err != nil {
				caught++
				continue
			}
			pair := string(bare[i]) + string(bare[i+1])
			if i+2 < len(bare) && pair != "a7" && pair != "7a" {
				t.Errorf("swapping %q at %d in %q went unnoticed", pair, i, bare)
			}
		}
	}
	if caught*100 < swaps*95 {
		t.Fatalf("caught %d of %d adjacent transpositions, want at least 95%%", caught, swaps)
	}
}
