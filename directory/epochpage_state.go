package directory

import (
	"cmp"
	"fmt"
	"slices"
)

// heldPage is one page body the pool holds, with every record carrying it
// (the same page relayed under different signatures) by signer.
type heldPage struct {
	number   uint64
	rotation [16]byte
	index    uint16
	// page is the decoded body (its packages are slices of the record's
	// body), nil once retired: then body reads one of records again.
	page    *EpochPage
	records map[Hash]PublicKey
}

// RecordLoader reads a record the state holds but keeps out of memory
// (RetirePages) from where its owner stored it: the record whose hash is
// h, checked as when it arrived (opened, its signatures verified).
type RecordLoader func(h Hash) (*Record, error)

// SetRecordLoader lets the state keep the pages of past rotations out of
// memory (RetirePages), reading them with load when they are asked for.
// Without one, every page stays in memory. load must not call the state.
func (s *State) SetRecordLoader(load RecordLoader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load = load
}

// PagesToRetire lists the page records RetirePages would drop from
// memory now: those of the rotations older than the current epoch still
// in memory. Without a loader, none.
func (s *State) PagesToRetire() []Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Hash
	s.eachRetirable(func(hp *heldPage) {
		for h := range hp.records {
			if s.records[h] != nil {
				out = append(out, h)
			}
		}
	})
	return out
}

func (s *State) eachRetirable(f func(*heldPage)) {
	if s.load == nil || len(s.epochs) == 0 {
		return
	}
	current := s.epochs[len(s.epochs)-1].body.(*Epoch).Number
	for _, hp := range s.pages {
		if hp.number < current && (hp.page != nil || s.anyInMemory(hp)) {
			f(hp)
		}
	}
}

// anyInMemory reports whether a record of hp is held in memory: a copy of
// a retired page that another steward relayed afterwards.
func (s *State) anyInMemory(hp *heldPage) bool {
	for h := range hp.records {
		if s.records[h] != nil {
			return true
		}
	}
	return false
}

// RetirePages drops from memory the pages of the rotations older than the
// current epoch whose every record stored says the loader can read, and
// returns how many page records it dropped. They stay held: listed,
// counted, offered and served as before, each read again through the
// loader when someone asks for it. A 10,000-recipient rotation is about
// 12.5 MB of pages: before this, every rotation a node ever took stayed in
// its memory for good, and insiders revoking one key after another made
// every node hold one more each time. Without a loader it does nothing.
// stored is called with the state locked: it must not call the state.
func (s *State) RetirePages(stored func(Hash) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	s.eachRetirable(func(hp *heldPage) {
		for h := range hp.records {
			if s.records[h] != nil && !stored(h) {
				return // a record only in memory: its page stays there too
			}
		}
		hp.page = nil
		for h := range hp.records {
			if s.records[h] != nil {
				s.records[h] = nil
				n++
			}
		}
	})
	return n
}

// RetiredPages is how many page records the state holds on disk only.
func (s *State) RetiredPages() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, hp := range s.pages {
		for h := range hp.records {
			if s.records[h] == nil {
				n++
			}
		}
	}
	return n
}

// loadRetired reads the retired page record h through the loader; it
// reports false if the loader fails or reads something else.
func (s *State) loadRetired(h Hash) (*Record, bool) {
	if s.load == nil {
		return nil, false
	}
	r, err := s.load(h)
	if err != nil || r == nil || r.Type != TypeEpochPage || r.Hash() != h {
		return nil, false
	}
	return r, true
}

// body is hp's page, read again through the loader if it was retired; nil
// if no record of it can be read.
func (s *State) body(hp *heldPage) *EpochPage {
	if hp.page != nil {
		return hp.page
	}
	for h := range hp.records {
		r, ok := s.records[h], true
		if r == nil { // not a copy relayed since it was retired
			r, ok = s.loadRetired(h)
		}
		if !ok {
			continue
		}
		if b, err := r.DecodeBody(); err == nil {
			if pg, ok := b.(*EpochPage); ok && pg.Number == hp.number && pg.Rotation == hp.rotation {
				return pg
			}
		}
	}
	return nil
}

// retiredSignedBy reads the retired page records pub signed.
func (s *State) retiredSignedBy(pub PublicKey) []*Record {
	var out []*Record
	for _, hp := range s.pages {
		if hp.page != nil {
			continue
		}
		for h, signer := range hp.records {
			if signer != pub || s.records[h] != nil {
				continue // another's, or in memory (SignedBy has it)
			}
			if r, ok := s.loadRetired(h); ok {
				out = append(out, r)
			}
		}
	}
	return out
}

// addPage applies an EpochPage. A page's authority is the epoch that
// lists it, not the standing of the steward who relays it: a page is held
// when an epoch proposal of its number and rotation, not waiting for its
// charter, lists its hash at its index. Its one signer must be a steward
// named by the charter version that epoch cites (a fixed list, so the
// copies of one page stay bounded by the stewards, and throwaway keys
// cannot multiply them), but a revocation of that steward, before or after
// the page arrives, changes nothing: the page hash is all the epoch
// vouches for, so any holder may serve the same page, and a rotation
// whose relayer is revoked later does not lose its pages. Whether a page
// is held is a function of the pool: a page whose epoch has not arrived
// is refused for a passing reason and taken at a later sync.
func (s *State) addPage(r *Record, h Hash, pg *EpochPage) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "an epoch page has one signer, the steward who relays it")
	}
	ph := PageHash(r.Body)
	var matches []*proposal
	waiting := false
	for _, p := range s.governance[TypeEpoch] {
		e := p.body.(*Epoch)
		if e.Number != pg.Number || e.Rotation != pg.Rotation {
			continue
		}
		if _, w := s.waiting[p.id]; w {
			waiting = true
			continue
		}
		matches = append(matches, p)
	}
	if len(matches) == 0 {
		if waiting {
			return false, reject(r.Type, ErrUnknownCharter, "the epoch %d proposal of rotation %x cites a charter not known yet", pg.Number, pg.Rotation[:4])
		}
		return false, reject(r.Type, ErrPendingSignature, "no epoch %d proposal with rotation %x is known: nobody with standing proposed it, or it has not arrived yet", pg.Number, pg.Rotation[:4])
	}
	var listed *proposal
	var mismatch *proposal
	for _, p := range matches {
		e := p.body.(*Epoch)
		if int(pg.Index) >= len(e.PageHashes) {
			continue
		}
		if e.PageHashes[pg.Index] == ph {
			listed = p
			break
		}
		mismatch = p
	}
	switch {
	case listed == nil && mismatch == nil:
		return false, reject(r.Type, ErrInvalid, "page %d of epoch %d rotation %x, which has %d pages", pg.Index, pg.Number, pg.Rotation[:4], len(matches[0].body.(*Epoch).PageHashes))
	case listed == nil:
		// The page's own slot holds another body than the approved
		// epoch lists. Signed by one who signed that epoch, it is the
		// same key saying two things: equivocation for stewards to see.
		e := mismatch.body.(*Epoch)
		signer := r.Sigs[0].Key
		// A revoked key's equivocations are settled (revokeKey), so one
		// shown after its revocation is not noted either.
		if _, revoked := s.revoked[signer]; mismatch.sigs[signer] && !revoked {
			s.noteEquivocation(signer, pageSlot(pg), e.PageHashes[pg.Index], ph)
			s.changed = true
		}
		return s.changed, reject(r.Type, ErrPageMismatch, "page %d of epoch %d rotation %x hashes to %s, the epoch lists %s", pg.Index, pg.Number, pg.Rotation[:4], ph.Short(), e.PageHashes[pg.Index].Short())
	}
	signer := r.Sigs[0].Key
	if cs := s.linked[listed.body.(*Epoch).Charter]; !slices.ContainsFunc(cs, func(c *Charter) bool { return c.isSteward(signer) }) {
		// Passing: a fork of the cited version that names the signer
		// may still be linked.
		return false, reject(r.Type, ErrPendingSignature, "page signer %s is not a steward of charter version %d", Fingerprint(signer), listed.body.(*Epoch).Charter)
	}
	hp := s.pages[ph]
	fresh := hp == nil
	if fresh {
		hp = &heldPage{number: pg.Number, rotation: pg.Rotation, index: pg.Index, page: pg, records: map[Hash]PublicKey{}}
		s.pages[ph] = hp
	}
	hp.records[h] = signer
	s.records[h] = r
	if !fresh {
		return false, nil
	}
	// A rotation one steward signed takes effect only once every page is
	// held (epochValid): the last page may make it effective.
	for _, p := range matches {
		if e := p.body.(*Epoch); s.heldPageCount(e) == len(e.PageHashes) && !s.isEffective(p) {
			return s.recompute(), nil
		}
	}
	return s.effectiveLists(ph, pg), nil
}

func (s *State) isEffective(p *proposal) bool {
	n := p.body.(*Epoch).Number
	return n <= uint64(len(s.epochs)) && s.epochs[n-1] == p
}

// completeWithout reports whether every page of e, the body of proposal
// id, is held and none seals to k: what a rotation one steward signs after
// a revocation must show before it takes effect. Once every page is held
// the answer cannot change (pages are never dropped), and recompute asks
// on every governance record: it is remembered, so retired pages are not
// read again each time.
func (s *State) completeWithout(id Hash, e *Epoch, k PublicKey) bool {
	if ok, settled := s.sealsNot[id]; settled {
		return ok
	}
	if s.heldPageCount(e) != len(e.PageHashes) {
		return false // no page read for nothing
	}
	pages := s.pagesOf(e)
	if len(pages) != len(e.PageHashes) {
		return false // a retired page that could not be read: asked again later
	}
	_, found := FindPackage(s.net, e, pages, k)
	s.sealsNot[id] = !found
	return !found
}

// effectiveLists reports whether an effective epoch lists page body ph.
func (s *State) effectiveLists(ph Hash, pg *EpochPage) bool {
	if pg.Number == 0 || pg.Number > uint64(len(s.epochs)) {
		return false
	}
	e := s.epochs[pg.Number-1].body.(*Epoch)
	return e.Rotation == pg.Rotation && int(pg.Index) < len(e.PageHashes) && e.PageHashes[pg.Index] == ph
}

func pageSlot(pg *EpochPage) string { return pageSlotOf(pg.Number, pg.Rotation, pg.Index) }

func pageSlotOf(number uint64, rotation [16]byte, index uint16) string {
	return fmt.Sprintf("epoch/%d/%x/%d", number, rotation[:], index)
}

// pagesOf returns the held pages of e, by index, reading retired ones
// again.
func (s *State) pagesOf(e *Epoch) []*EpochPage {
	var out []*EpochPage
	for _, ph := range e.PageHashes {
		if hp := s.heldPageOf(e, ph); hp != nil {
			if pg := s.body(hp); pg != nil {
				out = append(out, pg)
			}
		}
	}
	return out
}

// heldPageOf is the held page of e whose body hashes to ph, or nil.
func (s *State) heldPageOf(e *Epoch, ph Hash) *heldPage {
	if hp := s.pages[ph]; hp != nil && hp.number == e.Number && hp.rotation == e.Rotation {
		return hp
	}
	return nil
}

// heldPageCount is how many pages of e are held, read or not.
func (s *State) heldPageCount(e *Epoch) int {
	n := 0
	for _, ph := range e.PageHashes {
		if s.heldPageOf(e, ph) != nil {
			n++
		}
	}
	return n
}

// EpochPages returns the pages of rotation e the pool holds, in index
// order; fewer than len(e.PageHashes) while the rotation is arriving.
func (s *State) EpochPages(e *Epoch) []*EpochPage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pagesOf(e)
}

// HasPackage reports whether k has a package among the held pages of e.
func (s *State) HasPackage(e *Epoch, k PublicKey) bool {
	_, ok := FindPackage(s.net, e, s.EpochPages(e), k)
	return ok
}

// Rotation is how far the current epoch's pages have arrived: what status
// displays show as a rotation in progress.
type Rotation struct {
	Epoch uint64 `json:"epoch"`
	Pages int    `json:"pages"`
	Held  int    `json:"pages_held"`
}

// Complete reports whether every page of the rotation is held.
func (r Rotation) Complete() bool { return r.Held == r.Pages }

// CurrentRotation reports the pages of the newest effective epoch.
func (s *State) CurrentRotation() (Rotation, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.epochs) == 0 {
		return Rotation{}, false
	}
	e := s.epochs[len(s.epochs)-1].body.(*Epoch)
	return Rotation{Epoch: e.Number, Pages: len(e.PageHashes), Held: s.heldPageCount(e)}, true
}

// pageDigest is the part of the view digest pages add: for each effective
// epoch, which of its pages are held.
func (s *State) pageDigest(line func(...[]byte)) {
	for _, p := range s.epochs {
		e := p.body.(*Epoch)
		held := make([]byte, 0, len(e.PageHashes))
		for _, ph := range e.PageHashes {
			if _, ok := s.pages[ph]; ok {
				held = append(held, 1)
			} else {
				held = append(held, 0)
			}
		}
		line([]byte("pages"), p.id[:], held)
	}
}

// MissingPages names a rotation whose pages the pool does not all hold.
type MissingPages struct {
	Number   uint64
	Rotation [16]byte
	Missing  int // pages listed and not held
}

// IncompleteRotations lists the epoch proposals numbered at or above the
// current effective epoch (the effective one itself, and proposals
// newer than it, approved or not, not waiting for their charter) that
// list pages the pool does not hold, newest first: what a node fetches
// from its peers at once instead of waiting for the next sync round.
// Older rotations are not listed: a node that catches up takes their
// pages in its ordinary sync sessions.
func (s *State) IncompleteRotations() []MissingPages {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var current uint64
	if len(s.epochs) > 0 {
		current = s.epochs[len(s.epochs)-1].body.(*Epoch).Number
	}
	var out []MissingPages
	for _, p := range s.governance[TypeEpoch] {
		e := p.body.(*Epoch)
		if e.Number < current {
			continue
		}
		if held := s.heldPageCount(e); held < len(e.PageHashes) {
			out = append(out, MissingPages{Number: e.Number, Rotation: e.Rotation, Missing: len(e.PageHashes) - held})
		}
	}
	slices.SortFunc(out, func(a, b MissingPages) int { return cmp.Compare(b.Number, a.Number) })
	return out
}

// PageRecords returns the hashes of the page records the pool holds for
// rotation of epoch number, at most limit of them: what a peer asking
// for that rotation's missing pages is offered.
func (s *State) PageRecords(number uint64, rotation [16]byte, limit int) []Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Hash
	seen := map[Hash]bool{} // two proposals of one rotation may list one page
	for _, p := range s.governance[TypeEpoch] {
		e := p.body.(*Epoch)
		if e.Number != number || e.Rotation != rotation {
			continue
		}
		for _, ph := range e.PageHashes {
			hp := s.heldPageOf(e, ph)
			if hp == nil || seen[ph] {
				continue
			}
			seen[ph] = true
			for h := range hp.records {
				if len(out) == limit {
					return out
				}
				out = append(out, h)
			}
		}
	}
	return out
}
