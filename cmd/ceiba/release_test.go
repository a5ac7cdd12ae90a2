package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aead.dev/minisign"
)

// "ceiba release verify" is how someone checks a download with a ceiba
// they already trust: good files pass, a changed one fails by name.
func TestReleaseVerify(t *testing.T) {
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var sums strings.Builder
	for _, name := range []string{"ceiba-v9-linux-amd64", "ceiba_9_amd64.deb"} {
		body := []byte("contents of " + name)
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(body)
		sums.WriteString(hex.EncodeToString(h[:]) + "  " + name + "\n")
	}
	sumsPath := filepath.Join(dir, "SHA256SUMS")
	keyPath := filepath.Join(dir, "test.pub")
	keyText, _ := pub.MarshalText()
	for p, b := range map[string][]byte{
		sumsPath:              []byte(sums.String()),
		sumsPath + ".minisig": minisign.SignWithComments(priv, []byte(sums.String()), "ceiba v9", ""),
		keyPath:               append([]byte("untrusted comment: test key\n"), keyText...),
	} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	r := ceiba(t, nil, "release", "verify", "--key", keyPath, sumsPath)
	if r.code != 0 || !strings.Contains(r.stdout, "signature good (ceiba v9)") || strings.Count(r.stdout, ": OK") != 2 {
		t.Fatalf("an intact release: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The release key built into the binary is not the test key.
	mustFail(t, ceiba(t, nil, "release", "verify", sumsPath), "not by the release key")

	if err := os.WriteFile(filepath.Join(dir, "ceiba_9_amd64.deb"), []byte("trojan"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ceiba(t, nil, "release", "verify", "--key", keyPath, sumsPath)
	mustFail(t, r, "1 of 2 files failed")
	if !strings.Contains(r.stdout, "FAILED: ceiba_9_amd64.deb: checksum does not match") {
		t.Fatalf("the changed file is not named:\n%s", r.stdout)
	}
}
