package release

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
)

// signedRelease writes two files and a checksum file listing them into a
// temporary directory, signs the checksum file with a fresh key, and
// returns the directory, the key and the signature.
func signedRelease(t *testing.T) (string, minisign.PublicKey, minisign.PrivateKey, []byte, []byte) {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var sums strings.Builder
	for _, f := range []struct{ name, body string }{{"ceiba-v1-linux-amd64", "linux binary"}, {"ceiba-v1-windows-amd64.exe", "windows binary"}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(f.body))
		sums.WriteString(hex.EncodeToString(h[:]) + "  " + f.name + "\n")
	}
	sig := minisign.SignWithComments(priv, []byte(sums.String()), "ceiba v1 abc go1.26.8", "test")
	return dir, pub, priv, []byte(sums.String()), sig
}

func TestVerifiedReleaseChecksEveryFile(t *testing.T) {
	dir, pub, _, sums, sig := signedRelease(t)
	s, err := VerifySums(pub, sums, sig)
	if err != nil {
		t.Fatalf("a correctly signed checksum file was refused: %v", err)
	}
	if s.TrustedComment != "ceiba v1 abc go1.26.8" {
		t.Errorf("trusted comment = %q", s.TrustedComment)
	}
	for _, name := range s.Order {
		if err := s.CheckFile(filepath.Join(dir, name)); err != nil {
			t.Errorf("an intact file was refused: %v", err)
		}
	}
	// One flipped byte in a binary is caught.
	p := filepath.Join(dir, "ceiba-v1-linux-amd64")
	if err := os.WriteFile(p, []byte("linux binarY"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(p); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a changed binary: err = %v, want a checksum mismatch", err)
	}
	other := filepath.Join(dir, "ceiba-v2-linux-amd64")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckFile(other); err == nil || !strings.Contains(err.Error(), "not listed") {
		t.Errorf("a file from another release: err = %v, want not listed", err)
	}
}

func TestTamperedOrForeignChecksumsRefused(t *testing.T) {
	_, pub, _, sums, sig := signedRelease(t)
	// An attacker who replaced a binary must also change its line.
	tampered := []byte(strings.Replace(string(sums), string(sums[:8]), "00000000", 1))
	if _, err := VerifySums(pub, tampered, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed checksum file: err = %v, want ErrBadSignature", err)
	}
	// ... or sign it with a key of their own.
	_, priv2, _ := minisign.GenerateKey(rand.Reader)
	if _, err := VerifySums(pub, sums, minisign.Sign(priv2, sums)); err == nil || !strings.Contains(err.Error(), "not by the release key") {
		t.Errorf("signed by another key: err = %v", err)
	}
	if _, err := VerifySums(pub, sums, []byte("garbage")); err == nil || !strings.Contains(err.Error(), "not a minisign signature") {
		t.Errorf("garbage signature: err = %v", err)
	}
}

func TestSignedButMalformedChecksumsRefused(t *testing.T) {
	pub, priv, _ := minisign.GenerateKey(rand.Reader)
	zero := strings.Repeat("0", 64)
	for name, body := range map[string]string{
		"no files":     "\n",
		"short hash":   "abcd  ceiba\n",
		"path":         zero + "  ../../bin/ceiba\n",
		"listed twice": zero + "  ceiba\n" + zero + "  ceiba\n",
	} {
		if _, err := VerifySums(pub, []byte(body), minisign.Sign(priv, []byte(body))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The key built into the binary is the one the README tells people to
// check with minisign, so the two ways of verifying agree.
func TestProjectKeyIsTheDocumentedOne(t *testing.T) {
	text := ProjectKey().String()
	for _, doc := range []string{"../README.md", "../docs/RELEASING.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), text) {
			t.Errorf("%s does not show the release key %s", doc, text)
		}
	}
}

// OPERATIONS.md shows the unit the Debian package installs, verbatim, so
// an operator reading the docs runs what the package ships.
func TestOperationsShowsThePackagedUnit(t *testing.T) {
	unit, err := os.ReadFile("../packaging/ceiba.service")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```ini\n"+string(unit)+"```\n") {
		t.Error("docs/OPERATIONS.md does not show packaging/ceiba.service as it is")
	}
}
