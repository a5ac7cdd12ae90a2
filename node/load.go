package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/ceiba-network/ceiba/directory"
)

// load rebuilds the state from the store. Records are opened with the keys
// the node holds; records under an epoch whose key arrives with a stored
// epoch record are opened in the next pass. Records the state refuses for
// good (expired, revoked, superseded, corrupt) are deleted; records refused
// for a reason that may pass (dated in the future, no key yet) are kept.
func (n *Node) load(ctx context.Context) error {
	start := time.Now()
	ckpt, outdated, why := n.readCheckpoint(ctx)
	verified, fieldsChecked := ckpt.listed, ckpt.fieldsChecked
	// Sized once for what the checkpoint lists: growing them a record at
	// a time was about 60 ms of a start at 100,000 entries.
	n.stored = make(map[directory.Hash]uint64, len(verified))
	n.state.Reserve(len(verified))
	// With an index snapshot stored, the records are applied without
	// indexing them while it is opened and decoded; RestoreIndex then
	// installs it if it matches the state, or indexes every visible entry.
	// Without one they are indexed as they are applied, even when their
	// bodies were not decoded (VouchedAll): decoding them there overlaps
	// the opening, and indexing them all afterwards instead was slower
	// (1.59–1.67 s against 1.29–1.40 s at 100,000 entries).
	snapc := make(chan indexSnapshotRead, 1)
	if path := n.indexSnapshotPath(); path != "" && fileExists(path) {
		n.state.LoadingUnindexed()
		go func() {
			s, err := n.readIndexSnapshot()
			snapc <- indexSnapshotRead{s, err}
		}()
	} else {
		n.state.Loading()
		snapc <- indexSnapshotRead{nil, errNoIndexSnapshot}
	}
	defer func() {
		// A no-op after the restore below; a start that failed before it
		// still leaves the state whole.
		n.state.RestoreIndex(nil)
		n.state.Loaded()
	}()
	l := &loader{n: n, verified: verified, fieldsChecked: fieldsChecked}
	before := len(n.keyringSnapshot())
	var waiting []storedRecord
	var bad []datastore.Key
	stored := 0
	if verified.entries() > 0 {
		var err error
		if waiting, bad, stored, err = l.streamed(ctx); err != nil {
			return fmt.Errorf("node: reading the store: %w", err)
		}
	} else {
		items, b, err := n.store.all(ctx)
		if err != nil {
			return fmt.Errorf("node: reading the store: %w", err)
		}
		if stored, bad = len(items), b; verified == nil && stored > 0 {
			// Only a checkpoint that was there and could not be used is
			// news for the operator; a store without one is verified
			// quietly.
			level := slog.LevelInfo
			if why == noCheckpoint {
				level = slog.LevelDebug
			}
			n.log.Log(ctx, level, "start-up checkpoint not used; verifying every stored record", "why", why)
		}
		waiting = l.pass(ctx, items)
	}
	for {
		// Epoch records applied in the last pass may have given the keys
		// that open what waits.
		n.adoptKeys()
		if len(n.keyringSnapshot()) == before || len(waiting) == 0 {
			if len(waiting) > 0 {
				n.log.Warn("stored records sealed under epochs this node has no key for", "count", len(waiting))
			}
			break
		}
		before = len(n.keyringSnapshot())
		waiting = l.pass(ctx, waiting)
	}
	snapRead := <-snapc
	snapErr := snapRead.err
	if snapErr == nil {
		snapErr = n.state.RestoreIndex(snapRead.snap)
	} else {
		n.state.RestoreIndex(nil)
	}
	n.indexRestored = snapErr == nil
	if n.indexRestored {
		n.indexSavedAt = time.Now()
	}
	switch {
	case snapErr == nil:
		n.log.Debug("search index restored from its snapshot")
	case errors.Is(snapErr, errNoIndexSnapshot):
		// Indexed as the records were applied.
	default:
		n.log.Info("index snapshot not used; every entry indexed again", "why", snapErr)
	}
	remove := l.remove
	if len(l.rewrite) > 0 {
		// Sealed now that every key the store carries is known; the
		// old keys go only once the new ones are durable.
		for i := range l.rewrite {
			l.rewrite[i].epoch, l.rewrite[i].sealed = n.sealFor(l.rewrite[i].r)
		}
		if err := n.persist(l.rewrite); err != nil {
			return fmt.Errorf("node: storing again the %d records stored with envelope version 1: %w", len(l.rewrite), err)
		}
		remove = append(remove, l.interimKeys...)
		n.log.Info("records stored with envelope version 1 by an earlier build stored again as version 2", "records", len(l.rewrite))
	}
	if l.legacy > 0 {
		return fmt.Errorf("node: %d stored records were written by another version of the Ceiba protocol; this ceiba speaks version 2 and has changed nothing in the store; run \"ceiba upgrade\" to keep this home's identity and entries (docs/PROTOCOL.md §10: upgrading a home)", l.legacy)
	}
	for _, k := range bad {
		n.store.ds.Delete(ctx, k)
	}
	// What later records dropped from the pool goes too.
	for h := range n.stored {
		if !n.state.Has(h) {
			delete(n.stored, h)
			remove = append(remove, h)
		}
	}
	if err := n.store.remove(ctx, remove); err != nil {
		n.log.Warn("removing refused stored records", "err", err)
	}
	// Before Expire, which drops it again if the time since changed
	// anything (directory.State.AdoptDigest). Only under the same rules:
	// a build that applies records differently may not show the same.
	n.digestAdopted = ckpt.stamped() && fieldsChecked &&
		n.state.AdoptDigest(ckpt.stamp, len(verified), func(h directory.Hash) bool { _, ok := verified[h]; return ok })
	now := time.Now()
	for _, k := range n.state.Revoked() {
		n.revokedAt[k] = now
	}
	n.noteVoided()
	// The state is whole now: keys it does not back can go, and what was
	// stored under them is stored again under a key that stays.
	n.loaded.Store(true)
	n.adoptKeys()
	n.resealUnheld()
	n.state.Expire()
	n.pruneStore()
	vouched := l.vouched
	// Without the digest: at 100,000 entries it takes 60 ms to compute,
	// a sixteenth of the start, and `ceiba status` shows it.
	n.log.Info("state rebuilt from the store", "records", len(n.stored), "removed", len(remove),
		"signatures-checked", len(n.stored)-min(vouched, len(n.stored)),
		"took", time.Since(start).Round(time.Millisecond))
	n.ckpt.vouched = vouched
	// What was verified now need not be at the next start, crash or not.
	// A snapshot that could not be used is replaced once the node runs
	// (New): writing one is about 0.2 s at 100,000 entries, not to be
	// added to the start.
	n.indexStale = snapErr != nil && n.state.Stats().Entries > 0
	if vouched < len(n.stored) || (verified == nil && stored > 0) || outdated {
		if err := n.saveCheckpoint(ctx, false); err != nil {
			n.log.Warn("writing the start-up checkpoint; the next start verifies every record again", "err", err)
		}
	} else {
		n.ckpt = checkpointState{at: time.Now(), ver: n.storedVer, count: len(n.stored), vouched: vouched}
	}
	return nil
}

// vouch is what the checkpoint vouches for of the record with hash h.
func (l *loader) vouch(h directory.Hash) directory.Vouched {
	switch entry, listed := l.verified[h]; {
	case !listed:
		return directory.VouchedNothing
	case entry && l.fieldsChecked:
		return directory.VouchedAll
	default:
		return directory.VouchedSignatures
	}
}

type indexSnapshotRead struct {
	snap *directory.IndexSnapshot
	err  error
}

// loader is one start's reading of the store: what it applied, and what
// the start must remove or store again afterwards.
type loader struct {
	n        *Node
	verified vouchedSet
	// fieldsChecked says the checkpoint vouches for the field checks of
	// the entries it lists too (directory.VouchedAll).
	fieldsChecked bool

	remove          []directory.Hash
	legacy, vouched int
	// rewrite holds the records stored with envelope version 1 by an
	// earlier build of version 2 (directory.OpenInterim), to store again
	// under their version-2 hash, and interimKeys the keys they were
	// stored under.
	rewrite     []pending
	interimKeys []directory.Hash
}

type openedRecord struct {
	r     *directory.Record
	hash  directory.Hash
	epoch uint64
	was   directory.Hash // the store key of a record rewritten from envelope version 1
}

// pass opens items with the keys held now, on every core, and applies what
// opened in ApplyRank order; it returns what waits for a key.
func (l *loader) pass(ctx context.Context, items []storedRecord) []storedRecord {
	kr := l.n.keyringSnapshot()
	var recs []openedRecord
	var waiting []storedRecord
	vouch := func(_, h directory.Hash) directory.Vouched { return l.vouch(h) }
	openInOrder(chunks(items), l.n.cfg.Network, kr, vouch, runtime.GOMAXPROCS(0), func(items []storedRecord, res []openResult) {
		r, w := l.classify(ctx, items, res, kr)
		recs, waiting = append(recs, r...), append(waiting, w...)
	})
	l.apply(recs)
	return waiting
}

// streamed is the first pass of a start with a checkpoint that names its
// entries: the other records it names are read and applied first; then
// the entries are applied as they are read and opened, the reading and
// the applying alongside as many opening workers as there are cores
// (with the index snapshot, applying an entry costs a fraction of
// opening it, so it no longer gets a core of its own); last come the
// records stored after the checkpoint (a crash before the next one), in
// ApplyRank order. It returns what waits for a
// key, the keys that are not records and how many records the store held.
func (l *loader) streamed(ctx context.Context) (waiting []storedRecord, bad []datastore.Key, stored int, err error) {
	n := l.n
	var others []storedRecord
	for h, entry := range l.verified {
		if entry {
			continue
		}
		switch sealed, err := n.store.sealed(ctx, h); {
		case errors.Is(err, datastore.ErrNotFound):
			// Gone since the checkpoint: removed as refused.
		case err != nil:
			return nil, nil, 0, err
		default:
			others = append(others, storedRecord{hash: h, sealed: sealed})
		}
	}
	stored = len(others)
	waiting = l.pass(ctx, others)
	// With every key the other records carry.
	n.adoptKeys()
	kr := n.keyringSnapshot()

	var unlisted []storedRecord
	in := make(chan []storedRecord, 4)
	var readErr error
	var reading sync.WaitGroup
	reading.Go(func() {
		defer close(in)
		var chunk []storedRecord
		readErr = n.store.each(ctx, func(it storedRecord) {
			entry, listed := l.verified[it.hash]
			switch {
			case !listed:
				unlisted = append(unlisted, it)
			case entry:
				stored++
				if chunk = append(chunk, it); len(chunk) == openChunk {
					in <- chunk
					chunk = nil
				}
			}
		}, func(k datastore.Key) { bad = append(bad, k) })
		if len(chunk) > 0 {
			in <- chunk
		}
	})
	// Every record read into chunks is an entry the checkpoint lists
	// under the key it is stored under: what the checkpoint vouches for
	// it is known without a second look-up, once it hashes to that key.
	listedEntry := directory.VouchedSignatures
	if l.fieldsChecked {
		listedEntry = directory.VouchedAll
	}
	vouch := func(key, h directory.Hash) directory.Vouched {
		if h == key {
			return listedEntry
		}
		return l.vouch(h)
	}
	workers := runtime.GOMAXPROCS(0)
	openInOrder(in, n.cfg.Network, kr, vouch, workers, func(items []storedRecord, res []openResult) {
		recs, w := l.classify(ctx, items, res, kr)
		waiting = append(waiting, w...)
		l.apply(recs)
	})
	reading.Wait()
	if readErr != nil {
		return nil, nil, 0, readErr
	}
	stored += len(unlisted)
	return append(waiting, l.pass(ctx, unlisted)...), bad, stored, nil
}

// classify takes what opened and what waits for a key out of res, and
// notes what must go.
func (l *loader) classify(ctx context.Context, items []storedRecord, res []openResult, kr directory.Keyring) (recs []openedRecord, waiting []storedRecord) {
	n := l.n
	for i, it := range items {
		r, err := res[i].r, res[i].err
		switch {
		case errors.Is(err, directory.ErrNoKey):
			// Not decrypted: it.sealed is intact for the next pass.
			waiting = append(waiting, it)
		case errors.Is(err, directory.ErrUnknownVersion):
			// OpenVerified decrypted it.sealed in place: read again.
			sealed, gerr := n.store.sealed(ctx, it.hash)
			if gerr != nil {
				n.log.Warn("stored record of another version not read again; kept for the next start", "key", it.hash.Short(), "err", gerr)
				continue
			}
			r, err := directory.OpenInterim(sealed, n.cfg.Network, kr)
			switch {
			case err == nil:
				e, _ := r.OpenedUnder()
				recs = append(recs, openedRecord{r: r, hash: r.Hash(), epoch: e, was: it.hash})
			case errors.Is(err, directory.ErrUnknownVersion):
				// Written by another protocol version: not corrupt,
				// and not this node's to delete (PROTOCOL.md §10).
				l.legacy++
			default:
				n.log.Warn("removing a corrupt stored record", "key", it.hash.Short(), "err", err)
				l.remove = append(l.remove, it.hash)
			}
		case err != nil || res[i].hash != it.hash:
			// res[i].hash is that of the bytes, which is the record's
			// (they were checked to be canonical, or are what the
			// checkpoint vouches for): no re-encoding to hash it.
			n.log.Warn("removing a corrupt stored record", "key", it.hash.Short(), "err", err)
			l.remove = append(l.remove, it.hash)
		default:
			e, _ := r.OpenedUnder()
			recs = append(recs, openedRecord{r: r, hash: it.hash, epoch: e})
			if res[i].vouched {
				l.vouched++
			}
		}
	}
	return recs, waiting
}

// apply applies recs in ApplyRank order, then again what was refused for a
// reason that may pass, as long as that takes more: a self-revocation is
// taken only once the state knows its key, and a reader's is applied
// before the grant that shows it (ApplyRank). Kept aside for the next
// start, it left the key reading after every restart.
func (l *loader) apply(recs []openedRecord) {
	slices.SortStableFunc(recs, func(a, b openedRecord) int { return directory.ApplyRank(a.r.Type) - directory.ApplyRank(b.r.Type) })
	for {
		again, taken := l.applyOnce(recs, false)
		if len(again) == 0 || taken == 0 {
			l.applyOnce(again, true)
			return
		}
		recs = again
	}
}

// applyOnce applies recs in order, and returns those refused for a reason
// that may pass (logged only if last) and how many it took.
func (l *loader) applyOnce(recs []openedRecord, last bool) (again []openedRecord, taken int) {
	n := l.n
	for _, o := range recs {
		a, err := n.state.Apply(o.r)
		switch {
		case err == nil:
			taken++
			if o.was != (directory.Hash{}) {
				l.rewrite = append(l.rewrite, pending{r: o.r, hash: o.hash})
				l.interimKeys = append(l.interimKeys, o.was)
			} else {
				n.stored[o.hash] = o.epoch
			}
			if a.Changed && o.r.Type != directory.TypeEntry {
				n.adoptKeys()
			}
		case errors.Is(err, directory.ErrDuplicate):
			if o.was != (directory.Hash{}) {
				// Stored again already, by a start that stopped
				// before the old copy went.
				l.remove = append(l.remove, o.was)
			}
		case errors.Is(err, directory.ErrFromFuture):
			// The clock may have gone back; keep it for the next start.
			n.log.Warn("stored record dated in the future kept aside", "record", o.hash.Short())
		case errors.Is(err, directory.ErrQuota), errors.Is(err, directory.ErrPendingSignature), errors.Is(err, directory.ErrUnknownCharter):
			// Refused for a reason that may pass: kept for the next
			// start, and offered to nobody meanwhile.
			if !last && !errors.Is(err, directory.ErrQuota) {
				again = append(again, o)
				continue
			}
			n.log.Warn("stored record kept aside", "record", o.hash.Short(), "err", err)
		default:
			if o.was != (directory.Hash{}) {
				l.remove = append(l.remove, o.was)
			} else {
				l.remove = append(l.remove, o.hash)
			}
		}
	}
	return again, taken
}

type openResult struct {
	r   *directory.Record
	err error
	// hash is what the sealed record's bytes hash to (zero if it could
	// not be decrypted), vouched whether the checkpoint listed it.
	hash    directory.Hash
	vouched bool
}

// openChunk is how many records an opening worker takes at a time.
const openChunk = 256

// chunks sends items on a channel, openChunk at a time.
func chunks(items []storedRecord) <-chan []storedRecord {
	out := make(chan []storedRecord, (len(items)+openChunk-1)/openChunk)
	for lo := 0; lo < len(items); lo += openChunk {
		out <- items[lo:min(lo+openChunk, len(items))]
	}
	close(out)
	return out
}

// openInOrder opens the chunks of stored records it receives on workers
// goroutines, and calls then with each chunk and its results on the
// calling goroutine, in the order received, as soon as that chunk is
// open: the caller applies what is open while the rest opens. Opening and
// decoding (and verifying what the checkpoint does not vouch for) need
// nothing shared, and they are most of a start's work. vouch says what the
// checkpoint vouches for of a record stored under key whose bytes hash to h.
func openInOrder(in <-chan []storedRecord, net directory.NetworkID, kr directory.Keyring, vouch func(key, h directory.Hash) directory.Vouched, workers int, then func([]storedRecord, []openResult)) {
	type job struct {
		items []storedRecord
		res   []openResult
		done  chan struct{}
	}
	jobs := make(chan *job, 2*workers)
	ordered := make(chan *job, 64) // bounds what is held open but not applied
	go func() {
		for items := range in {
			j := &job{items: items, res: make([]openResult, len(items)), done: make(chan struct{})}
			ordered <- j
			jobs <- j
		}
		close(jobs)
		close(ordered)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				for i := range j.items {
					o, key := &j.res[i], j.items[i].hash
					o.r, o.err = directory.OpenVerified(j.items[i].sealed, net, kr, func(h directory.Hash) directory.Vouched {
						v := vouch(key, h)
						o.hash, o.vouched = h, v != directory.VouchedNothing
						return v
					})
				}
				close(j.done)
			}
		})
	}
	for j := range ordered {
		<-j.done
		then(j.items, j.res)
	}
	wg.Wait()
}
