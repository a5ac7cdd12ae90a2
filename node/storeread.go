package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"

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
	prefix := []byte(recordsPrefix.String() + "/")
	out := map[directory.Hash][]byte{}
	err := withPebble(path, log, &pebble.Options{ReadOnly: true}, func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(prefix[:len(prefix)-1:len(prefix)-1], '0')})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := strings.TrimPrefix(string(it.Key()), string(prefix[:len(prefix)-1]))
			h, ok := parseRecordKey(k)
			if !ok {
				continue // not a record: version 1 kept nothing else here
			}
			v, err := it.ValueAndErr()
			if err != nil {
				it.Close()
				return err
			}
			out[h] = append([]byte(nil), v...)
		}
		return it.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("reading the store %s: %w", path, err)
	}
	return out, nil
}
