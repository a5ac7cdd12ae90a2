package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	pebbleds "github.com/ipfs/go-ds-pebble"
)

// ErrDamagedStore is wrapped by errors about a store whose files fail
// their checksums (a failing disk, or bytes changed behind the node's
// back). The node does not start on such a store as it is: it moves it
// aside and rebuilds it (see repairStore).
var ErrDamagedStore = errors.New("the node's store is damaged")

// StoreRepair says what the node did at start with a damaged store: where
// the damaged copy is kept, what was wrong with it, and how many records
// it could still read from it. Everything else comes back from peers by
// sync, since every record is signed and verified on the way in.
type StoreRepair struct {
	When      time.Time
	Damage    string // the first damaged file and the reason, one line
	MovedTo   string // the damaged copy, kept for forensics
	Recovered int    // records read back from the damaged copy
}

// pebbleLogger routes pebble's messages to the node's log. Pebble calls
// Fatalf on damage it finds (a checksum mismatch in a table) and expects
// it not to return; its default prints a stack trace and exits. While the
// store is being opened, Fatalf panics with a pebbleFatal that the open
// path recovers into ErrDamagedStore; afterwards (damage found by a
// background compaction) it logs one line and exits, and the next start
// finds the damage and repairs it.
type pebbleLogger struct {
	log     *slog.Logger
	opening atomic.Bool // read by pebble's background goroutines
}

type pebbleFatal struct{ msg string }

func (l *pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug("store: " + fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Errorf(format string, args ...any) {
	l.log.Warn("store: " + fmt.Sprintf(format, args...))
}

func (l *pebbleLogger) Fatalf(format string, args ...any) {
	msg := oneLine(fmt.Sprintf(format, args...))
	if l.opening.Load() {
		panic(pebbleFatal{msg})
	}
	l.log.Error("the node's store is damaged; stopping. Start the node again: it moves the damaged store aside and rebuilds it", "damage", msg)
	os.Exit(1)
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// checkTables reads every block of every live table of the store in dir
// and checks its checksum. Pebble only checks a block when it reads it,
// so without this a damaged table is found later, by a compaction in the
// background, which stops the process. The live tables are listed by a
// read-only open (no compaction runs, nothing is written or deleted), so
// a half-written table a crash left behind, which pebble ignores and
// removes, is not taken for damage. A store that does not open read-only
// for another reason than corruption is left to the normal open, which
// reports it.
func checkTables(dir string, log *slog.Logger) error {
	if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
		return nil // a new store
	}
	var live []string
	err := withPebble(dir, log, &pebble.Options{ReadOnly: true}, func(db *pebble.DB) error {
		levels, err := db.SSTables()
		if err != nil {
			return err
		}
		for _, level := range levels {
			for _, t := range level {
				if t.BackingType == pebble.BackingTypeLocal {
					live = append(live, fmt.Sprintf("%06d.sst", uint64(t.BackingSSTNum)))
				}
			}
		}
		return nil
	})
	if errors.Is(err, ErrDamagedStore) {
		return err
	}
	if err != nil {
		log.Debug("store: the read-only check could not open the store", "err", err)
		return nil
	}
	// On every core: at 100,000 records the check reads 125 MB, and on
	// one core it was 50 ms of every start.
	ropts := readerOptions()
	names := slices.Compact(slices.Sorted(slices.Values(live)))
	damage := make([]error, len(names))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(names); i = int(next.Add(1) - 1) {
				damage[i] = withTable(filepath.Join(dir, names[i]), ropts, func(r *sstable.Reader) error { return r.ValidateBlockChecksums() })
			}
		})
	}
	wg.Wait()
	// The first damaged table by name, as a check on one core found it.
	for i, err := range damage {
		if err != nil {
			return fmt.Errorf("%w: table %s: %s", ErrDamagedStore, names[i], oneLine(err.Error()))
		}
	}
	return nil
}

// withPebble opens the pebble database at path with the node's logger and
// opts, runs fn on it and closes it, turning a pebble Fatalf during all
// that, or a corruption error, into ErrDamagedStore.
func withPebble(path string, log *slog.Logger, opts *pebble.Options, fn func(*pebble.DB) error) (err error) {
	pl := &pebbleLogger{log: log}
	pl.opening.Store(true)
	defer damagedOnFatal(&err)
	opts.Logger = pl
	db, err := pebble.Open(path, opts)
	if err == nil {
		err = fn(db)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
	}
	if errors.Is(err, pebble.ErrCorruption) {
		return fmt.Errorf("%w: %s", ErrDamagedStore, oneLine(err.Error()))
	}
	return err
}

// damagedOnFatal, deferred, turns the pebbleFatal a pebbleLogger panics
// with during an open into ErrDamagedStore in *err; any other panic goes on.
func damagedOnFatal(err *error) {
	if p := recover(); p != nil {
		f, ok := p.(pebbleFatal)
		if !ok {
			panic(p)
		}
		*err = fmt.Errorf("%w: %s", ErrDamagedStore, f.msg)
	}
}

// readerOptions are the options pebble itself reads the store's tables
// with (go-ds-pebble opens it with pebble's defaults).
func readerOptions() sstable.ReaderOptions {
	o := &pebble.Options{}
	o.EnsureDefaults()
	return o.MakeReaderOptions()
}

func withTable(path string, ropts sstable.ReaderOptions, fn func(*sstable.Reader) error) (err error) {
	defer func() {
		// A table damaged in its metadata can make the reader panic
		// rather than return an error.
		if p := recover(); p != nil {
			err = fmt.Errorf("unreadable: %v", p)
		}
	}()
	f, err := vfs.Default.Open(path)
	if err != nil {
		return err
	}
	readable, err := sstable.NewSimpleReadable(f)
	if err != nil {
		f.Close()
		return err
	}
	r, err := sstable.NewReader(context.Background(), readable, ropts)
	if err != nil {
		readable.Close()
		return err
	}
	defer r.Close()
	return fn(r)
}

// openPebble opens the pebble datastore at path with opts (nil for the
// defaults) and the node's logger, turning a pebble Fatalf during the open
// into ErrDamagedStore.
func openPebble(path string, log *slog.Logger, opts *pebble.Options) (pds *pebbleds.Datastore, err error) {
	pl := &pebbleLogger{log: log}
	pl.opening.Store(true)
	defer pl.opening.Store(false)
	defer damagedOnFatal(&err)
	if opts == nil {
		opts = &pebble.Options{}
	}
	opts.Logger = pl
	pds, err = pebbleds.NewDatastore(path, pebbleds.WithCacheSize(storeCacheBytes), pebbleds.WithPebbleOpts(opts))
	if errors.Is(err, pebble.ErrCorruption) {
		return nil, fmt.Errorf("%w: %s", ErrDamagedStore, oneLine(err.Error()))
	}
	return pds, err
}

// openCheckedStore opens the store at path. If its files are damaged it
// builds a fresh store beside it (<path>.rebuild) from every record it can
// still read from the damaged copy, then moves the damaged copy aside to
// <path>.damaged-<time> and the rebuilt store into its place. The node's
// load then verifies and applies those records like any stored record, and
// sync brings back the rest from peers.
//
// The damaged store stays at path until the rebuilt one is complete and
// durable: a repair cut short (a kill, a power cut, a full disk) leaves it
// there, and the next start repairs it again, rather than finding a
// sound, empty store and never reading the damaged copy again.
func openCheckedStore(path string, log *slog.Logger, now time.Time) (*pebbleds.Datastore, *StoreRepair, error) {
	rebuild := path + ".rebuild"
	rep, err := finishSwap(path, rebuild, now)
	if err != nil {
		return nil, nil, err
	}
	if rep == nil {
		damage := checkTables(path, log)
		if damage == nil {
			pds, err := openPebble(path, log, nil)
			if !errors.Is(err, ErrDamagedStore) {
				// A rebuild left by a repair cut short, of damage
				// this start did not find again, is only in the way.
				os.RemoveAll(rebuild)
				return pds, nil, err
			}
			damage = err
		}
		if rep, err = rebuildStore(path, rebuild, damage, log, now); err != nil {
			return nil, nil, err
		}
	}
	pds, err := openPebble(path, log, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the rebuilt store after moving the damaged one to %s: %w", rep.MovedTo, err)
	}
	log.Warn("the node's store was damaged: moved it aside and rebuilt it; peers fill in the rest",
		"damage", rep.Damage, "kept_at", rep.MovedTo, "records_read_back", rep.Recovered)
	return pds, rep, nil
}

// rebuildStore writes the records it can read from the damaged store at
// path into a new store at rebuild, and once that is durable swaps the two:
// the damaged store to <path>.damaged-<time>, the rebuilt one to path.
func rebuildStore(path, rebuild string, damage error, log *slog.Logger, now time.Time) (*StoreRepair, error) {
	rep := &StoreRepair{
		When:    now.UTC(),
		Damage:  strings.TrimPrefix(damage.Error(), ErrDamagedStore.Error()+": "),
		MovedTo: damagedPath(path, now),
	}
	// What an earlier repair cut short left behind.
	if err := os.RemoveAll(rebuild); err != nil {
		return nil, fmt.Errorf("%w (%s), and removing an unfinished rebuild at %s failed: %w", ErrDamagedStore, rep.Damage, rebuild, err)
	}
	recs := salvageRecords(path, log)
	if err := copyRecords(rebuild, recs, log); err != nil {
		// The damaged store stays where it is, and the next start
		// repairs it again.
		os.RemoveAll(rebuild)
		return nil, fmt.Errorf("%w (%s); rebuilding it from the %d records still readable failed, the damaged store is left in place to be repaired at the next start: %w",
			ErrDamagedStore, rep.Damage, len(recs), err)
	}
	rep.Recovered = len(recs)
	// Between these two renames path is missing and the rebuild complete:
	// finishSwap completes the swap at the next start.
	if err := os.Rename(path, rep.MovedTo); err != nil {
		os.RemoveAll(rebuild)
		return nil, fmt.Errorf("%w (%s), and moving it aside failed: %w", ErrDamagedStore, rep.Damage, err)
	}
	if err := os.Rename(rebuild, path); err != nil {
		return nil, fmt.Errorf("%w (%s): moved it to %s, but moving the rebuilt store from %s into its place failed: %w",
			ErrDamagedStore, rep.Damage, rep.MovedTo, rebuild, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%w (%s): syncing %s after rebuilding the store: %w", ErrDamagedStore, rep.Damage, filepath.Dir(path), err)
	}
	return rep, nil
}

// finishSwap completes a repair that stopped between moving the damaged
// store aside and moving the rebuilt one into its place: path is missing
// and rebuild, complete before the damaged store was moved, is there. It
// returns nil, and does nothing, in any other case. A rebuild beside a
// store at path is an unfinished one, which is removed.
func finishSwap(path, rebuild string, now time.Time) (*StoreRepair, error) {
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if _, err := os.Lstat(rebuild); err != nil {
		return nil, nil
	}
	rep := &StoreRepair{When: now.UTC(), Damage: "found at an earlier start, whose repair stopped before the rebuilt store was moved into place"}
	if moved, _ := filepath.Glob(path + ".damaged-*"); len(moved) > 0 {
		slices.Sort(moved) // the names sort by time: the newest is last
		rep.MovedTo = moved[len(moved)-1]
	}
	if err := os.Rename(rebuild, path); err != nil {
		return nil, fmt.Errorf("moving the rebuilt store from %s into place: %w", rebuild, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("syncing %s after moving the rebuilt store into place: %w", filepath.Dir(path), err)
	}
	return rep, nil
}

func damagedPath(path string, now time.Time) string {
	stamp := now.UTC().Format("20060102T150405Z")
	p := path + ".damaged-" + stamp
	// Two repairs within a second (a disk that keeps failing) must not
	// overwrite the first damaged copy.
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = fmt.Sprintf("%s.damaged-%s-%d", path, stamp, i)
	}
}

// repairBatchBytes bounds one batch of the copy into a rebuilt store. The
// disk guard checks the free space before each batch, so what one batch
// adds must fit in the reserve: on ENOSPC inside a commit pebble panics.
const repairBatchBytes = 2 << 20

// copyRecords writes recs into a new store at dir through a disk guard on
// dir's parent (the data directory), flushes it to its tables and closes
// it. The store is written without a log: it is used only once complete,
// and a log would take as much room again as the records themselves, on
// a disk that may already hold the damaged copy's.
func copyRecords(dir string, recs []pending, log *slog.Logger) (err error) {
	pds, err := openPebble(dir, log, &pebble.Options{DisableWAL: true})
	if err != nil {
		return err
	}
	g := &diskGuard{Batching: pds, dir: filepath.Dir(dir)}
	defer func() {
		if cerr := g.Close(); err == nil {
			err = cerr
		}
	}()
	if err := putInBatches(newRecordStore(g), recs); err != nil {
		return err
	}
	// The datastore's Close flushes too, but ignores a failure.
	if err := g.check(); err != nil {
		return err
	}
	if err := pds.DB.Flush(); err != nil {
		return fmt.Errorf("store: flush: %w", err)
	}
	return nil
}

func putInBatches(st *recordStore, recs []pending) error {
	for len(recs) > 0 {
		n, size := 0, 0
		for n < len(recs) && (n == 0 || size+len(recs[n].sealed) <= repairBatchBytes) {
			size += len(recs[n].sealed)
			n++
		}
		if err := st.putMany(context.Background(), recs[:n]); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// salvageRecords reads every record it can from the tables of a damaged
// store, each from the start forward and from the end backward, so that
// only the records in the damaged blocks themselves are lost. The
// records written since the last flush (in pebble's log) are not read:
// peers still hold them. A record deleted since it was written may come
// back; the node's load drops it again as it would any stored record the
// state refuses. What is read is not trusted: the node verifies each
// record (signature, seal, hash) as it loads it.
func salvageRecords(dir string, log *slog.Logger) []pending {
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	ropts := readerOptions()
	prefix := []byte(recordsPrefix.String() + "/")
	got := map[string][]byte{}
	// take keeps one record read from a table; false stops reading that
	// table in that direction (a damaged value).
	take := func(kind pebble.InternalKeyKind, key []byte, value func([]byte) ([]byte, bool, error)) bool {
		if kind != pebble.InternalKeyKindSet || !strings.HasPrefix(string(key), string(prefix)) {
			return true
		}
		k := string(key[len(prefix):])
		if _, ok := got[k]; ok {
			return true
		}
		v, _, err := value(nil)
		if err != nil {
			return false
		}
		got[k] = slices.Clone(v)
		return true
	}
	for _, path := range tables {
		err := withTable(path, ropts, func(r *sstable.Reader) error {
			for _, forward := range []bool{true, false} {
				it, err := r.NewIter(sstable.NoTransforms, nil, nil, sstable.AssertNoBlobHandles)
				if err != nil {
					return err
				}
				kv := it.First()
				if !forward {
					kv = it.Last()
				}
				for kv != nil && take(kv.Kind(), kv.K.UserKey, kv.Value) {
					if forward {
						kv = it.Next()
					} else {
						kv = it.Prev()
					}
				}
				it.Close()
			}
			return nil
		})
		if err != nil {
			log.Debug("store: table unreadable during repair", "table", filepath.Base(path), "err", err)
		}
	}
	var out []pending
	for k, v := range got {
		h, ok := parseRecordKey(k)
		if !ok {
			continue
		}
		out = append(out, pending{hash: h, sealed: v})
	}
	return out
}

// storeCacheBytes is pebble's block cache. The state holds every record
// in memory; the store is read whole at start, in order (a cache does not
// help a single pass), and afterwards only now and then (an epoch page
// for a peer, evidence, the DHT's records). Pebble's default of 8 MiB
// filled during the start's pass and stayed resident for nothing.
const storeCacheBytes = 1 << 20
