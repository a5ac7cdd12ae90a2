package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/ceiba-network/ceiba/directory"
)

// recordStore keeps the sealed records of the pool, one key per record
// hash. Records are stored sealed, so the datastore on disk holds nothing
// readable without the keystore's read keys.
type recordStore struct {
	ds datastore.Batching
	// db is the pebble database under ds when ds is a pebble datastore
	// (the node's own store is). Every value go-ds-pebble returns is a
	// copy the caller may change, which the start relies on: it decrypts
	// stored records in place (directory.OpenVerified). Any other
	// datastore's values are copied first (a MapDatastore hands out its
	// own memory). The start also reads every record straight from db:
	// go-datastore's query costs a channel send and three key strings
	// built and parsed per record, which at 100,000 records was a tenth
	// of the start's CPU.
	db *pebble.DB
}

// recordsPrefix is where records live in the node's datastore; the DHT
// layer keeps its own data under /dht in the same datastore.
var recordsPrefix = datastore.NewKey("/records")

func newRecordStore(root datastore.Batching) *recordStore {
	return &recordStore{ds: namespace.Wrap(root, recordsPrefix), db: pebbleUnder(root)}
}

// pebbleUnder is the pebble database ds stores in, or nil if it is not a
// pebble datastore (or one that only the disk guard wraps).
func pebbleUnder(ds datastore.Batching) *pebble.DB {
	switch d := ds.(type) {
	case *pebbleds.Datastore:
		return d.DB
	case *diskGuard:
		return pebbleUnder(d.Batching)
	}
	return nil
}

// sealed reads the record stored under h, as bytes the caller may change.
func (s *recordStore) sealed(ctx context.Context, h directory.Hash) ([]byte, error) {
	v, err := s.ds.Get(ctx, recordKey(h))
	if err == nil && s.db == nil {
		v = bytes.Clone(v)
	}
	return v, err
}

func recordKey(h directory.Hash) datastore.Key {
	return datastore.NewKey(hex.EncodeToString(h[:]))
}

// parseRecordKey reads a record key relative to recordsPrefix: the hash
// in hex, after a "/" (a datastore key) or not (a table's key with the
// whole prefix cut off, as the store's repair reads them).
func parseRecordKey[K string | []byte](k K) (directory.Hash, bool) {
	var h directory.Hash
	if len(k) > 0 && k[0] == '/' {
		k = k[1:]
	}
	if len(k) != hex.EncodedLen(len(h)) {
		return h, false
	}
	_, err := hex.Decode(h[:], []byte(k))
	return h, err == nil
}

// put stores one sealed record and returns once it is durable: the Sync
// is what lets the node acknowledge the record.
func (s *recordStore) put(ctx context.Context, h directory.Hash, sealed []byte) error {
	k := recordKey(h)
	if err := s.ds.Put(ctx, k, sealed); err != nil {
		return fmt.Errorf("store: put %s: %w", h.Short(), err)
	}
	if err := s.ds.Sync(ctx, k); err != nil {
		return fmt.Errorf("store: sync %s: %w", h.Short(), err)
	}
	return nil
}

// putMany stores records with one batch and one durable sync.
func (s *recordStore) putMany(ctx context.Context, batch []pending) error {
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, p := range batch {
		if err := b.Put(ctx, recordKey(p.hash), p.sealed); err != nil {
			return fmt.Errorf("store: put %s: %w", p.hash.Short(), err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit %d records: %w", len(batch), err)
	}
	if err := s.ds.Sync(ctx, datastore.NewKey("/")); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	return nil
}

// remove deletes records. It does not sync: a deletion lost in a crash
// brings back a record the state refuses or drops again at the next start,
// which then deletes it.
func (s *recordStore) remove(ctx context.Context, hs []directory.Hash) error {
	if len(hs) == 0 {
		return nil
	}
	b, err := s.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := b.Delete(ctx, recordKey(h)); err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

type storedRecord struct {
	hash   directory.Hash
	sealed []byte
}

// all reads every stored record. Keys that are not record hashes are
// reported as bad so the caller can remove them.
func (s *recordStore) all(ctx context.Context) (good []storedRecord, bad []datastore.Key, err error) {
	err = s.each(ctx, func(r storedRecord) { good = append(good, r) }, func(k datastore.Key) { bad = append(bad, k) })
	if err != nil {
		return nil, nil, err
	}
	return good, bad, nil
}

// each calls fn with every stored record as it reads them, and bad with
// every key that is not a record hash. The sealed bytes fn gets are its
// own to change.
func (s *recordStore) each(ctx context.Context, fn func(storedRecord), bad func(datastore.Key)) error {
	if s.db != nil {
		return eachInPebble(ctx, s.db, fn, bad)
	}
	res, err := s.ds.Query(ctx, query.Query{})
	if err != nil {
		return err
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return e.Error
		}
		h, ok := parseRecordKey(e.Key)
		if !ok {
			bad(datastore.NewKey(e.Key))
			continue
		}
		fn(storedRecord{hash: h, sealed: bytes.Clone(e.Value)})
	}
	return nil
}

// eachInPebble is each over a pebble database read directly, under the
// keys go-ds-pebble gives recordsPrefix.
func eachInPebble(ctx context.Context, db pebble.Reader, fn func(storedRecord), bad func(datastore.Key)) (err error) {
	prefix := []byte(recordsPrefix.String() + "/")
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(prefix[:len(prefix)-1:len(prefix)-1], '/'+1)})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := it.Close(); err == nil {
			err = cerr
		}
	}()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		k := it.Key()[len(prefix)-1:]
		h, ok := parseRecordKey(k)
		if !ok {
			bad(datastore.NewKey(string(k)))
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		// The iterator's value is its own until the next step.
		fn(storedRecord{hash: h, sealed: bytes.Clone(v)})
	}
	return nil
}
