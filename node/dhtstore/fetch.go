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

// PublishManifest puts signer's manifest listing slots: pages of
// directory.ManifestPageSize slots, each a record signed by signer, all with
// one Issued time newer than any manifest this store published for signer
// before (so the new pages replace the old ones in the DHT). The pages are
// kept for the republish loop. A node that joins with only an invite reads
// these to learn which slots exist.
func (s *Store) PublishManifest(ctx context.Context, signer *directory.Identity, slots []directory.SlotID) error {
	pages, err := s.buildManifest(signer, slots)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.manifests[signer.Public()] = pages
	s.mu.Unlock()
	errs := make([]error, len(pages))
	s.forEach(ctx, len(pages), func(ctx context.Context, i int) {
		errs[i] = s.Put(ctx, pages[i])
	})
	return errors.Join(errs...)
}

func (s *Store) buildManifest(signer *directory.Identity, slots []directory.SlotID) ([]*directory.Record, error) {
	n := max(1, (len(slots)+directory.ManifestPageSize-1)/directory.ManifestPageSize)
	if n > maxManifestPages {
		return nil, fmt.Errorf("dhtstore: manifest of %d slots needs %d pages, limit %d", len(slots), n, maxManifestPages)
	}
	pub := signer.Public()
	issued := s.opts.Now().Unix()
	s.mu.Lock()
	// Better orders manifests by Issued alone and breaks ties by hash, so
	// two publications in one second could leave the older one in place.
	if last := s.issued[pub]; issued <= last {
		issued = last + 1
	}
	s.issued[pub] = issued
	s.mu.Unlock()
	pages := make([]*directory.Record, n)
	for i := range pages {
		lo := i * directory.ManifestPageSize
		hi := min(lo+directory.ManifestPageSize, len(slots))
		m := &directory.Manifest{Page: uint32(i), Pages: uint32(n), Issued: issued, Slots: slices.Clone(slots[lo:hi])}
		r, err := directory.NewRecord(s.opts.Network, m, signer)
		if err != nil {
			return nil, fmt.Errorf("dhtstore: manifest page %d: %w", i, err)
		}
		pages[i] = r
	}
	return pages, nil
}

// manifestSlots reads signer's manifest pages and returns the slots listed.
// A page that is missing or signed by someone else is skipped: a manifest is
// a hint, and a partial list is better than none.
func (s *Store) manifestSlots(ctx context.Context, signer directory.PublicKey) ([]directory.SlotID, error) {
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
	var out []directory.SlotID
	for _, m := range pages {
		if m != nil {
			out = append(out, m.Slots...)
		}
	}
	return out, nil
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

// Fetch reads each signer's manifest, then every slot listed, with at most
// FetchConcurrency requests at once, each bounded by RequestTimeout, and the
// whole call by FetchTimeout. It returns the records found, manifests not
// included, in no particular order; the caller validates them through
// State.Apply. A slot that is not found is skipped. With an empty routing
// table it fails with ErrNoPeers rather than report an empty directory. If the deadline or ctx
// ends the fetch, it returns what it found with that error.
func (s *Store) Fetch(ctx context.Context, signers []directory.PublicKey) ([]*directory.Record, error) {
	if s.dht.RoutingTable().Size() == 0 {
		return nil, fmt.Errorf("dhtstore: fetch: %w", ErrNoPeers)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	defer cancel()

	var mu sync.Mutex
	seen := map[directory.SlotID]bool{}
	var slots []directory.SlotID
	signers = uniqueKeys(signers)
	s.forEach(ctx, len(signers), func(ctx context.Context, i int) {
		ids, err := s.manifestSlots(ctx, signers[i])
		if err != nil {
			s.log.Debug("no manifest", "signer", signers[i].String(), "err", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				slots = append(slots, id)
			}
		}
	})
	recs := s.fetchSlots(ctx, slots)
	if err := ctx.Err(); err != nil {
		return recs, fmt.Errorf("dhtstore: fetch stopped after %d of %d slots: %w", len(recs), len(slots), err)
	}
	return recs, nil
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
		recs, err := s.Fetch(ctx, signers)
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
