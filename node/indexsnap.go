package node

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
)

// The index snapshot keeps the search index between starts, written with
// each checkpoint: a start restores it instead of analysing every entry
// again (directory.State.RestoreIndex, which uses it only if it names
// exactly the records the rebuilt state holds). It holds the words of
// every entry, so it is sealed with XChaCha20-Poly1305 under a key only
// this identity derives: someone who takes the disk without the
// passphrase learns from it no more than from the sealed records, and
// a snapshot changed on disk fails to open and is ignored.
var indexSnapshotKey = datastore.NewKey("/index-snapshot")

const indexSnapshotPurpose = "start-up index snapshot v1"

// indexSnapshotEvery spaces the snapshots written while the node runs:
// at 100,000 entries one is about 17 MiB, against 3 MiB for the checkpoint
// it is written with. Close writes one too, and so does a start that
// could not use the last; a crash costs the next start only the indexing
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

// saveIndexSnapshot seals the state's index and stores it. The caller
// makes sure the store is open, as for saveCheckpoint.
func (n *Node) saveIndexSnapshot(ctx context.Context) error {
	plain := n.state.IndexSnapshot()
	if plain == nil {
		return nil // loading: nothing settled to keep
	}
	aead := n.indexSnapshotAEAD()
	sealed := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+chacha20poly1305.Overhead)
	rand.Read(sealed)
	sealed = aead.Seal(sealed, sealed, plain, n.cfg.Network[:])
	if err := n.root.Put(ctx, indexSnapshotKey, sealed); err != nil {
		return fmt.Errorf("index snapshot: %w", err)
	}
	if err := n.root.Sync(ctx, indexSnapshotKey); err != nil {
		return fmt.Errorf("index snapshot: %w", err)
	}
	n.mu.Lock()
	n.indexSavedAt = time.Now()
	n.mu.Unlock()
	n.log.Debug("index snapshot written", "bytes", len(sealed))
	return nil
}

// readIndexSnapshot opens and decodes the stored snapshot.
func (n *Node) readIndexSnapshot(ctx context.Context) (*directory.IndexSnapshot, error) {
	b, err := n.root.Get(ctx, indexSnapshotKey)
	if errors.Is(err, datastore.ErrNotFound) {
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
	// Not opened in place: a datastore may hand over what it holds.
	plain, err := aead.Open(nil, nonce, sealed, n.cfg.Network[:])
	if err != nil {
		return nil, errors.New("it does not open under this identity and network (damaged, or another home's)")
	}
	return directory.DecodeIndexSnapshot(plain)
}

var errNoIndexSnapshot = errors.New("none stored")
