package node

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
)

// The index snapshot keeps the search index between starts, written with
// the checkpoint at Close and at most every indexSnapshotEvery while
// records change, and by the running node after a start that could not
// use the one it found: a start restores it instead of analysing every entry
// again (directory.State.RestoreIndex, which uses it only if it names
// exactly the records the rebuilt state holds). It holds the words of
// every entry, so it is sealed with XChaCha20-Poly1305 under a key only
// this identity derives: someone who takes the disk without the
// passphrase learns from it no more than from the sealed records, and
// a snapshot changed on disk fails to open and is ignored.
//
// It is a file beside the store, not a value in it: pebble replays the
// last writes from its log into memory at every open, and a 17 MiB value
// written at Close stayed resident (about 35 MiB, through the C
// allocator) in the next process.
const indexSnapshotFile = "index.snapshot"

// indexSnapshotPath is where the node keeps its snapshot; "" for a node
// without a data directory, which keeps none.
func (n *Node) indexSnapshotPath() string {
	if n.cfg.DataDir == "" {
		return ""
	}
	return filepath.Join(n.cfg.DataDir, indexSnapshotFile)
}

const indexSnapshotPurpose = "start-up index snapshot v1"

// indexSnapshotEvery spaces the snapshots written while the node runs:
// at 100,000 entries one is about 17 MiB, against 3 MiB for the checkpoint
// it is written with. Close writes one too, and so does the node after a
// start that could not use the last; a crash costs the next start only the indexing
// (a second at 100,000 entries), never a search result.
const indexSnapshotEvery = time.Hour

func (n *Node) indexSnapshotAEAD() cipher.AEAD {
	k := n.id.LocalMACKey(indexSnapshotPurpose)
	a, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		panic(err) // a 32-byte key always makes one
	}
	return a
}

// saveIndexSnapshot seals the state's index and writes it.
func (n *Node) saveIndexSnapshot() error {
	path := n.indexSnapshotPath()
	if path == "" {
		return nil
	}
	plain := n.state.EncodeIndexSnapshot()
	if plain == nil {
		return nil // loading: nothing settled to keep
	}
	aead := n.indexSnapshotAEAD()
	sealed := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+chacha20poly1305.Overhead)
	rand.Read(sealed)
	sealed = aead.Seal(sealed, sealed, plain, n.cfg.Network[:])
	if err := directory.WriteFileAtomic(path, sealed, 0o600); err != nil {
		return fmt.Errorf("index snapshot: %w", err)
	}
	n.mu.Lock()
	n.indexSavedAt = time.Now()
	n.mu.Unlock()
	n.log.Debug("index snapshot written", "bytes", len(sealed))
	return nil
}

// readIndexSnapshot opens and decodes the stored snapshot.
func (n *Node) readIndexSnapshot() (*directory.IndexSnapshot, error) {
	path := n.indexSnapshotPath()
	if path == "" {
		return nil, errNoIndexSnapshot
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoIndexSnapshot
	}
	if err != nil {
		return nil, fmt.Errorf("reading it: %w", err)
	}
	aead := n.indexSnapshotAEAD()
	if len(b) < aead.NonceSize()+chacha20poly1305.Overhead {
		return nil, errors.New("truncated")
	}
	nonce, sealed := b[:aead.NonceSize()], b[aead.NonceSize():]
	plain, err := aead.Open(sealed[:0], nonce, sealed, n.cfg.Network[:])
	if err != nil {
		return nil, errors.New("it does not open under this identity and network (damaged, or another home's)")
	}
	return directory.DecodeIndexSnapshot(plain)
}

var errNoIndexSnapshot = errors.New("none stored")

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
