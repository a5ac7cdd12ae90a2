package release

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
)

// projectKey is the public half of the key every Ceiba release's
// SHA256SUMS is signed with (docs/RELEASING.md says who holds the secret
// half and how a new one would be announced).
//
//go:embed ceiba-release.pub
var projectKey []byte

// ProjectKey returns the release key built into this binary.
func ProjectKey() minisign.PublicKey {
	k, err := ParseKey(projectKey)
	if err != nil {
		panic("release: the built-in release key does not parse: " + err.Error())
	}
	return k
}

// ParseKey reads a minisign public key: the file minisign -G writes
// (an untrusted comment line, then the key) or the key line alone.
func ParseKey(text []byte) (minisign.PublicKey, error) {
	var k minisign.PublicKey
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if err := k.UnmarshalText([]byte(last)); err != nil {
		return k, fmt.Errorf("not a minisign public key: %w", err)
	}
	return k, nil
}

// maxSumsSize bounds what is read as a checksum file: a release lists a
// dozen files, so anything near this is not one.
const maxSumsSize = 1 << 20

// Sums is a verified checksum file: file name → SHA-256.
type Sums struct {
	// TrustedComment is the signed comment: "ceiba <version> <commit>
	// <go release>" for releases made by packaging/release.sh.
	TrustedComment string
	Files          map[string][sha256.Size]byte
	// Order is the file names in the order the checksum file lists them.
	Order []string
}

// ErrBadSignature means the checksum file was not signed by the key, or
// was changed after it was signed.
var ErrBadSignature = errors.New("the signature does not verify: this checksum file was not signed by the release key, or was changed since")

// VerifySums checks sig over sums under key, then parses sums (lines of
// "<64 hex digits>  <file name>", as sha256sum writes them). Nothing in
// sums is believed before the signature verifies.
func VerifySums(key minisign.PublicKey, sums, sig []byte) (*Sums, error) {
	if len(sums) > maxSumsSize {
		return nil, fmt.Errorf("checksum file is %d bytes; a release's is a few hundred", len(sums))
	}
	var s minisign.Signature
	if err := s.UnmarshalText(sig); err != nil {
		return nil, fmt.Errorf("not a minisign signature: %w", err)
	}
	if s.KeyID != key.ID() {
		return nil, fmt.Errorf("signed by key %X, not by the release key %X", s.KeyID, key.ID())
	}
	if !minisign.Verify(key, sums, sig) {
		return nil, ErrBadSignature
	}
	out := &Sums{TrustedComment: s.TrustedComment, Files: map[string][sha256.Size]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		hexSum, name, ok := strings.Cut(line, "  ")
		name = strings.TrimPrefix(name, "*") // sha256sum's binary-mode mark
		var sum [sha256.Size]byte
		if b, err := hex.DecodeString(hexSum); !ok || err != nil || len(b) != sha256.Size || name == "" {
			return nil, fmt.Errorf("checksum file line %d is not \"<sha-256 in hex>  <file name>\"", n)
		} else {
			copy(sum[:], b)
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			return nil, fmt.Errorf("checksum file line %d names %q, which is not a plain file name", n, name)
		}
		if _, dup := out.Files[name]; dup {
			return nil, fmt.Errorf("checksum file lists %q twice", name)
		}
		out.Files[name] = sum
		out.Order = append(out.Order, name)
	}
	if len(out.Files) == 0 {
		return nil, errors.New("checksum file lists no files")
	}
	return out, nil
}

// CheckFile hashes the file at path and compares it with the checksum
// listed under its base name.
func (s *Sums) CheckFile(path string) error {
	name := filepath.Base(path)
	want, ok := s.Files[name]
	if !ok {
		return fmt.Errorf("%s: not listed in the checksum file (is it from this release?)", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%s: checksum does not match: this file is damaged or was changed; do not run it", name)
	}
	return nil
}
