package directory

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// State is one node's view of a network's directory. It is a pure function
// of the set of records applied to it (and of the clock, for expiry): any
// order, any duplicates, the same Digest.
//
// Records are held in two layers. The pool keeps every record that could
// still matter: proposals and approvals not yet at threshold, entries whose
// publisher is not yet known to be admitted. The effective view (charter
// chain, revocations, members, readers, epochs, visible entries) is derived
// from the pool. Governance records are few, so the view of them is
// recomputed from the pool whenever one arrives; entries are many, so they
// are applied incrementally.
//
// A State is safe for concurrent use.
type State struct {
	mu  sync.RWMutex
	net NetworkID
	now func() time.Time

	records    map[Hash]*Record      // the pool, by record hash
	proposals  map[Hash]*proposal    // multi-signed bodies, by proposal ID
	readers    map[Hash]*readerGrant // reader records, by record hash
	readerKeys map[PublicKey]int     // how many grants name each reader key
	entries    map[PublicKey]map[string]*entrySlot

	// The effective view.
	chain []*proposal // chain[i] is charter version i+1
	// linked holds, by version, every charter reachable from the genesis
	// through valid links: the chain and any fork of it.
	linked map[uint64][]*Charter
	// validRevocations holds the IDs of every revocation proposal that
	// takes effect, the redundant ones included.
	validRevocations map[Hash]bool
	revoked          map[PublicKey]Hash
	members          map[PublicKey]*proposal // the newest effective membership per org
	readerOf         map[PublicKey][]PublicKey
	epochs           []*proposal // effective epochs, ascending number, one per number
	equivoc          map[string]Equivocation
	index            *Index

	// dropped collects the hashes the current Apply removes from the
	// pool, so the caller can delete them from its store.
	dropped []Hash
}

type proposal struct {
	id      Hash
	typ     RecordType
	body    Body
	raw     []byte
	sigs    map[PublicKey]bool
	records map[Hash]bool // pool records that carry its signatures
}

type readerGrant struct {
	hash    Hash
	voucher PublicKey
	body    *Reader
}

type entrySlot struct {
	best    *Record
	hash    Hash
	entry   *Entry
	visible bool
	expired bool // dropped from the pool by Expire; the seq is remembered
	// seen is the first record hash seen at each seq, older ones included,
	// so an equivocation is caught whichever of its records came first and
	// whether or not a newer seq came in between: 32 bytes per update.
	seen map[uint64]Hash
}

// Equivocation is evidence that a key signed two different records for
// the same slot: a sign of compromise that stewards must see.
type Equivocation struct {
	Key    PublicKey `json:"key"`
	Slot   string    `json:"slot"`
	Hashes []Hash    `json:"hashes"`
}

// Applied reports what a record did to the state.
type Applied struct {
	Hash    Hash
	Type    RecordType
	Changed bool // the effective view changed
	// Dropped lists pooled records this one pushed out of the pool (the
	// entry version it superseded, what a revoked key signed or vouched
	// for). They can never take effect again, so stores delete them.
	Dropped []Hash
}

// NewState returns an empty state for network net. now is the clock used
// for expiry and skew checks; nil means time.Now.
func NewState(net NetworkID, now func() time.Time) *State {
	if now == nil {
		now = time.Now
	}
	return &State{
		net:              net,
		now:              now,
		records:          map[Hash]*Record{},
		proposals:        map[Hash]*proposal{},
		readers:          map[Hash]*readerGrant{},
		readerKeys:       map[PublicKey]int{},
		entries:          map[PublicKey]map[string]*entrySlot{},
		revoked:          map[PublicKey]Hash{},
		linked:           map[uint64][]*Charter{},
		validRevocations: map[Hash]bool{},
		members:          map[PublicKey]*proposal{},
		readerOf:         map[PublicKey][]PublicKey{},
		equivoc:          map[string]Equivocation{},
		index:            NewIndex(),
	}
}

// Network returns the network this state belongs to.
func (s *State) Network() NetworkID { return s.net }

// Apply validates r against everything known and adds it. It returns
// ErrDuplicate (wrapped) for a record already held, and a *RejectError
// naming the reason for anything refused; a refused record changes nothing.
func (s *State) Apply(r *Record) (Applied, error) {
	enc := r.Encode()
	h := Hash(sha256.Sum256(enc))
	// Records from Open or DecodeRecord were verified and decoded there;
	// doing it twice would cost a third of the receive path. Anything else,
	// or a decoded record changed since, is verified here.
	body := r.body
	if r.verified != h || body == nil {
		var err error
		if body, err = r.verify(); err != nil {
			return Applied{}, err
		}
	}
	if r.Type == TypeManifest {
		return Applied{}, reject(r.Type, ErrInvalid, "manifests are fetch hints and do not enter the state")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[h]; ok {
		return Applied{Hash: h, Type: r.Type}, reject(r.Type, ErrDuplicate, "%s", h.Short())
	}
	if err := s.checkCommon(r, body, len(enc)); err != nil {
		return Applied{}, err
	}
	s.dropped = nil
	changed, err := s.add(r, h, body)
	dropped := s.dropped
	s.dropped = nil
	if err != nil {
		return Applied{}, err
	}
	return Applied{Hash: h, Type: r.Type, Changed: changed, Dropped: dropped}, nil
}

func (s *State) policy() Policy {
	if len(s.chain) == 0 {
		return Policy{}
	}
	return s.chain[len(s.chain)-1].body.(*Charter).Policy
}

// checkCommon applies the rules every record type shares.
func (s *State) checkCommon(r *Record, body Body, n int) error {
	if r.Network != s.net {
		return reject(r.Type, ErrWrongNetwork, "")
	}
	p := s.policy()
	if n > p.maxRecordBytes() {
		return reject(r.Type, ErrTooLarge, "%d bytes, charter allows %d", n, p.maxRecordBytes())
	}
	inner := body
	if a, ok := body.(*Approval); ok {
		inner, _ = decodeBody(a.Of, a.Proposal)
	}
	issued := issuedOf(inner)
	if limit := s.now().Add(p.ClockSkewBound()); time.Unix(issued, 0).After(limit) {
		return reject(r.Type, ErrFromFuture, "issued %s", time.Unix(issued, 0).UTC().Format(time.RFC3339))
	}
	if !multiSigned(inner) {
		// A revoked key is refused for everything it signs alone.
		for _, sg := range r.Sigs {
			if _, ok := s.revoked[sg.Key]; ok {
				return reject(r.Type, ErrRevoked, "signer %s", Fingerprint(sg.Key))
			}
		}
		return nil
	}
	// A proposal's signatures are weighed in recompute, which skips the ones
	// that cannot count. Refusing the whole record here because one of them
	// cannot count would make the result depend on arrival order: the same
	// record applied before that signer's revocation (or before the cited
	// charter was known) keeps the weight of its other signatures. So a
	// proposal is refused only when none of its signatures can ever count:
	// signers that are stewards of no known charter of the cited version (a
	// proposal citing a version not yet known waits in the pool), and
	// revoked signers where recompute ignores them.
	var first error
	for _, sg := range r.Sigs {
		err := s.checkApprover(inner, sg.Key)
		if _, rev := s.revoked[sg.Key]; err == nil && rev && !countsRevokedSigners(inner) {
			err = ErrRevoked
		}
		if err == nil {
			return nil
		}
		if first == nil {
			first = reject(r.Type, err, "signer %s", Fingerprint(sg.Key))
		}
	}
	return first
}

// countsRevokedSigners reports whether a proposal of b's kind counts the
// signatures of keys revoked since. Charter links are history, so revoking
// a steward never rolls the chain back; revocations do not depend on each
// other, so revocation is for good (see recompute). Memberships and epochs
// count only unrevoked stewards.
func countsRevokedSigners(b Body) bool {
	switch b.(type) {
	case *Charter, *Revocation:
		return true
	}
	return false
}

// checkApprover says whether k may sign proposal b.
func (s *State) checkApprover(b Body, k PublicKey) error {
	var cited uint64
	switch b := b.(type) {
	case *Charter:
		if b.Version == 1 {
			if !b.isSteward(k) {
				return ErrNotSteward
			}
			return nil
		}
		cited = b.Version - 1
	case *Membership:
		cited = b.Charter
	case *Epoch:
		cited = b.Charter
	case *Revocation:
		if k == b.Key {
			return nil
		}
		if b.Charter == 0 {
			return ErrNotSteward // a revocation without a charter is the key's own
		}
		cited = b.Charter
	}
	// Any linked charter of the cited version will do: which branch of a
	// fork wins can change as records arrive, and a refusal cannot be undone.
	cs := s.linked[cited]
	if len(cs) > 0 && !slices.ContainsFunc(cs, func(c *Charter) bool { return c.isSteward(k) }) {
		return ErrNotSteward
	}
	return nil
}

func issuedOf(b Body) int64 {
	switch b := b.(type) {
	case *Charter:
		return b.Issued
	case *Membership:
		return b.Issued
	case *Reader:
		return b.Issued
	case *Entry:
		return b.Issued
	case *Revocation:
		return b.Issued
	case *Epoch:
		return b.Issued
	}
	return 0
}

func (s *State) add(r *Record, h Hash, body Body) (bool, error) {
	switch b := body.(type) {
	case *Entry:
		return s.addEntry(r, h, b)
	case *Reader:
		if len(r.Sigs) != 1 {
			return false, reject(r.Type, ErrInvalid, "a reader grant has one signer, its voucher")
		}
		if _, ok := s.revoked[b.Key]; ok {
			return false, reject(r.Type, ErrRevoked, "reader key %s", Fingerprint(b.Key))
		}
		if b.Expires != 0 && !s.now().Before(time.Unix(b.Expires, 0)) {
			return false, reject(r.Type, ErrExpired, "reader grant expired")
		}
		voucher := r.Sigs[0].Key
		if s.readerKeys[voucher] > 0 && s.members[voucher] == nil {
			return false, reject(r.Type, ErrNotMember, "voucher %s is a reader", Fingerprint(voucher))
		}
		s.records[h] = r
		s.readers[h] = &readerGrant{hash: h, voucher: voucher, body: b}
		s.readerKeys[b.Key]++
	case *Approval:
		p, err := s.proposalFor(r.Network, b.Of, b.Proposal)
		if err != nil {
			return false, err
		}
		if p.sigs[r.Sigs[0].Key] {
			return false, reject(r.Type, ErrDuplicate, "steward %s already approved %s", Fingerprint(r.Sigs[0].Key), p.id.Short())
		}
		s.records[h] = r
		p.sigs[r.Sigs[0].Key] = true
		p.records[h] = true
	default: // Charter, Membership, Revocation, Epoch
		p, err := s.proposalFor(r.Network, r.Type, r.Body)
		if err != nil {
			return false, err
		}
		fresh := false
		for _, sg := range r.Sigs {
			if !p.sigs[sg.Key] {
				fresh = true
			}
		}
		if !fresh {
			return false, reject(r.Type, ErrDuplicate, "no signature that %s does not already have", p.id.Short())
		}
		s.records[h] = r
		for _, sg := range r.Sigs {
			p.sigs[sg.Key] = true
		}
		p.records[h] = true
	}
	return s.recompute(), nil
}

func (s *State) proposalFor(net NetworkID, t RecordType, raw []byte) (*proposal, error) {
	id := proposalID(net, t, raw)
	if p, ok := s.proposals[id]; ok {
		return p, nil
	}
	body, err := decodeBody(t, raw)
	if err != nil {
		return nil, err
	}
	p := &proposal{id: id, typ: t, body: body, raw: raw, sigs: map[PublicKey]bool{}, records: map[Hash]bool{}}
	s.proposals[id] = p
	return p, nil
}

func entrySlotName(pub PublicKey, id string) string { return "entry/" + pub.Hex() + "/" + id }

func (s *State) addEntry(r *Record, h Hash, e *Entry) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "an entry has one signer, its publisher")
	}
	pub := r.Sigs[0].Key
	if !s.now().Before(time.Unix(e.Expires, 0)) {
		return false, reject(r.Type, ErrExpired, "entry %s expired %s", e.ID, time.Unix(e.Expires, 0).UTC().Format(time.RFC3339))
	}
	if life := time.Duration(e.Expires-e.Issued) * time.Second; life > s.policy().maxEntryLifetime() {
		return false, reject(r.Type, ErrInvalid, "entry lives %s, charter allows %s", life, s.policy().maxEntryLifetime())
	}
	if s.readerKeys[pub] > 0 && s.members[pub] == nil {
		return false, reject(r.Type, ErrNotMember, "signer %s is a reader; readers cannot publish", Fingerprint(pub))
	}
	if s.isStewardAnywhere(pub) && s.members[pub] == nil {
		return false, reject(r.Type, ErrNotMember, "signer %s is a steward, not a member organization", Fingerprint(pub))
	}
	slots := s.entries[pub]
	if slots == nil {
		slots = map[string]*entrySlot{}
		s.entries[pub] = slots
	}
	cur := slots[e.ID]
	seen := map[uint64]Hash{}
	if cur != nil {
		if cur.hash == h {
			return false, reject(r.Type, ErrDuplicate, "entry %s seq %d", e.ID, e.Seq)
		}
		seen = cur.seen
		first, seenSeq := seen[e.Seq]
		switch {
		case seenSeq && first != h:
			// Equivocation: the same key signed two versions with one seq.
			// At the current seq the lower hash wins everywhere, so every
			// node picks the same; an older seq is evidence only.
			name := entrySlotName(pub, e.ID)
			known := slices.Contains(s.equivoc[name].Hashes, h)
			s.noteEquivocation(pub, name, first, h)
			if e.Seq < cur.entry.Seq || bytes.Compare(h[:], cur.hash[:]) > 0 {
				if known {
					return false, reject(r.Type, ErrDuplicate, "equivocating entry %s already recorded", e.ID)
				}
				return false, nil // new evidence; the view is unchanged
			}
		case seenSeq && e.Seq == cur.entry.Seq:
			// h lost an equivocation at the current seq earlier.
			return false, reject(r.Type, ErrDuplicate, "equivocating entry %s already recorded", e.ID)
		case seenSeq:
			return false, reject(r.Type, ErrStale, "entry %s seq %d, have seq %d", e.ID, e.Seq, cur.entry.Seq)
		case e.Seq < cur.entry.Seq:
			// Refused, but remembered: if another record with this seq
			// arrives, that is equivocation whether the two came before
			// or after the newer seq.
			seen[e.Seq] = h
			return false, reject(r.Type, ErrStale, "entry %s seq %d, have seq %d", e.ID, e.Seq, cur.entry.Seq)
		}
		if !cur.expired {
			delete(s.records, cur.hash)
			s.dropped = append(s.dropped, cur.hash)
		}
	}
	if _, ok := seen[e.Seq]; !ok {
		seen[e.Seq] = h
	}
	slot := &entrySlot{best: r, hash: h, entry: e, seen: seen}
	slots[e.ID] = slot
	s.records[h] = r
	wasVisible := cur != nil && cur.visible
	slot.visible = s.activeMember(pub) && !e.Deleted
	if slot.visible {
		s.index.Put(entrySlotName(pub, e.ID), pub, e)
	} else if wasVisible {
		s.index.Remove(entrySlotName(pub, e.ID))
	}
	return wasVisible || slot.visible, nil
}

// refreshEntry puts slot into or out of the search index when its
// publisher's standing changed.
func (s *State) refreshEntry(pub PublicKey, slot *entrySlot) {
	visible := s.activeMember(pub) && !slot.entry.Deleted && !slot.expired
	if visible == slot.visible {
		return
	}
	slot.visible = visible
	if visible {
		s.index.Put(entrySlotName(pub, slot.entry.ID), pub, slot.entry)
	} else {
		s.index.Remove(entrySlotName(pub, slot.entry.ID))
	}
}

func (s *State) noteEquivocation(k PublicKey, slot string, a, b Hash) {
	eq := s.equivoc[slot]
	eq.Key, eq.Slot = k, slot
	for _, h := range []Hash{a, b} {
		if !slices.Contains(eq.Hashes, h) {
			eq.Hashes = append(eq.Hashes, h)
		}
	}
	slices.SortFunc(eq.Hashes, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) })
	s.equivoc[slot] = eq
}

func (s *State) activeMember(k PublicKey) bool {
	_, rev := s.revoked[k]
	return !rev && s.members[k] != nil
}

func (s *State) isStewardAnywhere(k PublicKey) bool {
	for _, p := range s.chain {
		if p.body.(*Charter).isSteward(k) {
			return true
		}
	}
	return false
}

// charterAt returns the charter of version v if it is in the chain.
func (s *State) charterAt(v uint64) *Charter {
	if v == 0 || v > uint64(len(s.chain)) {
		return nil
	}
	return s.chain[v-1].body.(*Charter)
}

// approvals counts distinct signers of p who are stewards of charter c and,
// unless countRevoked, not revoked.
func (s *State) approvals(p *proposal, c *Charter, countRevoked bool) int {
	n := 0
	for k := range p.sigs {
		if !c.isSteward(k) {
			continue
		}
		if _, rev := s.revoked[k]; rev && !countRevoked {
			continue
		}
		n++
	}
	return n
}

// recompute derives the effective view from the pool. Each layer depends
// only on the ones before it, so the result is a function of the pool:
// charter chain → revocations → members → readers → epochs → entries.
func (s *State) recompute() bool {
	before := s.viewDigest()

	// Forks of the charter and of epochs are facts about the pool, noted
	// afresh below; kept from an earlier recompute they would depend on the
	// order in which the pool grew.
	for slot, eq := range s.equivoc {
		if eq.Key == (PublicKey{}) {
			delete(s.equivoc, slot)
		}
	}

	// Charter chain. Links are history: they count the stewards of the
	// previous version whether or not they were revoked since, so revoking a
	// steward never rolls the charter back. A fork (two valid successors)
	// is equivocation by the stewards; the lower proposal ID wins.
	s.chain = s.chain[:0]
	clear(s.linked)
	var byPrev = map[Hash][]*proposal{}
	var genesis []*proposal
	for _, p := range s.sortedProposals(TypeCharter) {
		c := p.body.(*Charter)
		if c.Version == 1 {
			if GenesisID(p.raw) == s.net && s.approvals(p, c, countsRevokedSigners(c)) == len(c.Stewards) {
				genesis = append(genesis, p)
			}
			continue
		}
		byPrev[c.Previous] = append(byPrev[c.Previous], p)
	}
	successors := func(p *proposal) []*proposal {
		pc := p.body.(*Charter)
		var next []*proposal
		for _, q := range byPrev[p.id] {
			c := q.body.(*Charter)
			if c.Version == pc.Version+1 && s.approvals(q, pc, countsRevokedSigners(c)) >= int(pc.Threshold) {
				next = append(next, q)
			}
		}
		return next
	}
	if len(genesis) > 0 {
		for todo := []*proposal{genesis[0]}; len(todo) > 0; todo = todo[1:] {
			c := todo[0].body.(*Charter)
			s.linked[c.Version] = append(s.linked[c.Version], c)
			todo = append(todo, successors(todo[0])...)
		}
		s.chain = append(s.chain, genesis[0])
		for {
			tc := s.chain[len(s.chain)-1].body.(*Charter)
			next := successors(s.chain[len(s.chain)-1])
			if len(next) == 0 {
				break
			}
			if len(next) > 1 {
				s.noteEquivocation(PublicKey{}, fmt.Sprintf("charter/%d", tc.Version+1), next[0].id, next[1].id)
			}
			s.chain = append(s.chain, next[0])
		}
	}

	// Revocations: by the key itself, or by Threshold stewards of the cited
	// charter. They do not depend on each other, so a revoked steward's
	// earlier revocations of others stand: revocation is for good. For the
	// same reason they count against every linked charter of the cited
	// version, not only the chain's: were a fork that wins later to drop the
	// cited version from the chain, keys would come back from revocation,
	// and nodes that refused their records in between would disagree with
	// nodes that did not.
	clear(s.revoked)
	clear(s.validRevocations)
	for _, p := range s.sortedProposals(TypeRevocation) {
		rv := p.body.(*Revocation)
		valid := p.sigs[rv.Key] || slices.ContainsFunc(s.linked[rv.Charter], func(c *Charter) bool {
			return s.approvals(p, c, countsRevokedSigners(rv)) >= int(c.Threshold)
		})
		if !valid {
			continue
		}
		s.validRevocations[p.id] = true
		if _, done := s.revoked[rv.Key]; !done {
			s.revoked[rv.Key] = p.id
		}
	}

	// Members: Threshold unrevoked stewards of the cited charter.
	clear(s.members)
	for _, p := range s.sortedProposals(TypeMembership) {
		m := p.body.(*Membership)
		if _, rev := s.revoked[m.Org]; rev {
			continue
		}
		c := s.charterAt(m.Charter)
		if c == nil || s.approvals(p, c, countsRevokedSigners(m)) < int(c.Threshold) {
			continue
		}
		if cur := s.members[m.Org]; cur == nil || m.Issued > cur.body.(*Membership).Issued {
			s.members[m.Org] = p
		}
	}

	// Readers fall with their voucher.
	clear(s.readerOf)
	for _, g := range s.sortedReaders() {
		if _, rev := s.revoked[g.body.Key]; rev || !s.activeMember(g.voucher) {
			continue
		}
		if g.body.Expires != 0 && !s.now().Before(time.Unix(g.body.Expires, 0)) {
			continue
		}
		if !slices.Contains(s.readerOf[g.body.Key], g.voucher) {
			s.readerOf[g.body.Key] = append(s.readerOf[g.body.Key], g.voucher)
		}
	}

	// Epochs: Threshold unrevoked stewards, or one after an effective
	// revocation. One epoch per number; two is equivocation.
	s.epochs = s.epochs[:0]
	byNumber := map[uint64]*proposal{}
	for _, p := range s.sortedProposals(TypeEpoch) {
		e := p.body.(*Epoch)
		c := s.charterAt(e.Charter)
		if c == nil {
			continue
		}
		n := s.approvals(p, c, countsRevokedSigners(e))
		if n < int(c.Threshold) && !(n >= 1 && s.validRevocations[e.After]) {
			continue
		}
		if prev, ok := byNumber[e.Number]; ok {
			s.noteEquivocation(PublicKey{}, fmt.Sprintf("epoch/%d", e.Number), prev.id, p.id)
			continue
		}
		byNumber[e.Number] = p
	}
	for _, p := range byNumber {
		s.epochs = append(s.epochs, p)
	}
	slices.SortFunc(s.epochs, func(a, b *proposal) int {
		return cmp.Compare(a.body.(*Epoch).Number, b.body.(*Epoch).Number)
	})

	// A revoked key's equivocations are settled, and a node that learnt of
	// the revocation first refused the records that would show them.
	for slot, eq := range s.equivoc {
		if _, rev := s.revoked[eq.Key]; rev && eq.Key != (PublicKey{}) {
			delete(s.equivoc, slot)
		}
	}

	// Revocation is permanent: drop from the pool everything a revoked key
	// signed alone, so it can never come back.
	for k := range s.revoked {
		for id, slot := range s.entries[k] {
			s.index.Remove(entrySlotName(k, id))
			if !slot.expired {
				delete(s.records, slot.hash)
				s.dropped = append(s.dropped, slot.hash)
			}
		}
		delete(s.entries, k)
		for h, g := range s.readers {
			if g.voucher == k || g.body.Key == k {
				delete(s.readers, h)
				delete(s.records, h)
				s.dropped = append(s.dropped, h)
				if s.readerKeys[g.body.Key]--; s.readerKeys[g.body.Key] <= 0 {
					delete(s.readerKeys, g.body.Key)
				}
			}
		}
	}
	for pub, slots := range s.entries {
		for _, slot := range slots {
			s.refreshEntry(pub, slot)
		}
	}
	return s.viewDigest() != before
}

func (s *State) sortedProposals(t RecordType) []*proposal {
	var ps []*proposal
	for _, p := range s.proposals {
		if p.typ == t {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b *proposal) int { return bytes.Compare(a.id[:], b.id[:]) })
	return ps
}

func (s *State) sortedReaders() []*readerGrant {
	gs := make([]*readerGrant, 0, len(s.readers))
	for _, g := range s.readers {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *readerGrant) int { return bytes.Compare(a.hash[:], b.hash[:]) })
	return gs
}

// Digest is a hash of the effective view: the charter chain, revocations,
// members, readers, epochs and visible entries. Two nodes with the same
// records (and clocks on the same side of every expiry) have the same
// digest.
func (s *State) Digest() Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.viewDigest()
}

func (s *State) viewDigest() Hash {
	now := s.now().Unix()
	h := sha256.New()
	line := func(parts ...[]byte) {
		for _, p := range parts {
			var n [4]byte
			binary.BigEndian.PutUint32(n[:], uint32(len(p)))
			h.Write(n[:])
			h.Write(p)
		}
	}
	for _, p := range s.chain {
		line([]byte("charter"), p.id[:])
	}
	for _, k := range sortedKeys(s.revoked) {
		line([]byte("revoked"), k[:])
	}
	for _, k := range sortedKeys(s.members) {
		id := s.members[k].id
		line([]byte("member"), k[:], id[:])
	}
	for _, k := range sortedKeys(s.readerOf) {
		vs := slices.Clone(s.readerOf[k])
		slices.SortFunc(vs, compareKeys)
		for _, v := range vs {
			line([]byte("reader"), k[:], v[:])
		}
	}
	for _, p := range s.epochs {
		line([]byte("epoch"), p.id[:])
	}
	for _, k := range sortedKeys(s.entries) {
		slots := s.entries[k]
		ids := make([]string, 0, len(slots))
		for id := range slots {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			if slot := slots[id]; slot.visible && now < slot.entry.Expires {
				line([]byte("entry"), k[:], []byte(id), slot.hash[:])
			}
		}
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

func sortedKeys[V any](m map[PublicKey]V) []PublicKey {
	ks := make([]PublicKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, compareKeys)
	return ks
}
