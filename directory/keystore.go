package directory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"unicode/utf8"

	"filippo.io/age"
)

// Keystore is what a device must protect: its identity and the read keys
// it has received. At rest it is always encrypted with a passphrase (age's
// scrypt recipient), so a seized device yields nothing without it.
type Keystore struct {
	Identity *Identity
	Keys     Keyring
	// Nodes are the addresses of the nodes this device syncs with, when it
	// keeps them at all (the phone's web app keeps every address it can
	// dial of the node it joined through): inside the encrypted keystore,
	// so a seized device does not say, without the passphrase, which node
	// it used.
	Nodes []string
}

// Bounds on Nodes: a few addresses of one network, never a list to grow.
const (
	MaxKeystoreNodes    = 16
	maxKeystoreNodeSize = 1024
)

// keystoreFile is the plaintext inside the age envelope.
type keystoreFile struct {
	Version uint8             `cbor:"1,keyasint"`
	Seed    []byte            `cbor:"2,keyasint"`
	KEM     []byte            `cbor:"3,keyasint"`
	Keys    map[uint64][]byte `cbor:"4,keyasint,omitempty"`
	Nodes   []string          `cbor:"5,keyasint,omitempty"`
}

// DefaultWorkFactor is scrypt's log2(N): about a second on a laptop, which
// makes guessing passphrases on a seized device slow.
const DefaultWorkFactor = 18

// Encrypt seals the keystore with passphrase. workFactor 0 means
// DefaultWorkFactor; tests use less.
func (ks *Keystore) Encrypt(passphrase string, workFactor int) ([]byte, error) {
	if passphrase == "" {
		return nil, errors.New("keystore: an empty passphrase protects nothing")
	}
	if err := checkKeystoreNodes(ks.Nodes); err != nil {
		return nil, err
	}
	seed, kemSecret := ks.Identity.secrets()
	f := keystoreFile{Version: 1, Seed: seed, KEM: kemSecret, Keys: map[uint64][]byte{}, Nodes: ks.Nodes}
	for n, k := range ks.Keys {
		f.Keys[n] = bytes.Clone(k[:])
	}
	return EncryptWithPassphrase(marshal(&f), passphrase, workFactor)
}

// DecryptKeystore opens a keystore. A wrong passphrase is ErrWrongPassphrase;
// anything else that fails is ErrCorruptKeystore.
func DecryptKeystore(data []byte, passphrase string) (*Keystore, error) {
	plain, err := DecryptWithPassphrase(data, passphrase)
	if err != nil {
		if errors.Is(err, ErrWrongPassphrase) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrCorruptKeystore, err)
	}
	var f keystoreFile
	if err := unmarshalCanonical(plain, &f); err != nil || f.Version != 1 {
		return nil, fmt.Errorf("%w: unreadable contents", ErrCorruptKeystore)
	}
	ident, err := identityFromSecrets(f.Seed, f.KEM)
	if err != nil {
		return nil, err
	}
	if err := checkKeystoreNodes(f.Nodes); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptKeystore, err)
	}
	ks := &Keystore{Identity: ident, Keys: Keyring{}, Nodes: f.Nodes}
	for n, k := range f.Keys {
		if len(k) != len(ReadKey{}) {
			return nil, fmt.Errorf("%w: read key for epoch %d has %d bytes", ErrCorruptKeystore, n, len(k))
		}
		ks.Keys[n] = ReadKey(k)
	}
	return ks, nil
}

func checkKeystoreNodes(nodes []string) error {
	if len(nodes) > MaxKeystoreNodes {
		return fmt.Errorf("keystore: %d node addresses, at most %d", len(nodes), MaxKeystoreNodes)
	}
	for _, a := range nodes {
		if a == "" || len(a) > maxKeystoreNodeSize {
			return fmt.Errorf("keystore: a node address of %d bytes (1 to %d)", len(a), maxKeystoreNodeSize)
		}
	}
	return nil
}

// SaveKeystore writes the encrypted keystore to path atomically: a crash
// leaves either the old file or the new one, never a torn one.
func SaveKeystore(path string, ks *Keystore, passphrase string, workFactor int) error {
	data, err := ks.Encrypt(passphrase, workFactor)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data, 0o600)
}

// LoadKeystore reads and decrypts the keystore at path.
func LoadKeystore(path, passphrase string) (*Keystore, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return DecryptKeystore(data, passphrase)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it,
// renames it over path and syncs the directory.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MinPassphraseChars is the shortest passphrase a new keystore takes. Eight
// characters is a floor against the empty or one-word passphrases that
// scrypt cannot save from a guessing attack on a seized device; a few
// words are better.
const MinPassphraseChars = 8

// CheckNewPassphrase refuses a passphrase too short to protect a seized
// device's keys, with a message meant for the person choosing it.
func CheckNewPassphrase(p string) error {
	if n := utf8.RuneCountInString(p); n < MinPassphraseChars {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("the passphrase is empty: it is what protects the keys if this device is seized; choose one of at least %d characters (a few words are easier to remember and harder to guess)", MinPassphraseChars)
		}
		return fmt.Errorf("the passphrase has %d characters; choose one of at least %d (a few words are easier to remember and harder to guess)", n, MinPassphraseChars)
	}
	return nil
}

// EncryptWithPassphrase encrypts data the way the keystore is (age's scrypt
// recipient), for files that must not be usable by whoever seizes the
// device, such as the revocation certificate. workFactor 0 means
// DefaultWorkFactor.
func EncryptWithPassphrase(data []byte, passphrase string, workFactor int) ([]byte, error) {
	defer releaseScryptMemory()
	if passphrase == "" {
		return nil, errors.New("an empty passphrase protects nothing")
	}
	rcpt, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, err
	}
	if workFactor == 0 {
		workFactor = DefaultWorkFactor
	}
	rcpt.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rcpt)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// releaseScryptMemory hands scrypt's working memory (256 MiB at the
// default work factor) back to the system at once. Left to the runtime's
// scavenger it stayed resident for minutes, so a node that had just opened
// its keystore held ~300 MiB instead of ~40, and a machine running many
// nodes ran out of memory. One forced collection per passphrase operation
// costs little next to the scrypt run itself.
func releaseScryptMemory() { debug.FreeOSMemory() }

// PassphraseEncrypted reports whether data looks like the output of
// EncryptWithPassphrase (an age file).
func PassphraseEncrypted(data []byte) bool {
	return bytes.HasPrefix(data, []byte("age-encryption.org/"))
}

// DecryptWithPassphrase opens what EncryptWithPassphrase wrote; a wrong
// passphrase is ErrWrongPassphrase.
func DecryptWithPassphrase(data []byte, passphrase string) ([]byte, error) {
	defer releaseScryptMemory()
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWrongPassphrase, err)
	}
	r, err := age.Decrypt(bytes.NewReader(data), id)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) || errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("not a passphrase-encrypted file: %v", err)
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}
