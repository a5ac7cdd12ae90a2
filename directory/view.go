package directory

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"time"
)

// Charter returns the current (highest) charter in the chain, or nil before
// the genesis is known.
func (s *State) Charter() *Charter {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.chain) == 0 {
		return nil
	}
	return s.chain[len(s.chain)-1].body.(*Charter)
}

// CharterID is the proposal ID of the current charter, which the next
// amendment names as Previous.
func (s *State) CharterID() Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.chain) == 0 {
		return Hash{}
	}
	return s.chain[len(s.chain)-1].id
}

// Member is an admitted organization.
type Member struct {
	Key   PublicKey `json:"-"`
	KEM   []byte    `json:"-"`
	Name  string    `json:"name"`
	Peers []string  `json:"peers,omitempty"`
}

// Members returns the admitted, unrevoked organizations, sorted by key.
func (s *State) Members() []Member {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Member
	for _, k := range sortedKeys(s.members) {
		if _, rev := s.revoked[k]; rev {
			continue
		}
		m := s.members[k].body.(*Membership)
		out = append(out, Member{Key: k, KEM: m.KEM, Name: m.Name, Peers: m.Peers})
	}
	return out
}

// Member returns the organization admitted under k, if any.
func (s *State) Member(k PublicKey) (Member, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p := s.members[k]
	if p == nil {
		return Member{}, false
	}
	if _, rev := s.revoked[k]; rev {
		return Member{}, false
	}
	m := p.body.(*Membership)
	return Member{Key: k, KEM: m.KEM, Name: m.Name, Peers: m.Peers}, true
}

// IsReader reports whether k is an admitted, unrevoked reader.
func (s *State) IsReader(k PublicKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.readerOf[k]) > 0
}

// Readers returns the admitted reader keys with their vouchers.
func (s *State) Readers() map[PublicKey][]PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[PublicKey][]PublicKey, len(s.readerOf))
	for k, v := range s.readerOf {
		out[k] = slices.Clone(v)
	}
	return out
}

// IsRevoked reports whether k has been revoked.
func (s *State) IsRevoked(k PublicKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.revoked[k]
	return ok
}

// Revoked returns every revoked key, sorted.
func (s *State) Revoked() []PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return sortedKeys(s.revoked)
}

// Epochs returns the effective epochs in ascending order.
func (s *State) Epochs() []*Epoch {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Epoch, len(s.epochs))
	for i, p := range s.epochs {
		out[i] = p.body.(*Epoch)
	}
	return out
}

// CurrentEpoch is the highest effective epoch number, 0 before any.
func (s *State) CurrentEpoch() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.epochs) == 0 {
		return 0
	}
	return s.epochs[len(s.epochs)-1].body.(*Epoch).Number
}

// PendingEntries is the pending-entry pool's use: entries held for keys
// that are not active members, and their bytes, which the quotas
// MaxPendingEntries and MaxPendingEntryBytes bound.
func (s *State) PendingEntries() (entries, bytes int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.pendingEntriesTotal, s.pendingEntryBytesTotal
}

// KnowsEpoch reports whether the state holds an epoch record numbered n or
// higher, effective or not. A peer that seals under epoch n is ahead of
// this node only if such a record exists; sync brings it (it is sealed
// under the key before it), even to a node that is not its recipient.
func (s *State) KnowsEpoch(n uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, p := range s.governance[TypeEpoch] {
		if p.body.(*Epoch).Number >= n {
			return true
		}
	}
	for _, p := range s.waiting {
		if e, ok := p.body.(*Epoch); ok && e.Number >= n {
			return true
		}
	}
	return false
}

// Recipients lists every key that should receive the next read key: the
// current stewards, the members and the readers, none of them revoked.
func (s *State) Recipients() []Recipient {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[PublicKey]bool{}
	var out []Recipient
	addKey := func(k PublicKey, kemKey []byte) {
		if _, rev := s.revoked[k]; rev || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, Recipient{Key: k, KEM: kemKey})
	}
	if len(s.chain) > 0 {
		for _, st := range s.chain[len(s.chain)-1].body.(*Charter).Stewards {
			addKey(st.Key, st.KEM)
		}
	}
	for _, k := range sortedKeys(s.members) {
		addKey(k, s.members[k].body.(*Membership).KEM)
	}
	for _, k := range sortedKeys(s.readerOf) {
		if kemKey, ok := s.readerKEM(k); ok {
			addKey(k, kemKey)
		}
	}
	slices.SortFunc(out, func(a, b Recipient) int { return compareKeys(a.Key, b.Key) })
	return out
}

// readerKEM is the one encapsulation key reader k's grants name. Each grant
// carries k's own signature on it, so grants that disagree mean k signed
// two: that is shown as equivocation, and k gets no package rather than one
// sealed to a key picked by record hash.
func (s *State) readerKEM(k PublicKey) ([]byte, bool) {
	if ev := s.evidence[evidenceSlotName(k)]; ev != nil && strings.HasPrefix(ev.slot, "kem/") {
		// Held evidence proves it too: one of the two grants may have
		// left the pool since (its voucher revoked) or never reached
		// this node.
		return nil, false
	}
	var kemKey []byte
	for _, g := range s.grantsByKey[k] {
		switch {
		case kemKey == nil:
			kemKey = g.body.KEM
		case !bytes.Equal(kemKey, g.body.KEM):
			return nil, false
		}
	}
	return kemKey, kemKey != nil
}

// Proposal is a multi-signed body and how far its approval has come.
type Proposal struct {
	ID        Hash
	Type      RecordType
	Body      Body
	Raw       []byte
	Approvers []PublicKey // distinct signers so far
	Threshold int         // approvals the cited charter asks for; 0 if not yet known
	Effective bool
	// Uncounted lists, for a revocation that reached its threshold but
	// does not take effect, the approvers whose signatures stopped counting
	// because a revocation citing an earlier charter version revoked them:
	// stewards must approve it again, citing the current version.
	Uncounted []PublicKey
}

// Proposals returns every proposal in the pool, pending ones first.
func (s *State) Proposals() []Proposal {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Proposal
	for _, t := range []RecordType{TypeCharter, TypeMembership, TypeRevocation, TypeEpoch} {
		for _, p := range s.sortedProposals(t) {
			out = append(out, s.describe(p))
		}
	}
	slices.SortStableFunc(out, func(a, b Proposal) int {
		switch {
		case a.Effective == b.Effective:
			return 0
		case !a.Effective:
			return -1
		}
		return 1
	})
	return out
}

func (s *State) describe(p *proposal) Proposal {
	d := Proposal{ID: p.id, Type: p.typ, Body: p.body, Raw: p.raw, Approvers: sortedKeys(p.sigs)}
	var cited uint64
	switch b := p.body.(type) {
	case *Charter:
		if b.Version == 1 {
			d.Threshold = len(b.Stewards)
		} else {
			cited = b.Version - 1
		}
		d.Effective = slices.Contains(s.chain, p)
	case *Membership:
		cited = b.Charter
		d.Effective = s.members[b.Org] == p
	case *Revocation:
		cited = b.Charter
		d.Effective = s.stewardRevocations[p.id] || s.selfRevocations[p.id]
		d.Uncounted = slices.Clone(s.voided[p.id])
	case *Epoch:
		cited = b.Charter
		d.Effective = slices.Contains(s.epochs, p)
	}
	if c := s.charterAt(cited); c != nil {
		d.Threshold = int(c.Threshold)
	}
	return d
}

// VoidedRevocations returns the IDs of the revocations by stewards that
// reached their threshold but do not take effect, because a revocation
// citing an earlier charter version revoked some of their signers
// (Proposal.Uncounted names them), sorted.
func (s *State) VoidedRevocations() []Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Hash, 0, len(s.voided))
	for id := range s.voided {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Proposal returns the proposal with the given ID.
func (s *State) Proposal(id Hash) (Proposal, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.proposals[id]
	if !ok {
		return Proposal{}, false
	}
	return s.describe(p), true
}

// Listing is a visible entry with who published it.
type Listing struct {
	Key       string
	Publisher PublicKey
	Org       string
	Entry     *Entry
	Record    *Record
	Hash      Hash
}

// Entries returns the entries published under pub, visible or not, newest
// seq per ID; the zero key lists every publisher's.
func (s *State) Entries(pub PublicKey) []Listing {
	return s.FindEntries(pub, nil)
}

// FindEntries is Entries, keeping only the slots for which match, given the
// entry's ID and its record's hash, reports true (every slot if match is
// nil). Entries are decoded from their records to be listed: matching on
// what a slot knows without decoding finds one entry among 100,000 without
// decoding the others.
func (s *State) FindEntries(pub PublicKey, match func(id string, h Hash) bool) []Listing {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Listing
	for _, k := range sortedKeys(s.entries) {
		if pub != (PublicKey{}) && k != pub {
			continue
		}
		for id, slot := range s.entries[k] {
			if match == nil || match(id, slot.hash) {
				out = append(out, s.listing(k, id, slot, nil))
			}
		}
	}
	slices.SortFunc(out, func(a, b Listing) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Lookup returns the entry stored under key (as Search results name it).
func (s *State) Lookup(key string) (Listing, bool) {
	return s.lookup(key, nil, nil)
}

// ListingOf is Lookup for a search result: the listing reuses the entry the
// result decoded, if the slot still holds that very record.
func (s *State) ListingOf(r Result) (Listing, bool) {
	return s.lookup(r.Key, r.held, r.Entry)
}

func (s *State) lookup(key string, from *Record, decoded *Entry) (Listing, bool) {
	rest, ok := strings.CutPrefix(key, "entry/")
	if !ok || len(rest) < 66 || rest[64] != '/' {
		return Listing{}, false
	}
	pub, err := ParsePublicKeyHex(rest[:64])
	if err != nil {
		return Listing{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot := s.entries[pub][rest[65:]]
	if slot == nil {
		return Listing{}, false
	}
	if from != slot.best {
		decoded = nil // another version came in since
	}
	return s.listing(pub, rest[65:], slot, decoded), true
}

// listing lists slot, with decoded as its entry if the caller has it
// decoded from slot.best already.
func (s *State) listing(pub PublicKey, id string, slot *entrySlot, decoded *Entry) Listing {
	e := decoded
	if e == nil {
		e = slot.entry()
	}
	l := Listing{Key: entrySlotName(pub, id), Publisher: pub, Entry: e, Record: slot.best, Hash: slot.hash}
	if m := s.members[pub]; m != nil {
		l.Org = m.body.(*Membership).Name
	}
	return l
}

// Search finds visible, unexpired entries.
func (s *State) Search(q Query) []Result {
	return s.index.Search(q, s.now())
}

// Loading tells the state that many records are about to be applied at
// once (a node reading its store): until Loaded, the search index does
// not keep its name order, and sorts every entry once instead. A search
// meanwhile still answers in order, by sorting then.
func (s *State) Loading() { s.index.DeferOrder() }

// Reserve sizes an empty state's pool for about n records about to be
// applied at once: a node reading a store its checkpoint says holds n.
func (s *State) Reserve(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) == 0 {
		s.records = make(map[Hash]*Record, n)
	}
}

// Loaded ends Loading.
func (s *State) Loaded() { s.index.SettleOrder() }

// Has reports whether the pool holds the record with hash h.
func (s *State) Has(h Hash) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.records[h]
	return ok
}

// Record returns the pooled record with hash h.
func (s *State) Record(h Hash) (*Record, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records[h]
	if ok && r == nil {
		r, ok = s.loadRetired(h)
	}
	return r, ok
}

// Hashes returns the hashes of every pooled record, sorted: what a node
// offers peers in anti-entropy sync.
func (s *State) Hashes() []Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Hash, 0, len(s.records))
	for h := range s.records {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// SignedBy returns the pooled records pub signed, in no particular order:
// what a node keeps alive in the DHT. One pass over the pool, unlike
// Hashes or Records (which sort it) followed by a lookup per record: a
// node runs it after each of its publications.
func (s *State) SignedBy(pub PublicKey) []*Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Record
	for _, r := range s.records {
		if r != nil && slices.ContainsFunc(r.Sigs, func(sg Signature) bool { return sg.Key == pub }) {
			out = append(out, r)
		}
	}
	return append(out, s.retiredSignedBy(pub)...)
}

// SignedSlots are the slots of the pooled records other than entries that
// pub signed, each with the head of the record there (the better one,
// where two share a slot), in no particular order: with HeldEntrySlots,
// what a node lists in its DHT manifest. The pages of past rotations are
// not read back for it (RetirePages): their slots are known without.
func (s *State) SignedSlots(pub PublicKey) []SlotHead {
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := map[SlotID]*Record{}
	var out []SlotHead
	for _, r := range s.records {
		if r == nil || r.Type == TypeEntry || !slices.ContainsFunc(r.Sigs, func(sg Signature) bool { return sg.Key == pub }) {
			continue
		}
		name, err := r.Slot()
		if err != nil {
			continue
		}
		id := SlotIDOf(name)
		if b, ok := best[id]; !ok || Better(r, b) {
			best[id] = r
		}
	}
	for id, r := range best {
		out = append(out, SlotHead{id, HeadOf(r.Hash())})
	}
	for _, hp := range s.pages {
		for h, signer := range hp.records {
			if signer == pub && s.records[h] == nil {
				out = append(out, SlotHead{SlotIDOf(pageSlotOf(hp.number, hp.rotation, hp.index)), HeadOf(h)})
			}
		}
	}
	return out
}

// RecordsOfType returns the pooled records of the given types, in no
// particular order, without reading back retired pages.
func (s *State) RecordsOfType(types ...RecordType) []*Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Record
	for _, r := range s.records {
		if r != nil && slices.Contains(types, r.Type) {
			out = append(out, r)
		}
	}
	return out
}

// Records returns every pooled record, in an order that applies cleanly:
// charters first, then the rest of the governance, then entries.
func (s *State) Records() []*Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*Record, 0, len(s.records))
	for h, r := range s.records {
		if r == nil {
			// A retired page, read again for the caller; one that cannot
			// be read is left out, as a record lost from the store is.
			if r, _ = s.loadRetired(h); r == nil {
				continue
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *Record) int {
		if ra, rb := ApplyRank(a.Type), ApplyRank(b.Type); ra != rb {
			return ra - rb
		}
		ha, hb := a.Hash(), b.Hash()
		return bytes.Compare(ha[:], hb[:])
	})
	return out
}

// Equivocations returns the evidence of keys that signed conflicting
// records, for stewards to act on.
func (s *State) Equivocations() []Equivocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	all := s.equivocationsLocked()
	out := make([]Equivocation, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Equivocation) int { return cmp.Compare(a.Slot, b.Slot) })
	return out
}

// Stats counts what the state holds.
type Stats struct {
	Records  int    `json:"records"`
	Entries  int    `json:"entries"`
	Members  int    `json:"members"`
	Readers  int    `json:"readers"`
	Revoked  int    `json:"revoked"`
	Epoch    uint64 `json:"epoch"`
	Charter  uint64 `json:"charter_version"`
	Pending  int    `json:"pending_proposals"`
	Conflict int    `json:"equivocations"`
}

// Stats returns counts for status displays.
func (s *State) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Records: len(s.records), Entries: s.index.Len(), Readers: len(s.readerOf), Revoked: len(s.revoked), Conflict: len(s.equivocationsLocked())}
	for k := range s.members {
		if _, rev := s.revoked[k]; !rev {
			st.Members++
		}
	}
	if len(s.epochs) > 0 {
		st.Epoch = s.epochs[len(s.epochs)-1].body.(*Epoch).Number
	}
	if len(s.chain) > 0 {
		st.Charter = s.chain[len(s.chain)-1].body.(*Charter).Version
	}
	for _, p := range s.proposals {
		if !s.describe(p).Effective {
			st.Pending++
		}
	}
	return st
}

// Expire drops expired entries from the pool and the index, and reports
// how many went. Nodes call it periodically; search hides expired entries in
// between. The slot remembers its seq, so an older version replayed later
// is still refused as stale.
func (s *State) Expire() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	touched := map[PublicKey]bool{}
	for pub, slots := range s.entries {
		for id, slot := range slots {
			if slot.expired || now.Before(time.Unix(slot.facts.expires, 0)) {
				continue
			}
			if slot.visible {
				s.indexRemove(pub, id)
			}
			delete(s.records, slot.hash)
			slot.expired, slot.visible = true, false
			touched[pub] = true
			n++
		}
	}
	// An expired slot no longer counts against its author's limits, nor
	// the pending quotas, and may let a held-back entry into view.
	for pub := range touched {
		s.settleAuthor(pub)
	}
	s.expireHeartbeats(now)
	// A reader grant that expired no longer admits its key.
	for k, gs := range s.grantsByKey {
		for _, g := range gs {
			if g.body.Expires != 0 && !now.Before(time.Unix(g.body.Expires, 0)) {
				s.rebuildReader(k)
				break
			}
		}
	}
	if n > 0 || s.changed {
		s.digestSet, s.changed = false, false
	}
	return n
}
