package directory

import (
	"bytes"
	"fmt"
	"slices"
	"time"
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

// authorLimits are the state-rule limits in force on entries: the two
// per-author limits, and the charter's max_record_bytes and
// max_entry_lifetime, which decide whether an entry can be shown at all.
type authorLimits struct {
	entries, bytes int
	recordBytes    int
	lifetime       time.Duration
}

func (s *State) authorLimits() authorLimits { return s.policy().authorLimitsOf() }

func (p Policy) authorLimitsOf() authorLimits {
	return authorLimits{p.MaxAuthorLiveEntries(), p.MaxAuthorLiveBytes(), p.maxRecordBytes(), p.maxEntryLifetime()}
}

// Policy limits on one entry. Nodes accept an entry against the
// protocol's hard limits only (MaxRecordBytes, the date range), and show it
// only while it fits the current charter's max_record_bytes and
// max_entry_lifetime. Refusing it instead would make the state depend on
// whether an amendment lowering a limit arrived before or after the entry;
// visibility is re-derived from the set whenever the charter changes. An
// entry outside the policy is held like one beyond the per-author limits:
// in the pool, counted against the pending quotas, out of the index and
// the digest, and shown again if an amendment raises the limit.

// outsidePolicy says why an entry of n encoded bytes may not be shown
// under l, or "" if it may.
func (l authorLimits) outsidePolicy(issued, expires int64, n int) string {
	if n > l.recordBytes {
		return fmt.Sprintf("the entry takes %d bytes; the network's charter allows %d", n, l.recordBytes)
	}
	if life := entryLife(issued, expires); life > l.lifetime {
		return fmt.Sprintf("the entry lives %s from its issue date; the network's charter allows %s", days(life), days(l.lifetime))
	}
	return ""
}

// days says d in days, as organizations set an entry's expiry.
func days(d time.Duration) string {
	return fmt.Sprintf("%.4g days", d.Hours()/24)
}

// entryLife is how long an entry issued and expiring at these times lives.
// Both dates are within the protocol's range (Entry.check), so this cannot
// overflow.
func entryLife(issued, expires int64) time.Duration {
	return time.Duration(expires-issued) * time.Second
}

// slotUse is what one live entry slot weighs against its author's limits.
type slotUse struct {
	rank SlotID
	size int
	id   string
	// outside says the entry is beyond the charter's per-entry limits:
	// held whatever the author's other entries weigh.
	outside bool
}

// heldUses returns those of uses that are not shown: every one outside
// the charter's per-entry limits, then those of the rest that lie beyond
// the longest prefix, by rank, within the per-author limits. uses is
// reordered in place.
func heldUses(uses []slotUse, l authorLimits) []slotUse {
	in := 0
	for i := range uses {
		if !uses[i].outside {
			uses[in], uses[i] = uses[i], uses[in]
			in++
		}
	}
	keep := keptPrefix(uses[:in], l)
	return append(slices.Clone(uses[in:]), uses[keep:in]...)
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

// liveUses lists pub's live slots weighed under l, with slot id replaced
// by (or added as) the given use when id is not empty.
func (s *State) liveUses(pub PublicKey, l authorLimits, repl slotUse) []slotUse {
	var uses []slotUse
	for id, slot := range s.entries[pub] {
		if slot.expired || id == repl.id {
			continue
		}
		uses = append(uses, slotUse{slot.rank, slot.size, id, l.outsidePolicy(slot.facts.issued, slot.facts.expires, slot.size) != ""})
	}
	if repl.id != "" {
		uses = append(uses, repl)
	}
	return uses
}

// checkAuthorRoom refuses a new version e, of n bytes, from an active
// member when it would leave more of the author's entries held (beyond the
// limits) than the pending pool takes. It changes nothing.
func (s *State) checkAuthorRoom(t RecordType, pub PublicKey, e *Entry, n int) error {
	l := s.authorLimits()
	uses := s.liveUses(pub, l, slotUse{entrySlotID(pub, e.ID), n, e.ID, l.outsidePolicy(e.Issued, e.Expires, n) != ""})
	over := len(heldUses(uses, l))
	if over == 0 {
		return nil
	}
	others := s.pendingEntriesTotal - s.pendingEntries[pub]
	overBytes := usesBytes(heldUses(uses, l))
	othersBytes := s.pendingEntryBytesTotal - s.pendingEntryBytes[pub]
	if over <= MaxPendingEntriesPerKey && others+over <= MaxPendingEntries &&
		overBytes <= MaxPendingEntryBytesPerKey && othersBytes+overBytes <= MaxPendingEntryBytes {
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
	l := s.authorLimits()
	uses := s.liveUses(pub, l, slotUse{})
	over := map[string]bool{}
	if active {
		for _, u := range heldUses(uses, l) {
			over[u.id] = true
		}
	}
	for id, slot := range s.entries[pub] {
		slot.over = over[id]
		s.refreshEntry(pub, id, slot)
	}
	pending, pendingBytes := 0, 0
	for _, u := range uses {
		if !active || over[u.id] {
			pending++
			pendingBytes += u.size
		}
	}
	if fit := active && len(over) == 0 && !slices.ContainsFunc(uses, func(u slotUse) bool { return u.outside }); fit {
		s.fits[pub] = authorFit{l, len(uses), usesBytes(uses)}
	} else {
		delete(s.fits, pub)
	}
	s.pendingEntriesTotal += pending - s.pendingEntries[pub]
	s.pendingEntryBytesTotal += pendingBytes - s.pendingEntryBytes[pub]
	if pending == 0 {
		delete(s.pendingEntries, pub)
		delete(s.pendingEntryBytes, pub)
	} else {
		s.pendingEntries[pub] = pending
		s.pendingEntryBytes[pub] = pendingBytes
	}
}

// authorFit is what an author's live entries weighed, under limits l, when
// they last all fitted (State.fits).
type authorFit struct {
	l            authorLimits
	count, bytes int
}

// fitAfter says whether pub's live entries, all within the limits at its
// last settleAuthor, still are with e (n bytes) in place of cur, and what
// they then weigh. Applying one entry at a time, as a start-up does,
// otherwise walks every entry of its author each time: quadratic in an
// organization's entries.
func (s *State) fitAfter(pub PublicKey, cur *entrySlot, e *Entry, n int) (authorFit, bool) {
	f, ok := s.fits[pub]
	l := s.authorLimits()
	if !ok || f.l != l || l.outsidePolicy(e.Issued, e.Expires, n) != "" {
		return authorFit{}, false
	}
	if cur != nil && !cur.expired {
		f.bytes -= cur.size
	} else {
		f.count++
	}
	f.bytes += n
	return f, f.count <= l.entries && f.bytes <= l.bytes
}

// checkPendingBytes refuses a version of n bytes from a key that is not an
// active member when it would take that key's, or every key's, pending
// entries past their byte quota. cur is the slot it would replace, if any.
func (s *State) checkPendingBytes(t RecordType, pub PublicKey, cur *entrySlot, n int) error {
	grow := n
	if cur != nil && !cur.expired {
		grow -= cur.size
	}
	if grow <= 0 {
		return nil
	}
	if b := s.pendingEntryBytes[pub] + grow; b > MaxPendingEntryBytesPerKey {
		return reject(t, ErrQuota, "signer %s, not an admitted member, would have %d bytes of entries waiting; %d allowed", Fingerprint(pub), b, MaxPendingEntryBytesPerKey)
	}
	if b := s.pendingEntryBytesTotal + grow; b > MaxPendingEntryBytes {
		return reject(t, ErrQuota, "entries from keys not admitted would take %d bytes; %d allowed", b, MaxPendingEntryBytes)
	}
	return nil
}

// settleAuthorLimits re-derives every author when the charter in force
// changed the limits, the per-entry ones included.
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
// from pub would be within the charter's per-entry and per-author limits:
// a publishing node asks before it signs, so an honest member never has an
// entry held back by the network.
func (s *State) CheckPublish(pub PublicKey, e *Entry, n int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l := s.authorLimits()
	// A tombstone outside the lifetime is still worth sending: it
	// supersedes the version it deletes even while it is not shown, and it
	// must outlive that version.
	if why := l.outsidePolicy(e.Issued, e.Expires, n); why != "" && !e.Deleted {
		err := ErrInvalid
		if n > l.recordBytes {
			err = ErrTooLarge
		}
		return reject(TypeEntry, err, "%s, so no node would show it", why)
	}
	// The author's other entries outside the policy are held whatever
	// this one does; only those within it compete for the limits.
	var uses []slotUse
	for _, u := range s.liveUses(pub, l, slotUse{entrySlotID(pub, e.ID), n, e.ID, false}) {
		if !u.outside {
			uses = append(uses, u)
		}
	}
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

// SlotSeq returns the seq of the newest version of pub's entry id this
// state holds or held, expired ones included (the state remembers an
// expired slot's seq), and whether it knows the slot at all, whether or
// not pub is an admitted member. The per-author update rate (node) charges
// every version after a slot's first against it: a version of a slot that
// expired is still a version of that slot.
func (s *State) SlotSeq(pub PublicKey, id string) (uint64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot := s.entries[pub][id]
	if slot == nil {
		return 0, false
	}
	return slot.facts.seq, true
}

// HeldEntrySlots are the slots of every entry by pub this state holds
// (an expired entry is no longer held), each with the head of the version
// held, in no particular order, read from what the state keeps of each
// slot: no entry is decoded. A node lists them in its DHT manifest after
// each of its publications; decoding a large publisher's every entry for
// it cost more than the publication.
func (s *State) HeldEntrySlots(pub PublicKey) []SlotHead {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]SlotHead, 0, len(s.entries[pub]))
	for _, slot := range s.entries[pub] {
		if !slot.expired {
			out = append(out, SlotHead{slot.rank, HeadOf(slot.hash)})
		}
	}
	return out
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
	return slot.entry(), true
}
