package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/go-datastore"

	"github.com/ceiba-network/ceiba/directory"
)

// StoredRecords reads every record of the store under dataDir (dataDir/store)
// without writing anything: the store is opened read-only, after the same
// table checksum check a node's start makes, and no repair is attempted. It
// is how `ceiba upgrade` reads what an earlier protocol version stored
// (PROTOCOL.md §10); a damaged store is an error wrapping ErrDamagedStore,
// and a missing or empty one gives no records.
func StoredRecords(dataDir string) (map[directory.Hash][]byte, error) {
	path := filepath.Join(dataDir, "store")
	if ents, err := os.ReadDir(path); errors.Is(err, os.ErrNotExist) || (err == nil && len(ents) == 0) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	// Even a read-only open creates pebble's LOCK file; one this read
	// made goes with it, so the store is left exactly as it was.
	lock := filepath.Join(path, "LOCK")
	if _, err := os.Lstat(lock); errors.Is(err, os.ErrNotExist) {
		defer os.Remove(lock)
	}
	if err := checkTables(path, log); err != nil {
		return nil, err
	}
	out := map[directory.Hash][]byte{}
	err := withPebble(path, log, &pebble.Options{ReadOnly: true}, func(db *pebble.DB) error {
		// A key that is no record is skipped: version 1 kept nothing else here.
		return eachInPebble(context.Background(), db, func(r storedRecord) { out[r.hash] = r.sealed }, func(datastore.Key) {})
	})
	if err != nil {
		return nil, fmt.Errorf("reading the store %s: %w", path, err)
	}
	return out, nil
}
