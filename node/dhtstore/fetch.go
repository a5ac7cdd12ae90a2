package dhtstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/ceiba-network/ceiba/directory"
)

// maxManifestPages bounds how many pages Fetch reads for one signer, about a
// million slots: a signer's manifest is a hint and must not be able to keep
// a fetching node busy forever.
const maxManifestPages = 256

// ErrNoCharter means FetchAll found no genesis charter in the DHT, so
// nothing it fetched can be validated.
var ErrNoCharter = errors.New("the genesis charter was not found in the DHT")

// ManifestSlot is the slot name of page of signer's manifest. It must match
// what directory.Record.Slot says for a Manifest record; a test holds the
// two together.
func ManifestSlot(signer directory.PublicKey, page uint32) string {
	return fmt.Sprintf("manifest/%s/%d", signer.Hex(), page)
}

// CharterSlot is the slot name of a charter version, as Record.Slot names it.
func CharterSlot(version uint64) string { return fmt.Sprintf("charter/%d", version) }

// PublishManifest puts signer's manifest listing slots, each with the head
// of the record signer holds in it: pages that encode within the current
// charter's max_record_bytes (directory.ManifestSlotsPerPage), each a
// record signed by signer. A page is put again only when what it lists
// changed, with an Issued time newer than any manifest this store
// published for signer before (so it replaces the old page in the DHT): a
// publisher's update of one entry re-puts one page, not all of them. The
// pages are kept for the republish loop. A node that joins with only an
// invite reads these to learn which slots exist; one that holds some
// records reads only the slots whose heads it lacks.
func (s *Store) PublishManifest(ctx context.Context, signer *directory.Identity, slots []directory.SlotHead) error {
	pages, changed, err := s.buildManifest(signer, slots)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.manifests[signer.Public()] = pages
	s.mu.Unlock()
	errs := make([]error, len(changed))
	for i := range errs {
		errs[i] = fmt.Errorf("dhtstore: manifest page %d not put: %w", changed[i], context.Cause(ctx))
	}
	s.forEach(ctx, len(changed), func(ctx context.Context, i int) {
		errs[i] = s.Put(ctx, pages[changed[i]])
	})
	// A page whose put failed is put again by the next publication even if
	// it lists the same slots (the republish loop would only get to it
	// hours later).
	failed := map[int]bool{}
	for i, err := range errs {
		if err != nil {
			failed[changed[i]] = true
		}
	}
	s.mu.Lock()
	s.manifestRetry[signer.Public()] = failed
	s.mu.Unlock()
	return errors.Join(errs...)
}

// buildManifest pages slots and returns every page, and the indexes of the
// pages that differ from the ones last published for signer (all of them
// after a restart).
func (s *Store) buildManifest(signer *directory.Identity, slots []directory.SlotHead) (pages []*directory.Record, changed []int, err error) {
	per := directory.ManifestSlotsPerPage(s.opts.Authority.MaxRecordBytes())
	n := max(1, (len(slots)+per-1)/per)
	if n > maxManifestPages {
		return nil, nil, fmt.Errorf("dhtstore: manifest of %d slots needs %d pages, limit %d", len(slots), n, maxManifestPages)
	}
	pub := signer.Public()
	s.mu.Lock()
	last, retry := s.manifests[pub], s.manifestRetry[pub]
	s.mu.Unlock()
	pages = make([]*directory.Record, n)
	bodies := make([]*directory.Manifest, n)
	for i := range pages {
		part := slots[i*per : min((i+1)*per, len(slots))]
		m := &directory.Manifest{Page: uint32(i), Pages: uint32(n), Slots: make([]directory.SlotID, len(part)), Heads: make([]directory.Head, len(part))}
		for j, sh := range part {
			m.Slots[j], m.Heads[j] = sh.Slot, sh.Head
		}
		if i < len(last) && !retry[i] && sameManifestPage(last[i], m) {
			pages[i] = last[i]
			continue
		}
		bodies[i] = m
		changed = append(changed, i)
	}
	if len(changed) == 0 {
		return pages, nil, nil
	}
	issued := s.opts.Now().Unix()
	s.mu.Lock()
	// Better orders manifests by Issued alone and breaks ties by hash, so
	// two publications in one second could leave the older one in place.
	if last := s.issued[pub]; issued <= last {
		issued = last + 1
	}
	s.issued[pub] = issued
	s.mu.Unlock()
	for _, i := range changed {
		bodies[i].Issued = issued
		if pages[i], err = directory.NewRecord(s.opts.Network, bodies[i], signer); err != nil {
			return nil, nil, fmt.Errorf("dhtstore: manifest page %d: %w", i, err)
		}
	}
	return pages, changed, nil
}

// sameManifestPage reports whether the published page r lists what m does.
func sameManifestPage(r *directory.Record, m *directory.Manifest) bool {
	body, err := r.DecodeBody()
	if err != nil {
		return false
	}
	old, ok := body.(*directory.Manifest)
	return ok && old.Page == m.Page && old.Pages == m.Pages && slices.Equal(old.Slots, m.Slots) && slices.Equal(old.Heads, m.Heads)
}

// manifestSlots reads signer's manifest pages and returns what they list.
// A page that is missing or signed by someone else is skipped: a manifest is
// a hint, and a partial list is better than none. A page without heads
// lists its slots with none (headless).
func (s *Store) manifestSlots(ctx context.Context, signer directory.PublicKey) ([]*directory.Manifest, error) {
	first, err := s.manifestPage(ctx, signer, 0)
	if err != nil {
		return nil, err
	}
	n := min(first.Pages, maxManifestPages)
	pages := make([]*directory.Manifest, n)
	pages[0] = first
	s.forEach(ctx, int(n)-1, func(ctx context.Context, i int) {
		m, err := s.manifestPage(ctx, signer, uint32(i+1))
		if err != nil {
			s.log.Debug("manifest page missing", "signer", signer.String(), "page", i+1, "err", err)
			return
		}
		pages[i+1] = m
	})
	return slices.DeleteFunc(pages, func(m *directory.Manifest) bool { return m == nil }), nil
}

func (s *Store) manifestPage(ctx context.Context, signer directory.PublicKey, page uint32) (*directory.Manifest, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
	defer cancel()
	r, err := s.Get(ctx, directory.SlotIDOf(ManifestSlot(signer, page)))
	if err != nil {
		return nil, err
	}
	// The slot already binds the first signature to signer; a manifest
	// carries exactly one.
	if r.Type != directory.TypeManifest || len(r.Sigs) != 1 || r.Sigs[0].Key != signer {
		return nil, fmt.Errorf("dhtstore: manifest page %d of %s is not a manifest signed by it", page, signer)
	}
	body, err := r.DecodeBody()
	if err != nil {
		return nil, err
	}
	m := body.(*directory.Manifest)
	if m.Page != page {
		return nil, fmt.Errorf("dhtstore: manifest page %d of %s says it is page %d", page, signer, m.Page)
	}
	return m, nil
}

// FetchStats says what one Fetch read.
type FetchStats struct {
	Listed  int // distinct slots the manifests listed
	Skipped int // of them, not read: every head listed for the slot is held
}

// Fetch reads each signer's manifest, then every slot listed, with at most
// FetchConcurrency requests at once, each bounded by RequestTimeout, and the
// whole call by FetchTimeout. A slot is not read when held (if not nil)
// says the caller holds the record of every head the manifests list for
// it; a page without heads has its slots read. It returns the records
// found, manifests not included, in no particular order; the caller
// validates them through State.Apply. A slot that is not found is skipped.
// With an empty routing table it fails with ErrNoPeers rather than report
// an empty directory. If the deadline or ctx ends the fetch, it returns
// what it found with that error.
func (s *Store) Fetch(ctx context.Context, signers []directory.PublicKey, held func(directory.Head) bool) ([]*directory.Record, FetchStats, error) {
	var stats FetchStats
	if s.dht.RoutingTable().Size() == 0 {
		return nil, stats, fmt.Errorf("dhtstore: fetch: %w", ErrNoPeers)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	defer cancel()

	// Whether each listed slot must be read: yes as soon as one listing
	// of it has no head, or names a record the caller lacks. One flag per
	// slot, not its heads: a member's manifest may list a slot any number
	// of times, and keeping (and searching) every head it names would let
	// it make every walking node's work grow with their square.
	var mu sync.Mutex
	read := map[directory.SlotID]bool{}
	var order []directory.SlotID
	signers = uniqueKeys(signers)
	s.forEach(ctx, len(signers), func(ctx context.Context, i int) {
		pages, err := s.manifestSlots(ctx, signers[i])
		if err != nil {
			s.log.Debug("no manifest", "signer", signers[i].String(), "err", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range pages {
			for j, id := range m.Slots {
				lacks := held == nil || m.Heads == nil || !held(m.Heads[j])
				if was, listed := read[id]; !listed {
					order = append(order, id)
					read[id] = lacks
				} else if lacks && !was {
					read[id] = true
				}
			}
		}
	})
	stats.Listed = len(order)
	slots := slices.DeleteFunc(order, func(id directory.SlotID) bool { return !read[id] })
	stats.Skipped = stats.Listed - len(slots)
	recs := s.fetchSlots(ctx, slots)
	if err := ctx.Err(); err != nil {
		return recs, stats, fmt.Errorf("dhtstore: fetch stopped after %d of %d slots: %w", len(recs), len(slots), err)
	}
	return recs, stats, nil
}

func (s *Store) fetchSlots(ctx context.Context, slots []directory.SlotID) []*directory.Record {
	found := make([]*directory.Record, len(slots))
	s.forEach(ctx, len(slots), func(ctx context.Context, i int) {
		rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
		defer cancel()
		r, err := s.Get(rctx, slots[i])
		if err != nil {
			s.log.Debug("slot not fetched", "slot", fmt.Sprintf("%x", slots[i][:6]), "err", err)
			return
		}
		if r.Type != directory.TypeManifest {
			found[i] = r
		}
	})
	return slices.DeleteFunc(found, func(r *directory.Record) bool { return r == nil })
}

// FetchAll fills st from the DHT alone, starting from an invite: the
// genesis charter ("charter/1") and any later charter versions, then the
// manifests of seedSigners and the charter's stewards, then those of every
// member the state admits, round after round until no new signer appears.
// If the keyring's current epoch changes meanwhile (the caller opened a key
// package from a fetched epoch record), everything is fetched again under
// the new keys. It returns how many records st accepted.
func (s *Store) FetchAll(ctx context.Context, st *directory.State, seedSigners []directory.PublicKey) (applied int, err error) {
	if s.dht.RoutingTable().Size() == 0 {
		// Without peers every lookup comes back empty, which would read as
		// "no charter in the DHT".
		return 0, fmt.Errorf("dhtstore: fetch all: %w", ErrNoPeers)
	}
	apply := func(recs []*directory.Record) {
		// The state does not depend on order, but applying governance
		// before what it governs avoids pooling records that would only
		// wait for their authority to arrive.
		slices.SortStableFunc(recs, func(a, b *directory.Record) int { return applyRank(a.Type) - applyRank(b.Type) })
		for _, r := range recs {
			if _, err := st.Apply(r); err == nil {
				applied++
			} else if !errors.Is(err, directory.ErrDuplicate) {
				s.log.Debug("fetched record refused", "type", r.Type.String(), "err", err)
			}
		}
	}
	fetchCharters := func() error {
		for v := charterVersion(st) + 1; ; v++ {
			rctx, cancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
			r, err := s.Get(rctx, directory.SlotIDOf(CharterSlot(v)))
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// Not found, or the lookup ran out of its own time: either
				// way there is no later charter to be had now.
				if !errors.Is(err, ErrNotFound) {
					s.log.Debug("charter lookup failed", "version", v, "err", err)
				}
				return nil
			}
			apply([]*directory.Record{r})
			if charterVersion(st) < v {
				return nil // found but not effective (yet): stop probing
			}
		}
	}

	epoch, _, _ := s.opts.Keyring().Current()
	done := map[directory.PublicKey]bool{}
	if err := fetchCharters(); err != nil {
		return applied, err
	}
	for {
		if e, _, _ := s.opts.Keyring().Current(); e != epoch {
			epoch = e
			clear(done)
			if err := fetchCharters(); err != nil {
				return applied, err
			}
		}
		var signers []directory.PublicKey
		for _, k := range candidates(st, seedSigners) {
			if !done[k] {
				signers = append(signers, k)
				done[k] = true
			}
		}
		if len(signers) == 0 {
			break
		}
		chain := charterVersion(st)
		recs, _, err := s.Fetch(ctx, signers, HeldIn(st))
		apply(recs)
		if err != nil {
			return applied, err
		}
		if charterVersion(st) != chain {
			if err := fetchCharters(); err != nil {
				return applied, err
			}
		}
	}
	if st.Charter() == nil {
		return applied, fmt.Errorf("dhtstore: fetch all: %w", ErrNoCharter)
	}
	return applied, nil
}

// HeldIn answers Fetch's question from the records st holds, read at the
// first question: a fetch's manifests are read before its slots.
func HeldIn(st *directory.State) func(directory.Head) bool {
	var once sync.Once
	var heads map[directory.Head]struct{}
	return func(h directory.Head) bool {
		once.Do(func() {
			hashes := st.Hashes()
			heads = make(map[directory.Head]struct{}, len(hashes))
			for _, x := range hashes {
				heads[directory.HeadOf(x)] = struct{}{}
			}
		})
		_, ok := heads[h]
		return ok
	}
}

// charterVersion is the version of st's current charter, 0 before genesis.
func charterVersion(st *directory.State) uint64 {
	if c := st.Charter(); c != nil {
		return c.Version
	}
	return 0
}

// candidates are the keys whose manifests describe the directory: the
// seed, the current charter's stewards and the admitted members.
func candidates(st *directory.State, seed []directory.PublicKey) []directory.PublicKey {
	out := slices.Clone(seed)
	if c := st.Charter(); c != nil {
		out = append(out, c.StewardKeys()...)
	}
	for _, m := range st.Members() {
		out = append(out, m.Key)
	}
	return uniqueKeys(out)
}

func applyRank(t directory.RecordType) int {
	switch t {
	case directory.TypeCharter:
		return 0
	case directory.TypeRevocation:
		return 1
	case directory.TypeMembership, directory.TypeEpoch:
		return 2
	case directory.TypeApproval:
		return 3
	case directory.TypeReader, directory.TypeEpochPage:
		return 4
	}
	return 5
}

func uniqueKeys(ks []directory.PublicKey) []directory.PublicKey {
	seen := map[directory.PublicKey]bool{}
	return slices.DeleteFunc(slices.Clone(ks), func(k directory.PublicKey) bool {
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	})
}

// forEach runs f for 0..n-1 with at most FetchConcurrency at once, and stops
// starting new ones when ctx ends.
func (s *Store) forEach(ctx context.Context, n int, f func(ctx context.Context, i int)) {
	sem := make(chan struct{}, s.opts.FetchConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			f(ctx, i)
		})
	}
	wg.Wait()
}
