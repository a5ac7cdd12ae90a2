package directory

import (
	"bytes"
	"fmt"
	"slices"
)

// Per-author limits. One admitted member can otherwise make every node
// store and index as many entries as it likes, for as long as they live.
//
// The limits on live entries and bytes are a state rule, so they must keep
// the state a function of the set of records: which entries count is
// decided by the set alone. An author's live entry slots (tombstones
// included, until they expire) are ranked by SlotID, and the kept set is
// the longest prefix of that ranking within both limits. Only the author
// can move its own entries in that ranking, so no one can push another
// organization's entries out. Entries beyond the prefix stay in the pool,
// counted against the pending quotas, invisible and out of the digest; they
// come back into view when the author's set shrinks (an entry deleted,
// shrunk or expired). Refusing them instead would make the result depend
// on whether the shrinking version arrived before or after them.
//
// The limit on updates per hour is not a state rule (it depends on when
// versions arrive) but a forwarding rule nodes apply in gossip validation;
// see node/authorrate.go.

// ErrAuthorLimit refuses an entry that would put its author beyond the
// charter's per-author limits with no room left in the pending pool.
var ErrAuthorLimit = fmt.Errorf("%w: author over the charter's per-author limit", ErrQuota)

// MaxAuthorUpdates is the number of replacing entry versions per author
// per hour that nodes forward.
func (p Policy) MaxAuthorUpdates() int {
	if p.MaxAuthorUpdatesPerHour == 0 {
		return DefaultMaxAuthorUpdatesPerHour
	}
	return int(p.MaxAuthorUpdatesPerHour)
}

// MaxAuthorLiveEntries is the number of live entry slots per author that
// count.
func (p Policy) MaxAuthorLiveEntries() int {
	if p.MaxAuthorEntries == 0 {
		return DefaultMaxAuthorEntries
	}
	return int(p.MaxAuthorEntries)
}

// MaxAuthorLiveBytes is the sum of entry record sizes per author that
// counts.
func (p Policy) MaxAuthorLiveBytes() int {
	if p.MaxAuthorBytes == 0 {
		return DefaultMaxAuthorBytes
	}
	return int(p.MaxAuthorBytes)
}

func (p Policy) checkAuthorLimits() error {
	if v := p.MaxAuthorUpdatesPerHour; v > maxAuthorUpdatesPerHourCap {
		return fmt.Errorf("policy max author updates per hour %d outside 1..%d", v, maxAuthorUpdatesPerHourCap)
	}
	if v := p.MaxAuthorEntries; v > maxAuthorEntriesCap {
		return fmt.Errorf("policy max author entries %d outside 1..%d", v, maxAuthorEntriesCap)
	}
	if v := p.MaxAuthorBytes; v != 0 && (v < minAuthorBytes || v > maxAuthorBytesCap) {
		return fmt.Errorf("policy max author bytes %d outside %d..%d", v, minAuthorBytes, uint64(maxAuthorBytesCap))
	}
	return nil
}

// authorLimits are the two state-rule limits in force.
type authorLimits struct{ entries, bytes int }

func (s *State) authorLimits() authorLimits { return s.policy().authorLimitsOf() }

func (p Policy) authorLimitsOf() authorLimits {
	return authorLimits{p.MaxAuthorLiveEntries(), p.MaxAuthorLiveBytes()}
}

// slotUse is what one live entry slot weighs against its author's limits.
type slotUse struct {
	rank SlotID
	size int
	id   string
}

// keptPrefix returns how many of uses, sorted by rank, fit within the
// limits. uses is sorted in place.
func keptPrefix(uses []slotUse, l authorLimits) int {
	total := 0
	for _, u := range uses {
		total += u.size
	}
	if len(uses) <= l.entries && total <= l.bytes {
		return len(uses) // the common case needs no ranking
	}
	slices.SortFunc(uses, func(a, b slotUse) int { return bytes.Compare(a.rank[:], b.rank[:]) })
	sum := 0
	for i, u := range uses {
		if i >= l.entries || sum+u.size > l.bytes {
			return i
		}
		sum += u.size
	}
	return len(uses)
}

// liveUses lists pub's live slots, with slot id replaced by (or added as)
// the given use when id is not empty.
func (s *State) liveUses(pub PublicKey, repl slotUse) []slotUse {
	var uses []slotUse
	for id, slot := range s.entries[pub] {
		if slot.expired || id == repl.id {
			continue
		}
		uses = append(uses, slotUse{slot.rank, slot.size, id})
	}
	if repl.id != "" {
		uses = append(uses, repl)
	}
	return uses
}

// checkAuthorRoom refuses a new version of slot id, of n bytes, from an
// active member when it would leave more of the author's entries beyond
// the limits than the pending pool takes. It changes nothing.
func (s *State) checkAuthorRoom(t RecordType, pub PublicKey, id string, n int) error {
	l := s.authorLimits()
	uses := s.liveUses(pub, slotUse{SlotIDOf(entrySlotName(pub, id)), n, id})
	over := len(uses) - keptPrefix(uses, l)
	if over == 0 {
		return nil
	}
	others := s.pendingEntriesTotal - s.pendingEntries[pub]
	if over <= MaxPendingEntriesPerKey && others+over <= MaxPendingEntries {
		return nil
	}
	return reject(t, ErrAuthorLimit, "organization %s would have %d live entries of %d bytes beyond what the charter allows (%d entries, %d bytes), and %d already wait", Fingerprint(pub), over, usesBytes(uses), l.entries, l.bytes, s.pendingEntries[pub])
}

func usesBytes(uses []slotUse) int {
	n := 0
	for _, u := range uses {
		n += u.size
	}
	return n
}

// settleAuthor re-derives which of pub's live slots are within the author
// limits, their visibility, and what pub holds in the pending pool: every
// live slot while pub is not an active member, the slots beyond the limits
// while it is.
func (s *State) settleAuthor(pub PublicKey) {
	active := s.activeMember(pub)
	uses := s.liveUses(pub, slotUse{})
	over := map[string]bool{}
	if active {
		keep := keptPrefix(uses, s.authorLimits())
		for _, u := range uses[keep:] {
			over[u.id] = true
		}
	}
	for id, slot := range s.entries[pub] {
		slot.over = over[id]
		s.refreshEntry(pub, slot)
	}
	pending := len(over)
	if !active {
		pending = len(uses)
	}
	s.pendingEntriesTotal += pending - s.pendingEntries[pub]
	if pending == 0 {
		delete(s.pendingEntries, pub)
	} else {
		s.pendingEntries[pub] = pending
	}
}

// settleAuthorLimits re-derives every author when the charter in force
// changed the limits.
func (s *State) settleAuthorLimits() {
	if l := s.authorLimits(); l != s.limitsSettled {
		s.limitsSettled = l
		for pub := range s.entries {
			s.settleAuthor(pub)
		}
	}
}

// AuthorUsage is what an author's live entries weigh against the limits.
type AuthorUsage struct {
	Entries, Bytes       int // live entry slots and their record bytes
	Held                 int // live slots beyond the limits, not shown
	MaxEntries, MaxBytes int
	MaxUpdatesPerHour    int
}

// CheckPublish says whether a new version of entry e, of n encoded bytes,
// from pub would be within the charter's per-author limits: a publishing
// node asks before it signs, so an honest member never has an entry held
// back by the network.
func (s *State) CheckPublish(pub PublicKey, e *Entry, n int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.authorLimits()
	uses := s.liveUses(pub, slotUse{SlotIDOf(entrySlotName(pub, e.ID)), n, e.ID})
	keep := keptPrefix(uses, l)
	if keep == len(uses) {
		return nil
	}
	_, replacing := s.entries[pub][e.ID]
	if replacing && s.entries[pub][e.ID].expired {
		replacing = false
	}
	live := len(uses)
	if !replacing {
		live-- // the count before this one
	}
	if len(uses) > l.entries {
		return reject(TypeEntry, ErrAuthorLimit, "this organization has %d live entries; the network allows %d (delete one, or wait for one to expire)", live, l.entries)
	}
	return reject(TypeEntry, ErrAuthorLimit, "this organization's live entries would take %d bytes; the network allows %d (shorten or delete one)", usesBytes(uses), l.bytes)
}

// Usage reports what pub's live entries weigh against the limits.
func (s *State) Usage(pub PublicKey) AuthorUsage {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.policy()
	u := AuthorUsage{MaxEntries: p.MaxAuthorLiveEntries(), MaxBytes: p.MaxAuthorLiveBytes(), MaxUpdatesPerHour: p.MaxAuthorUpdates()}
	for _, slot := range s.entries[pub] {
		if slot.expired {
			continue
		}
		u.Entries++
		u.Bytes += slot.size
		if slot.over {
			u.Held++
		}
	}
	return u
}

// HeldSeq returns the seq of the version of pub's entry id this state
// holds, if it holds one that has not expired.
func (s *State) HeldSeq(pub PublicKey, id string) (uint64, bool) {
	e, ok := s.HeldEntry(pub, id)
	if !ok {
		return 0, false
	}
	return e.Seq, true
}

// HeldEntry is the live version of pub's entry id this state holds. The
// caller must not modify it.
func (s *State) HeldEntry(pub PublicKey, id string) (*Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot := s.entries[pub][id]
	if slot == nil || slot.expired {
		return nil, false
	}
	return slot.entry, true
}
