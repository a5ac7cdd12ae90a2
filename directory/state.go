package directory

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
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
// from the pool. Only the governance that stewards sign (charters,
// memberships, epochs, revocations that need stewards) is re-derived whole
// when one of its records arrives; it is small, and a key holder cannot grow
// it. Everything a single key can add (reader grants, entries,
// self-revocations) is applied incrementally through indexes, and only the
// keys whose standing changed are revisited, so applying one record costs
// about the same whatever the pool holds.
//
// A State is safe for concurrent use.
type State struct {
	mu  sync.RWMutex
	net NetworkID
	now func() time.Time

	records   map[Hash]*Record   // the pool, by record hash
	proposals map[Hash]*proposal // multi-signed bodies, by proposal ID
	// governance holds, by type, the proposals recompute weighs. A
	// revocation that carries its key's own signature is valid by itself
	// and is kept out, so junk self-revocations cost recompute nothing.
	governance map[RecordType]map[Hash]*proposal
	// waiting holds proposals citing a charter version not linked yet:
	// bounded, and pruned once the version is known.
	waiting         map[Hash]*proposal
	readers         map[Hash]*readerGrant // reader records, by record hash
	grantsByKey     map[PublicKey]map[Hash]*readerGrant
	grantsByVoucher map[PublicKey]map[Hash]*readerGrant
	entries         map[PublicKey]map[string]*entrySlot
	// pages holds epoch page bodies by PageHash. The pages of rotations
	// older than the current epoch may be retired (RetirePages): their
	// records stay in records with a nil value, and load reads them again
	// from where the node stored them when asked for.
	pages map[Hash]*heldPage
	load  RecordLoader
	// sealsNot remembers, by epoch proposal ID, whether a rotation one
	// steward signed after a revocation, every page of it held, seals
	// nothing to the revoked key (completeWithout).
	sealsNot map[Hash]bool
	// pendingEntries and pendingGrants count what keys that are not active
	// members hold in the pool: the quotas that keep a key holder from
	// filling every node's disk.
	pendingEntries      map[PublicKey]int
	pendingEntriesTotal int
	// pendingEntryBytes and pendingEntryBytesTotal weigh the same entries:
	// since a record is accepted up to the protocol's 262,144 bytes
	// whatever the charter says, a count alone let 4,096 pending entries
	// take a gigabyte on every node.
	pendingEntryBytes      map[PublicKey]int
	pendingEntryBytesTotal int
	pendingGrantsTotal     int
	// limitsSettled are the per-author limits the entries were last
	// ranked under (authorlimit.go).
	limitsSettled authorLimits
	// fits holds, for each active author whose live entries all fit the
	// limits at its last settleAuthor, what they weigh: a new version that
	// keeps them within the limits then needs no walk over the author's
	// other entries (authorlimit.go, fitAfter).
	fits map[PublicKey]authorFit

	// The effective view.
	chain []*proposal // chain[i] is charter version i+1
	// linked holds, by version, every charter reachable from the genesis
	// through valid links: the chain and any fork of it.
	linked map[uint64][]*Charter
	// stewardRevocations holds the IDs of the revocation proposals that
	// take effect by Threshold stewards (the redundant ones included),
	// which alone let one steward rotate; with selfRevocations, every
	// revocation that takes effect. Re-derived on every recompute: a
	// revocation by stewards loses its weight when a revocation citing an
	// earlier version revokes enough of its signers (deriveRevocations).
	stewardRevocations map[Hash]bool
	revoked            map[PublicKey]Hash
	// selfRevoked holds the keys revoked by a revocation they signed
	// themselves (its lowest proposal ID): valid by itself, for good, and
	// only growing. selfRevocations holds those proposals' IDs.
	selfRevoked     map[PublicKey]Hash
	selfRevocations map[Hash]bool
	// stewardRevoked holds the keys revoked by stewards at the last
	// recompute (its lowest valid proposal ID): the only keys that can come
	// back, so recompute looks at them and not at every revoked key.
	stewardRevoked map[PublicKey]Hash
	// voided holds revocations by stewards that the stewards of a linked
	// charter of the cited version signed in threshold, but that fall short
	// once signers revoked at an earlier version stop counting, with those
	// signers: stewards must sign them again (Proposal.Uncounted).
	voided map[Hash][]PublicKey
	// revDerived is what the derivation of revocations last started from,
	// so that the next derives only what changed (deriveNewRevocations).
	revDerived revocationsDerived
	members    map[PublicKey]*proposal // the newest effective membership per org
	readerOf   map[PublicKey][]PublicKey
	epochs     []*proposal // effective epochs: epochs[i] is number i+1
	equivoc    map[string]Equivocation
	index      *Index
	// unindexed is set while the state loads without keeping its index
	// (LoadingUnindexed).
	unindexed bool
	// heartbeats holds the newest heartbeat of each current steward
	// (heartbeat.go); they are pooled, synced and stored, but are not in
	// the digest.
	heartbeats map[PublicKey]*heartbeatSlot
	// evidence holds one evidence record per conflict (evidence.go).
	evidence        map[string]*evidenceSlot
	pendingEvidence int

	// dropped collects the hashes the current Apply removes from the
	// pool, so the caller can delete them from its store; setAside those
	// of them the caller should offer again (pruneWaiting); changed notes
	// that an incremental step changed the effective view.
	dropped  []Hash
	setAside []*Record
	changed  bool

	digest   Hash
	digestAt int64
	// digestUntil is the earliest expiry among the entries the digest
	// counts: until then, and while nothing changes, it stays the same.
	digestUntil int64
	digestSet   bool
}

// Pool quotas. Entries and reader grants from keys that are not active
// members, and proposals citing a charter not linked yet, wait in the pool
// until their signer's standing is known; these bound how much of that a
// key holder can make every node keep.
const (
	MaxPendingEntriesPerKey = 32
	MaxPendingEntries       = 4096
	// MaxPendingEntryBytesPerKey and MaxPendingEntryBytes weigh the same
	// entries by their encoded size.
	MaxPendingEntryBytesPerKey = 2 << 20
	MaxPendingEntryBytes       = 64 << 20
	MaxPendingGrantsPerKey     = 64
	MaxPendingGrants           = 4096
	MaxWaitingProposals        = 256
	// charterLookahead is how far beyond the newest linked charter a
	// proposal may cite, and epochLookahead how far beyond the current
	// epoch an epoch may be numbered, for a node that is behind.
	charterLookahead = 8
	epochLookahead   = 8
	// seenSeqs is how many of an entry slot's newest seqs keep the hash
	// first seen at them, for equivocation evidence.
	seenSeqs = 8
)

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
	// best is the slot's record, kept without its decoded body: what the
	// state reads of the entry is in facts, and the rest is decoded again
	// from best when it is shown (heldEntry). Keeping every entry decoded
	// as well as encoded was a third of a 100,000-entry node's memory.
	best    *Record
	hash    Hash
	facts   entryFacts
	visible bool
	expired bool // dropped from the pool by Expire; the seq is remembered
	// rank orders the author's slots for the per-author limits, size is
	// the best record's encoded size, and over says the slot lies beyond
	// the limits (authorlimit.go).
	rank SlotID
	size int
	over bool
	// seen is the first record hash seen at each of the slot's newest
	// seqs, so an equivocation is caught whichever of its records came
	// first and whether or not a newer seq came in between. Older seqs are
	// forgotten (a replay of them is stale anyway), so a slot's memory does
	// not grow with every update.
	seen seenHashes
}

// entryFacts are the fields of a slot's entry that the state reads.
type entryFacts struct {
	seq             uint64
	issued, expires int64
	deleted         bool
}

func factsOf(e *Entry) entryFacts {
	return entryFacts{seq: e.Seq, issued: e.Issued, expires: e.Expires, deleted: e.Deleted}
}

// entry decodes the slot's entry again.
func (slot *entrySlot) entry() *Entry { return heldEntry(slot.best) }

// heldEntry decodes the entry of r, a record the state holds. It was
// decoded and checked in full when it was applied, and a held record never
// changes (Apply's contract), so only the decoding is done again; an error
// can only mean the record was changed in memory after it was applied.
func heldEntry(r *Record) *Entry {
	e := new(Entry)
	if err := unmarshalChecked(r.Body, e, false); err != nil {
		panic(fmt.Sprintf("directory: the held entry record %s no longer decodes (changed after Apply?): %v", r.Hash().Short(), err))
	}
	return e
}

// withoutBody is r as the state keeps it: for an entry, a copy that does
// not hold the decoded body (see entrySlot.best); anything else as it is.
func (r *Record) withoutBody() *Record {
	if r.Type != TypeEntry || (r.body == nil && r.facts == nil) {
		return r
	}
	kept := *r
	kept.body, kept.facts = nil, nil
	return &kept
}

// seenHashes is an entry slot's memory of first hashes per seq: at most
// seenSeqs pairs, nearly always one, so a slice (40 bytes a pair) rather
// than a map (about 300 bytes even for one pair; a third of a 100,000-entry
// directory's state was these maps).
type seenHashes []seqHash

type seqHash struct {
	seq  uint64
	hash Hash
}

func (s seenHashes) get(seq uint64) (Hash, bool) {
	for _, p := range s {
		if p.seq == seq {
			return p.hash, true
		}
	}
	return Hash{}, false
}

// with returns s remembering h at seq unless seq has a hash already, and
// forgetting the seqs that fall out of the newest seenSeqs below newest.
func (s seenHashes) with(seq uint64, h Hash, newest uint64) seenHashes {
	if _, ok := s.get(seq); !ok {
		s = append(s, seqHash{seq, h})
	}
	return slices.DeleteFunc(s, func(p seqHash) bool { return p.seq+seenSeqs <= newest })
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
	// SetAside lists those of Dropped that may still take effect: a
	// proposal or approval that waited for a charter version that is now
	// linked without naming any of its signers, while another charter of
	// that version may still be linked that does. The caller keeps them
	// aside, as records refused for a reason that may pass (MayPass), and
	// offers them again when governance changes.
	SetAside []*Record
}

// NewState returns an empty state for network net. now is the clock used
// for expiry and skew checks; nil means time.Now.
func NewState(net NetworkID, now func() time.Time) *State {
	if now == nil {
		now = time.Now
	}
	return &State{
		net:       net,
		now:       now,
		records:   map[Hash]*Record{},
		proposals: map[Hash]*proposal{},
		governance: map[RecordType]map[Hash]*proposal{
			TypeCharter: {}, TypeMembership: {}, TypeRevocation: {}, TypeEpoch: {},
		},
		waiting:            map[Hash]*proposal{},
		readers:            map[Hash]*readerGrant{},
		grantsByKey:        map[PublicKey]map[Hash]*readerGrant{},
		grantsByVoucher:    map[PublicKey]map[Hash]*readerGrant{},
		entries:            map[PublicKey]map[string]*entrySlot{},
		fits:               map[PublicKey]authorFit{},
		pages:              map[Hash]*heldPage{},
		sealsNot:           map[Hash]bool{},
		pendingEntries:     map[PublicKey]int{},
		pendingEntryBytes:  map[PublicKey]int{},
		revoked:            map[PublicKey]Hash{},
		linked:             map[uint64][]*Charter{},
		stewardRevocations: map[Hash]bool{},
		selfRevoked:        map[PublicKey]Hash{},
		selfRevocations:    map[Hash]bool{},
		stewardRevoked:     map[PublicKey]Hash{},
		voided:             map[Hash][]PublicKey{},
		members:            map[PublicKey]*proposal{},
		readerOf:           map[PublicKey][]PublicKey{},
		equivoc:            map[string]Equivocation{},
		index:              NewIndex(),
		limitsSettled:      Policy{}.authorLimitsOf(),
		heartbeats:         map[PublicKey]*heartbeatSlot{},
		evidence:           map[string]*evidenceSlot{},
	}
}

// Network returns the network this state belongs to.
func (s *State) Network() NetworkID { return s.net }

// Apply validates r against everything known and adds it. It returns
// ErrDuplicate (wrapped) for a record already held, and a *RejectError
// naming the reason for anything refused; a refused record changes nothing.
// The state keeps r (an entry as a copy without its decoded body, decoded
// again when it is shown), so r must not be changed afterwards.
func (s *State) Apply(r *Record) (Applied, error) {
	h, size := r.hashAndSize()
	// Records from Open or DecodeRecord were verified and decoded there;
	// doing it twice would cost a third of the receive path. Anything else,
	// or a decoded record changed since, is verified here.
	body := r.body
	if body == nil && r.facts != nil && r.verified == h {
		body = r.facts
	}
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
	if err := s.checkCommon(r, body, size); err != nil {
		return Applied{}, err
	}
	s.dropped, s.setAside, s.changed = nil, nil, false
	changed, err := s.add(r, h, body, size)
	changed = changed || s.changed
	dropped, setAside := s.dropped, s.setAside
	s.dropped, s.setAside, s.changed = nil, nil, false
	if err != nil {
		return Applied{}, err
	}
	if changed {
		s.digestSet = false
	}
	return Applied{Hash: h, Type: r.Type, Changed: changed, Dropped: dropped, SetAside: setAside}, nil
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
	// Every record is accepted against the protocol's hard limit only, not
	// the charter's max_record_bytes: a refusal cannot be undone, so
	// checking the current charter would make the state depend on whether
	// an amendment lowering it arrived first. Entries above the charter's
	// limit are accepted but not shown (outsidePolicy); other records above
	// it take effect, and honest nodes do not make them (they size epoch
	// pages, and refuse to publish, by the current charter).
	if n > MaxRecordBytes {
		return reject(r.Type, ErrTooLarge, "%d bytes, the protocol allows %d", n, MaxRecordBytes)
	}
	inner := body
	if a, ok := body.(*Approval); ok {
		inner, _ = decodeBody(a.Of, a.Proposal)
	}
	issued := issuedOf(inner)
	if limit := s.now().Add(p.ClockSkewBound()); time.Unix(issued, 0).After(limit) {
		return &RejectError{Type: r.Type, Reason: ErrFromFuture, Detail: "issued " + time.Unix(issued, 0).UTC().Format(time.RFC3339),
			NotBefore: time.Unix(issued, 0).Add(-p.ClockSkewBound())}
	}
	if err := s.checkLookahead(r.Type, inner); err != nil {
		return err
	}
	if r.Type == TypeEvidence {
		// Evidence proves itself, whoever reports it: refusing it from a
		// key revoked since would make what a node knows of a conflict
		// depend on the order of arrival.
		return nil
	}
	if r.Type == TypeEpochPage {
		// A page's authority is the epoch that lists its hash (addPage),
		// not its relayer's standing: a steward revoked after relaying a
		// rotation's pages must not take the rotation's key away.
		return nil
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
	// Of several refusals, one that may pass is reported: the record is
	// then offered again, and taken once that signer counts.
	var first error
	for _, sg := range r.Sigs {
		err := s.checkApprover(inner, sg.Key)
		if _, rev := s.revoked[sg.Key]; err == nil && rev && !countsRevokedSigners(inner) {
			err = ErrRevoked
		}
		if err == nil {
			return nil
		}
		if first == nil || MayPass(err) && !MayPass(first) {
			first = reject(r.Type, err, "signer %s", Fingerprint(sg.Key))
		}
	}
	return first
}

// countsRevokedSigners reports whether a proposal of b's kind may count
// the signatures of keys revoked since, so that such records are taken and
// weighed in recompute. Charter links are history, so revoking a steward
// never rolls back what came before the version its revocation names; a
// revoked steward's signature on a revocation counts when the revocation
// cites a version no later than its own revocation's (deriveRevocations).
// Memberships and epochs count only unrevoked stewards.
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
		return notStewardOf(cited)
	}
	return nil
}

// notStewardOf is the refusal of a signer that is a steward of no linked
// charter of version v. Version 1 is the genesis, the only one there can
// be, so that refusal is final. Any later version can gain a linked
// sibling whenever the stewards of the version before it sign another
// successor (a fork), and the signer may be a steward of that one: a
// final refusal would make what a node holds depend on which side it
// linked first (SECURITY.md open issue 4). So the refusal may pass: the
// state keeps nothing (its pool quotas are unchanged), and the caller
// keeps the record aside and offers it again when governance changes
// (node/parked.go), as for an epoch page of such a signer.
func notStewardOf(v uint64) error {
	if v >= 2 {
		return ErrPendingSignature
	}
	return ErrNotSteward
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
	case *Heartbeat:
		return b.Issued
	}
	return 0
}

// checkLookahead refuses proposals that cite a charter version, or number
// an epoch, so far beyond what this node knows that no honest network is
// there: they could never take effect, only wait in the pool for ever. A
// node that is merely behind refuses them for a passing reason and takes
// them at a later sync, once it has caught up.
func (s *State) checkLookahead(t RecordType, b Body) error {
	if e, ok := b.(*Epoch); ok {
		if cur := uint64(len(s.epochs)); e.Number > cur+epochLookahead {
			return reject(t, ErrUnknownCharter, "epoch %d is more than %d beyond the current epoch %d", e.Number, epochLookahead, cur)
		}
	}
	known := uint64(len(s.chain))
	if cited, _ := citedVersion(b); cited > known+charterLookahead {
		return reject(t, ErrUnknownCharter, "cites charter version %d, more than %d beyond the newest known (%d)", cited, charterLookahead, known)
	}
	return nil
}

func (s *State) add(r *Record, h Hash, body Body, n int) (bool, error) {
	switch b := body.(type) {
	case *Entry:
		return s.addEntry(r, h, b, n)
	case *Reader:
		return s.addGrant(r, h, b)
	case *EpochPage:
		return s.addPage(r, h, b)
	case *Heartbeat:
		return s.addHeartbeat(r, h, b)
	case *Evidence:
		return s.addEvidence(r, h, b)
	case *Approval:
		p, err := s.proposalFor(r.Network, b.Of, b.Proposal, nil)
		if err != nil {
			return false, err
		}
		if p.sigs[r.Sigs[0].Key] {
			return false, reject(r.Type, ErrDuplicate, "steward %s already approved %s", Fingerprint(r.Sigs[0].Key), p.id.Short())
		}
		// A self-revocation may come as its key's approval of it: the
		// same check as when it comes as a proposal.
		if err := s.checkSelfRevocation(r.Type, p.body, r.Sigs); err != nil {
			return false, err
		}
		if err := s.admitProposal(r.Type, p); err != nil {
			return false, err
		}
		s.records[h] = r
		p.sigs[r.Sigs[0].Key] = true
		p.records[h] = true
		s.proposalSigned(p)
		return s.settle(p), nil
	default: // Charter, Membership, Revocation, Epoch
		// b is r.Body decoded (bodies are not changed once decoded).
		p, err := s.proposalFor(r.Network, r.Type, r.Body, b)
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
		if err := s.checkSelfRevocation(r.Type, b, r.Sigs); err != nil {
			return false, err
		}
		if err := s.admitProposal(r.Type, p); err != nil {
			return false, err
		}
		s.records[h] = r
		for _, sg := range r.Sigs {
			p.sigs[sg.Key] = true
		}
		p.records[h] = true
		s.proposalSigned(p)
		return s.settle(p), nil
	}
}

// checkSelfRevocation refuses a revocation of a key this network does not
// know that the key itself signed (among sigs): a key that was never
// admitted, nor asked to be, has nothing to revoke, and a self-revocation
// of a fresh key, valid by itself and kept for good, is how a key holder
// would otherwise fill every pool. A node that has not yet heard of the
// key takes it later.
func (s *State) checkSelfRevocation(t RecordType, body Body, sigs []Signature) error {
	rv, ok := body.(*Revocation)
	if !ok || !slices.ContainsFunc(sigs, func(sg Signature) bool { return sg.Key == rv.Key }) {
		return nil
	}
	if _, done := s.revoked[rv.Key]; !done && !s.knownKey(rv.Key) {
		return reject(t, ErrPendingSignature, "revocation of key %s, which this network does not know", Fingerprint(rv.Key))
	}
	return nil
}

// admitProposal enters a new proposal in the indexes, within the quota for
// proposals that cite a charter not linked yet. It changes nothing when it
// refuses.
func (s *State) admitProposal(t RecordType, p *proposal) error {
	if _, known := s.proposals[p.id]; known {
		return nil
	}
	cited, cites := citedVersion(p.body)
	unlinked := cites && len(s.linked[cited]) == 0
	if unlinked && len(s.waiting) >= MaxWaitingProposals {
		return reject(t, ErrQuota, "%d proposals already wait for charters not known yet", len(s.waiting))
	}
	s.proposals[p.id] = p
	if unlinked {
		s.waiting[p.id] = p
	}
	if g := s.governance[p.typ]; g != nil {
		g[p.id] = p
	}
	return nil
}

// settle brings the view up to date after p gained signatures. A
// revocation its own key signed takes effect at once and needs no
// re-derivation unless the key had a standing that governance weighs.
func (s *State) settle(p *proposal) bool {
	if rv, ok := p.body.(*Revocation); ok && p.sigs[rv.Key] {
		s.selfRevocations[p.id] = true
		if old, done := s.selfRevoked[rv.Key]; !done || bytes.Compare(p.id[:], old[:]) < 0 {
			s.selfRevoked[rv.Key] = p.id
		}
		weighed := s.members[rv.Key] != nil || s.isStewardAnywhere(rv.Key)
		s.revokeKey(rv.Key, p.id)
		if len(p.sigs) > 1 {
			// Also signed by others: it may be a revocation by stewards
			// too, which takes the key's weight away from the version it
			// cites on. Were it left out of the governance map once the key
			// signed it, the holder of a revoked steward's key could sign
			// its own revocation to get its weight back.
			s.governance[TypeRevocation][p.id] = p
			return s.recompute()
		}
		// Valid by itself: kept out of the governance map, so junk
		// self-revocations cost recompute nothing (nor the next
		// derivation of revocations).
		delete(s.governance[TypeRevocation], p.id)
		delete(s.revDerived.dirty, p.id)
		if !weighed {
			return s.changed
		}
	}
	return s.recompute()
}

// citedVersion is the charter version whose stewards weigh proposal b.
func citedVersion(b Body) (uint64, bool) {
	switch b := b.(type) {
	case *Charter:
		return b.Version - 1, b.Version > 1
	case *Membership:
		return b.Charter, true
	case *Revocation:
		return b.Charter, b.Charter != 0
	case *Epoch:
		return b.Charter, true
	}
	return 0, false
}

// knownKey reports whether k has, or has asked for, a standing in the
// network that its revocation leaves in the pool: a steward, a membership
// proposal, a reader grant (held inert once k is revoked). Not what k
// signed alone (pending entries, grants it vouched): its revocation drops
// those, and a self-revocation that only they showed was refused at the
// next start, so that what a node held depended on whether it restarted.
func (s *State) knownKey(k PublicKey) bool {
	if s.members[k] != nil || len(s.grantsByKey[k]) > 0 || s.isStewardAnywhere(k) {
		return true
	}
	for _, p := range s.governance[TypeMembership] {
		if p.body.(*Membership).Org == k {
			return true
		}
	}
	return false
}

// proposalFor is the pool's proposal of type t with body raw, or a new
// one. decoded is raw decoded already, if the caller has it (nil if not):
// decoding a membership checks its KEM binding, a signature, again.
func (s *State) proposalFor(net NetworkID, t RecordType, raw []byte, decoded Body) (*proposal, error) {
	id := proposalID(net, t, raw)
	if p, ok := s.proposals[id]; ok {
		return p, nil
	}
	body := decoded
	if body == nil {
		var err error
		if body, err = decodeBody(t, raw); err != nil {
			return nil, err
		}
	}
	// Not entered in the pool yet: admitProposal does that once the
	// record carrying it is accepted.
	return &proposal{id: id, typ: t, body: body, raw: raw, sigs: map[PublicKey]bool{}, records: map[Hash]bool{}}, nil
}

// entrySlotName is the name of the slot of pub's entry id. Built in one
// allocation: a start builds 100,000 (the index snapshot's documents),
// and concatenating the key's hex was a fifth of decoding the snapshot.
func entrySlotName(pub PublicKey, id string) string {
	var buf [maxEntrySlotName]byte
	return string(appendEntrySlotName(buf[:0], pub, id))
}

const maxEntrySlotName = len("entry/") + 2*len(PublicKey{}) + 1 + 64

func appendEntrySlotName(b []byte, pub PublicKey, id string) []byte {
	b = append(b, "entry/"...)
	b = hex.AppendEncode(b, pub[:])
	b = append(b, '/')
	return append(b, id...)
}

// entrySlotID is SlotIDOf(entrySlotName(pub, id)) without building the
// name: applying an entry needs its slot's ID, and a start applies
// 100,000 of them.
func entrySlotID(pub PublicKey, id string) SlotID {
	var buf [len(slotDomain) + maxEntrySlotName]byte
	h := sha256.Sum256(appendEntrySlotName(append(buf[:0], slotDomain...), pub, id))
	return SlotID(h[:len(SlotID{})])
}

// addGrant applies a reader grant.
func (s *State) addGrant(r *Record, h Hash, b *Reader) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "a reader grant has one signer, its voucher")
	}
	_, inert := s.revoked[b.Key]
	if b.Expires != 0 && !s.now().Before(time.Unix(b.Expires, 0)) {
		return false, reject(r.Type, ErrExpired, "reader grant expired")
	}
	voucher := r.Sigs[0].Key
	if len(s.grantsByKey[voucher]) > 0 && s.members[voucher] == nil {
		return false, reject(r.Type, ErrNotMember, "voucher %s is a reader", Fingerprint(voucher))
	}
	if !s.activeMember(voucher) {
		if n := len(s.grantsByVoucher[voucher]); n >= MaxPendingGrantsPerKey {
			return false, reject(r.Type, ErrQuota, "voucher %s, not an admitted member, already has %d grants waiting", Fingerprint(voucher), n)
		}
		if s.pendingGrantsTotal >= MaxPendingGrants {
			return false, reject(r.Type, ErrQuota, "%d grants from vouchers not admitted already wait", s.pendingGrantsTotal)
		}
		s.pendingGrantsTotal++
	}
	g := &readerGrant{hash: h, voucher: voucher, body: b}
	s.records[h] = r
	s.readers[h] = g
	addTo(s.grantsByKey, b.Key, h, g)
	addTo(s.grantsByVoucher, voucher, h, g)
	// One key, one encapsulation key: every grant carries the reader's own
	// signature on its KEM key, so two that disagree mean the reader's key
	// signed two. That is the key holder's equivocation, shown to
	// stewards; Recipients then seals to neither.
	if inert {
		// A grant for a revoked key admits nobody, but is held as what
		// shows that the key was admitted (see revokeKey): refused, it
		// would leave this node without what lets it take the key's
		// self-revocation, which a node that got the grant first holds.
		return false, nil
	}
	s.noteKEMEquivocation(b.Key)
	s.rebuildReader(b.Key)
	return s.changed, nil
}

// noteKEMEquivocation derives the equivocation of reader key k from the
// grants for it in the pool: all of them when they name more than one KEM
// key. Derived afresh whenever a grant comes or goes, not noted pair by
// pair as they arrive: with three grants, or one dropped since (its
// voucher revoked), which pair a node saw first depends on the order.
func (s *State) noteKEMEquivocation(k PublicKey) {
	slot := "kem/" + k.Hex()
	var kemKey []byte
	var hashes []Hash
	split := false
	for h, g := range s.grantsByKey[k] {
		hashes = append(hashes, h)
		if kemKey == nil {
			kemKey = g.body.KEM
		} else if !bytes.Equal(kemKey, g.body.KEM) {
			split = true
		}
	}
	old, had := s.equivoc[slot]
	if !split {
		if had {
			delete(s.equivoc, slot)
			s.changed = true
		}
		return
	}
	slices.SortFunc(hashes, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) })
	if had && slices.Equal(old.Hashes, hashes) {
		return
	}
	s.equivoc[slot] = Equivocation{Key: k, Slot: slot, Hashes: hashes}
	s.changed = true
}

func addTo(m map[PublicKey]map[Hash]*readerGrant, k PublicKey, h Hash, g *readerGrant) {
	if m[k] == nil {
		m[k] = map[Hash]*readerGrant{}
	}
	m[k][h] = g
}

// rebuildReader re-derives which vouchers currently admit reader key k.
func (s *State) rebuildReader(k PublicKey) {
	var vouchers []PublicKey
	if _, rev := s.revoked[k]; !rev {
		now := s.now()
		for _, g := range s.grantsByKey[k] {
			if !s.activeMember(g.voucher) || g.body.Expires != 0 && !now.Before(time.Unix(g.body.Expires, 0)) {
				continue
			}
			if !slices.Contains(vouchers, g.voucher) {
				vouchers = append(vouchers, g.voucher)
			}
		}
	}
	slices.SortFunc(vouchers, compareKeys)
	if slices.Equal(vouchers, s.readerOf[k]) {
		return
	}
	if len(vouchers) == 0 {
		delete(s.readerOf, k)
	} else {
		s.readerOf[k] = vouchers
	}
	s.changed = true
}

func (s *State) addEntry(r *Record, h Hash, e *Entry, n int) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "an entry has one signer, its publisher")
	}
	pub := r.Sigs[0].Key
	if !s.now().Before(time.Unix(e.Expires, 0)) {
		return false, reject(r.Type, ErrExpired, "entry %s expired %s", e.ID, time.Unix(e.Expires, 0).UTC().Format(time.RFC3339))
	}
	if len(s.grantsByKey[pub]) > 0 && s.members[pub] == nil {
		return false, reject(r.Type, ErrNotMember, "signer %s is a reader; readers cannot publish", Fingerprint(pub))
	}
	if s.isStewardAnywhere(pub) && s.members[pub] == nil {
		return false, reject(r.Type, ErrNotMember, "signer %s is a steward, not a member organization", Fingerprint(pub))
	}
	slots := s.entries[pub]
	cur := slots[e.ID]
	pending := !s.activeMember(pub)
	if pending && (cur == nil || cur.expired) {
		if n := s.pendingEntries[pub]; n >= MaxPendingEntriesPerKey {
			return false, reject(r.Type, ErrQuota, "signer %s, not an admitted member, already has %d entries waiting", Fingerprint(pub), n)
		}
		if s.pendingEntriesTotal >= MaxPendingEntries {
			return false, reject(r.Type, ErrQuota, "%d entries from keys not admitted already wait", s.pendingEntriesTotal)
		}
	}
	if pending {
		if err := s.checkPendingBytes(r.Type, pub, cur, n); err != nil {
			return false, err
		}
	}
	var seen seenHashes
	if cur != nil {
		if cur.hash == h {
			return false, reject(r.Type, ErrDuplicate, "entry %s seq %d", e.ID, e.Seq)
		}
		// Cloned: cur keeps its own memory until this version replaces it.
		seen = slices.Clone(cur.seen)
		first, seenSeq := seen.get(e.Seq)
		switch {
		case seenSeq && first != h:
			// Equivocation: the same key signed two versions with one seq.
			// At the current seq the lower hash wins everywhere, so every
			// node picks the same; an older seq is evidence only.
			name := entrySlotName(pub, e.ID)
			known := slices.Contains(s.equivoc[name].Hashes, h)
			s.noteEquivocation(pub, name, first, h)
			if e.Seq < cur.facts.seq || bytes.Compare(h[:], cur.hash[:]) > 0 {
				if known {
					return false, reject(r.Type, ErrDuplicate, "equivocating entry %s already recorded", e.ID)
				}
				return false, nil // new evidence; the view is unchanged
			}
		case seenSeq && e.Seq == cur.facts.seq:
			// h lost an equivocation at the current seq earlier.
			return false, reject(r.Type, ErrDuplicate, "equivocating entry %s already recorded", e.ID)
		case seenSeq:
			return false, reject(r.Type, ErrStale, "entry %s seq %d, have seq %d", e.ID, e.Seq, cur.facts.seq)
		case e.Seq < cur.facts.seq:
			// Refused, but remembered: if another record with this seq
			// arrives, that is equivocation whether the two came before
			// or after the newer seq.
			if e.Seq+seenSeqs > cur.facts.seq {
				cur.seen = seen.with(e.Seq, h, cur.facts.seq)
			}
			return false, reject(r.Type, ErrStale, "entry %s seq %d, have seq %d", e.ID, e.Seq, cur.facts.seq)
		}
	}
	fit, fits := s.fitAfter(pub, cur, e, n)
	if !pending && !fits {
		if err := s.checkAuthorRoom(r.Type, pub, e, n); err != nil {
			return false, err
		}
	}
	if cur != nil {
		if !cur.expired {
			delete(s.records, cur.hash)
			s.dropped = append(s.dropped, cur.hash)
		}
	}
	if slots == nil {
		slots = map[string]*entrySlot{}
		s.entries[pub] = slots
	}
	seen = slices.Clip(seen.with(e.Seq, h, e.Seq))
	r = r.withoutBody()
	slot := &entrySlot{best: r, hash: h, facts: factsOf(e), seen: seen, size: n, rank: entrySlotID(pub, e.ID)}
	wasVisible := cur != nil && cur.visible
	if cur != nil {
		// settleAuthor refreshes the slots whose standing changed; this
		// one starts from where its old version stood.
		slot.over, slot.visible = cur.over, cur.visible
	}
	slots[e.ID] = slot
	s.records[h] = r
	if fits && !pending {
		// Nothing of the author's is held before or after: no other slot
		// changes standing, and nothing is pending.
		s.fits[pub] = fit
	} else {
		s.settleAuthor(pub)
	}
	slot.visible = s.activeMember(pub) && !e.Deleted && !slot.over
	if slot.visible {
		s.indexPut(pub, e.ID, r, e)
	} else if wasVisible {
		s.indexRemove(pub, e.ID)
	}
	return wasVisible || slot.visible, nil
}

// refreshEntry puts slot into or out of the search index when its
// publisher's standing changed.
func (s *State) refreshEntry(pub PublicKey, id string, slot *entrySlot) {
	visible := s.activeMember(pub) && !slot.facts.deleted && !slot.expired && !slot.over
	if visible == slot.visible {
		return
	}
	slot.visible = visible
	s.changed = true
	if visible {
		s.indexPut(pub, id, slot.best, nil)
	} else {
		s.indexRemove(pub, id)
	}
}

// indexPut and indexRemove keep the search index in step with the
// slots, except while the state loads without one (LoadingUnindexed):
// RestoreIndex makes it whole afterwards. The index takes them at its
// next read, or when the node calls FlushIndex once it has let the record
// on: a search never misses them, and a hop does not wait for them. An e
// that is nil or only the facts of an entry not decoded (VouchedAll) is
// decoded from r then.
func (s *State) indexPut(pub PublicKey, id string, r *Record, e *Entry) {
	if !s.unindexed {
		s.index.putLater(entrySlotName(pub, id), pub, r, e)
	}
}

func (s *State) indexRemove(pub PublicKey, id string) {
	if !s.unindexed {
		s.index.removeLater(entrySlotName(pub, id))
	}
}

// FlushIndex makes the search index take what the records applied since
// changed. A search does it first anyway; a node calls it after letting
// a gossiped record on, so that the work is done before the next search
// and off the path of the record's next hop.
func (s *State) FlushIndex() { s.index.Flush() }

func (s *State) noteEquivocation(k PublicKey, slot string, a, b Hash) {
	s.equivoc[slot] = mergeEquivocation(s.equivoc[slot], k, slot, a, b)
}

// mergeEquivocation adds the records a and b to eq, a copy.
func mergeEquivocation(eq Equivocation, k PublicKey, slot string, a, b Hash) Equivocation {
	eq.Key, eq.Slot = k, slot
	eq.Hashes = slices.Clone(eq.Hashes)
	for _, h := range []Hash{a, b} {
		if !slices.Contains(eq.Hashes, h) {
			eq.Hashes = append(eq.Hashes, h)
		}
	}
	slices.SortFunc(eq.Hashes, func(x, y Hash) int { return bytes.Compare(x[:], y[:]) })
	return eq
}

func (s *State) activeMember(k PublicKey) bool {
	_, rev := s.revoked[k]
	return !rev && s.members[k] != nil
}

func (s *State) isStewardAnywhere(k PublicKey) bool {
	for _, cs := range s.linked {
		for _, c := range cs {
			if c.isSteward(k) {
				return true
			}
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

// revokeKey makes k's revocation effective: revocation is for good, so
// everything k signed alone or vouched for leaves the pool, and the keys
// it vouched for are re-derived.
//
// The grants for k stay, inert (rebuildReader admits no revoked key): they
// are what shows that k was admitted, without which its self-revocation
// (ceiba revoke --self, a lost device's revocation certificate) is a
// stranger's, refused by a node that restarts or syncs from scratch
// (checkSelfRevocation), and the key read again there (found by the lead
// engineer). They are no more than the grants members made, so they need
// no quota of their own; like any grant, they go with their voucher's
// revocation, and with them a self-revocation nothing else shows
// (forgetSelfRevocation).
func (s *State) revokeKey(k PublicKey, id Hash) {
	if old, done := s.revoked[k]; done {
		if bytes.Compare(id[:], old[:]) < 0 {
			s.revoked[k] = id
		}
		return
	}
	s.revoked[k] = id
	s.changed = true
	s.dropHeartbeat(k)
	s.dropEvidenceOf(k)
	for name, slot := range s.entries[k] {
		if slot.visible {
			s.indexRemove(k, name)
		}
		if !slot.expired {
			delete(s.records, slot.hash)
			s.dropped = append(s.dropped, slot.hash)
		}
	}
	s.pendingEntriesTotal -= s.pendingEntries[k]
	delete(s.pendingEntries, k)
	s.pendingEntryBytesTotal -= s.pendingEntryBytes[k]
	delete(s.pendingEntryBytes, k)
	delete(s.entries, k)
	delete(s.fits, k)
	affected := map[PublicKey]bool{k: true}
	wasActive := s.members[k] != nil
	for h, g := range s.grantsByVoucher[k] {
		affected[g.body.Key] = true
		s.dropGrant(h, g, !wasActive)
	}
	for r := range affected {
		if _, self := s.selfRevoked[r]; self && r != k && !s.knownKey(r) {
			s.forgetSelfRevocation(r)
		}
		s.rebuildReader(r)
	}
	// A revoked key's equivocations are settled, and a node that learnt of
	// the revocation first refused the records that would show them.
	for slot, eq := range s.equivoc {
		if eq.Key == k {
			delete(s.equivoc, slot)
		}
	}
}

// forgetSelfRevocation drops the revocations of k that k signed alone,
// once the revocation of its voucher took the grants that showed k was
// admitted: a node that learns of the voucher's revocation first refuses
// the grant, and then k's self-revocation (checkSelfRevocation), so kept
// here they would make what a node holds, and whether k is revoked,
// depend on the order of arrival. Such a key can read nothing: it has no
// grant left. k stays revoked by any other revocation.
func (s *State) forgetSelfRevocation(k PublicKey) {
	var kept []Hash
	for id := range s.selfRevocations {
		p := s.proposals[id]
		if p.body.(*Revocation).Key != k {
			continue
		}
		if len(p.sigs) > 1 {
			kept = append(kept, id) // weighed as a revocation by stewards too
			continue
		}
		delete(s.selfRevocations, id)
		delete(s.proposals, id)
		delete(s.waiting, id)
		for h := range p.records {
			delete(s.records, h)
			s.dropped = append(s.dropped, h)
		}
	}
	delete(s.selfRevoked, k)
	for _, id := range kept {
		if old, ok := s.selfRevoked[k]; !ok || bytes.Compare(id[:], old[:]) < 0 {
			s.selfRevoked[k] = id
		}
	}
	id, self := s.selfRevoked[k]
	if by, ok := s.stewardRevoked[k]; ok && (!self || bytes.Compare(by[:], id[:]) < 0) {
		id, self = by, true
	}
	if self {
		s.revoked[k] = id
		return
	}
	delete(s.revoked, k)
	s.changed = true
}

func (s *State) dropGrant(h Hash, g *readerGrant, pending bool) {
	if _, ok := s.readers[h]; !ok {
		return
	}
	delete(s.readers, h)
	delete(s.records, h)
	s.dropped = append(s.dropped, h)
	delete(s.grantsByKey[g.body.Key], h)
	if len(s.grantsByKey[g.body.Key]) == 0 {
		delete(s.grantsByKey, g.body.Key)
	}
	delete(s.grantsByVoucher[g.voucher], h)
	if len(s.grantsByVoucher[g.voucher]) == 0 {
		delete(s.grantsByVoucher, g.voucher)
	}
	if _, rev := s.revoked[g.body.Key]; !rev {
		s.noteKEMEquivocation(g.body.Key)
	}
	if pending {
		s.pendingGrantsTotal--
	}
}

// standingChanged revisits what depends on k being an active member: the
// readers it vouches for, the visibility of its entries, and whether they
// count against the pending quotas.
func (s *State) standingChanged(k PublicKey, nowActive bool) {
	for _, g := range s.grantsByVoucher[k] {
		s.rebuildReader(g.body.Key)
	}
	n := len(s.grantsByVoucher[k])
	if nowActive {
		s.pendingGrantsTotal -= n
	} else {
		s.pendingGrantsTotal += n
	}
	s.settleAuthor(k)
}

// recompute re-derives the governance view from the proposals stewards
// sign, then revisits only the keys whose standing changed. Each layer
// depends only on the ones before it, so the result is a function of the
// pool: charter chain → revocations → members → epochs, then readers and
// entries of the keys affected.
func (s *State) recompute() bool {
	before := s.governanceView()
	wasActive := make(map[PublicKey]bool, len(s.members))
	for k := range s.members {
		wasActive[k] = s.activeMember(k)
	}

	// Forks of the charter and of epochs are facts about the pool, noted
	// afresh below; kept from an earlier recompute they would depend on the
	// order in which the pool grew.
	for slot, eq := range s.equivoc {
		if eq.Key == (PublicKey{}) {
			delete(s.equivoc, slot)
		}
	}

	// Linked charters: every charter reachable from the genesis through
	// links that count the stewards of the previous version whether or
	// not they were revoked since, so linked only grows with the pool and
	// what is checked against it (approvers, revocations) never has to be
	// undone. The chain itself is derived after the revocations
	// (deriveChain), where a revoked steward loses its weight.
	s.chain = s.chain[:0]
	clear(s.linked)
	var byPrev = map[Hash][]*proposal{}
	var genesis []*proposal
	for _, p := range sortedByID(s.governance[TypeCharter]) {
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
	}
	s.pruneWaiting()

	revokedFrom := s.deriveRevocations()

	s.deriveChain(genesis, byPrev, revokedFrom)

	// Members: Threshold unrevoked stewards of the cited charter.
	// The newest membership per organization wins; between two of the same
	// second, the lower proposal ID, so no order of arrival matters.
	clear(s.members)
	for _, p := range s.governance[TypeMembership] {
		m := p.body.(*Membership)
		if _, rev := s.revoked[m.Org]; rev {
			continue
		}
		c := s.charterAt(m.Charter)
		if c == nil || s.approvals(p, c, countsRevokedSigners(m)) < int(c.Threshold) {
			continue
		}
		cur := s.members[m.Org]
		if cur == nil {
			s.members[m.Org] = p
			continue
		}
		ci := cur.body.(*Membership).Issued
		if m.Issued > ci || m.Issued == ci && bytes.Compare(p.id[:], cur.id[:]) < 0 {
			s.members[m.Org] = p
		}
	}

	s.deriveEpochs()
	s.settleAuthorLimits()

	// Readers and entries of every key whose standing changed.
	for k, was := range wasActive {
		if now := s.activeMember(k); now != was {
			s.standingChanged(k, now)
		}
	}
	for k := range s.members {
		if _, known := wasActive[k]; !known && s.activeMember(k) {
			s.standingChanged(k, true)
		}
	}
	return s.changed || !s.sameGovernance(before)
}

// deriveRevocations derives which keys are revoked. A key is revoked by a
// revocation it signed itself (for good: settle), or by one that Threshold
// stewards of a linked charter of the cited version V signed, not counting
// a steward that a revocation by stewards citing a version below V
// revoked: a revoked steward loses its weight on revocations citing later
// versions, as on charter links, so it and one more compromised steward no
// longer have the threshold to revoke honest keys. Whether a revocation
// citing V is valid thus depends only on revocations citing lower
// versions, so deriving them in ascending cited version is well founded and
// the result is a function of the pool; revocations citing the same version
// do not take weight from each other (two that revoke each other's signers
// both stand: both keys are revoked, the safe side).
// Any linked charter of the cited version counts, not only the chain's:
// were a fork that wins later to drop the cited version from the chain,
// keys would come back from revocation.
//
// Unlike before, a key revoked by stewards can come back: a revocation
// citing an earlier version that arrives later can take the weight of
// enough of its revocation's signers. That is the price of the rule (a
// revocation made with a revoked steward's help must not stand); such a
// revocation is noted in voided so that stewards re-sign it, and what the
// key signed, dropped meanwhile, comes back from peers by sync.
// Deriving them all costs a sort and a pass over them; a recompute after a
// record that could not change the result derives only what is new
// (deriveNewRevocations).
//
// It returns, for each key a revocation by stewards revoked, the lowest
// version such a revocation cites.
func (s *State) deriveRevocations() (revokedAt map[PublicKey]uint64) {
	touched, ok := s.deriveNewRevocations()
	if !ok {
		touched = s.deriveAllRevocations()
	}
	// A key already revoked only takes the lowest ID; the others are
	// revoked in key order, so that what revoking one does to the next
	// does not depend on the map's order. Sorting only those (nearly
	// always one) instead of every revoked key: at 1,000 revocations by
	// stewards the sort was a fifth of applying one more.
	lowest := func(k PublicKey) Hash {
		id := s.stewardRevoked[k]
		if self, ok := s.selfRevoked[k]; ok && bytes.Compare(self[:], id[:]) < 0 {
			id = self
		}
		return id
	}
	var fresh []PublicKey
	for _, k := range touched {
		if _, done := s.revoked[k]; done {
			s.revoked[k] = lowest(k)
		} else {
			fresh = append(fresh, k)
		}
	}
	slices.SortFunc(fresh, compareKeys)
	for _, k := range fresh {
		if _, done := s.revoked[k]; done {
			s.revoked[k] = lowest(k)
			continue
		}
		s.revokeKey(k, lowest(k))
	}
	if verifyRevocationDerivation != nil {
		verifyRevocationDerivation(s)
	}
	return s.revDerived.revokedAt
}

// deriveAllRevocations derives every revocation in the pool, and brings
// back the keys no revocation stands for any more. It returns the keys
// revoked by stewards.
func (s *State) deriveAllRevocations() (revokedBy []PublicKey) {
	d := s.weighAllRevocations()
	// A key no revocation stands for any more comes back: its standing is
	// re-derived below (members) and here (readers). What it signed was
	// dropped from the pool when it was revoked; peers offer it again. Only
	// keys revoked by stewards can come back, and there are few of them
	// (each took Threshold stewards): self-revoked keys, which any key
	// holder can make many of, are not looked at.
	for k := range s.stewardRevoked {
		if _, still := d.revokedBy[k]; still {
			continue
		}
		if id, self := s.selfRevoked[k]; self {
			s.revoked[k] = id
			continue
		}
		delete(s.revoked, k)
		s.changed = true
		// Its grants, held inert, admit it again.
		s.noteKEMEquivocation(k)
		s.rebuildReader(k)
	}
	s.stewardRevoked, s.stewardRevocations, s.voided = d.revokedBy, d.valid, d.voided
	s.revDerived = revocationsDerived{whole: true, revokedAt: d.revokedAt, maxCited: d.maxCited, wholes: s.revDerived.wholes + 1}
	return slices.Collect(maps.Keys(d.revokedBy))
}

// deriveNewRevocations is deriveAllRevocations when what changed since
// cannot change what was derived: most recomputes follow a record that
// is not a revocation by stewards nor a charter (a membership, a reader's
// grant, an approval of an epoch), and nearly every revocation cites the
// current charter version. Deriving the whole pool again for each cost
// every node about a microsecond per revocation held, on every governance
// record before forwarding it (BenchmarkApplyRevocation: 1 ms at 1,000).
// It weighs only the revocation proposals new or signed since
// (revDerived.dirty), and reports false, having changed nothing, when
// that would not give what deriveAllRevocations gives: a charter changed
// or a proposal left the pool, or one of them cites a version below one
// already derived (it could take weight from revocations citing later
// versions). Revocations citing the same version take no weight from each
// other, and a valid one stays valid with more signatures, so the rest of
// the derivation stands.
func (s *State) deriveNewRevocations() (touched []PublicKey, ok bool) {
	c := &s.revDerived
	if !c.whole {
		return nil, false
	}
	var revs []*proposal
	for id, p := range c.dirty {
		rv := p.body.(*Revocation)
		if len(s.linked[rv.Charter]) == 0 || s.stewardRevocations[id] {
			continue // weighs nothing yet, or valid already and stays so
		}
		if rv.Charter < c.maxCited {
			return nil, false
		}
		revs = append(revs, p)
	}
	sortRevocations(revs)
	for _, p := range revs {
		delete(s.voided, p.id)
	}
	d := &revocationDerivation{revokedAt: c.revokedAt, revokedBy: s.stewardRevoked, valid: s.stewardRevocations, voided: s.voided, maxCited: c.maxCited}
	touched = s.weighRevocations(d, revs)
	c.maxCited = d.maxCited
	clear(c.dirty)
	return touched, true
}

// revocationsDerived is what the last derivation of revocations started
// from, for deriveNewRevocations.
type revocationsDerived struct {
	// whole is set once every revocation has been derived, and cleared by
	// a change that needs them all derived again (revocationsChanged).
	whole     bool
	revokedAt map[PublicKey]uint64
	// maxCited is the highest version a derived revocation cites.
	maxCited uint64
	// dirty holds the revocation proposals new or signed since.
	dirty map[Hash]*proposal
	// wholes counts the derivations of the whole pool (tests).
	wholes int
}

// proposalSigned notes that p entered the pool or gained signatures.
func (s *State) proposalSigned(p *proposal) {
	switch p.typ {
	case TypeRevocation:
		if s.revDerived.dirty == nil {
			s.revDerived.dirty = map[Hash]*proposal{}
		}
		s.revDerived.dirty[p.id] = p
	case TypeCharter:
		s.revDerived.whole = false
	}
}

// proposalDropped notes that p left the pool.
func (s *State) proposalDropped(p *proposal) {
	if p.typ == TypeRevocation || p.typ == TypeCharter {
		s.revDerived.whole = false
	}
}

// verifyRevocationDerivation, when set (tests), checks every derivation
// against one of the whole pool.
var verifyRevocationDerivation func(*State)

// revocationDerivation is what the revocations by stewards derive to.
type revocationDerivation struct {
	revokedAt map[PublicKey]uint64 // by stewards: the lowest cited version
	revokedBy map[PublicKey]Hash   // ... and the lowest valid proposal ID
	valid     map[Hash]bool        // stewardRevocations
	voided    map[Hash][]PublicKey
	maxCited  uint64
}

// weighAllRevocations derives every revocation proposal in the pool,
// without changing the state.
func (s *State) weighAllRevocations() *revocationDerivation {
	revs := slices.Collect(maps.Values(s.governance[TypeRevocation]))
	sortRevocations(revs)
	d := &revocationDerivation{
		revokedAt: make(map[PublicKey]uint64, len(revs)),
		revokedBy: make(map[PublicKey]Hash, len(revs)),
		valid:     map[Hash]bool{},
		voided:    map[Hash][]PublicKey{},
	}
	s.weighRevocations(d, revs)
	return d
}

// sortRevocations sorts revocation proposals in ascending cited version,
// and by ID within a version: the order they are derived in.
func sortRevocations(revs []*proposal) {
	slices.SortFunc(revs, func(a, b *proposal) int {
		if c := cmp.Compare(a.body.(*Revocation).Charter, b.body.(*Revocation).Charter); c != 0 {
			return c
		}
		return bytes.Compare(a.id[:], b.id[:])
	})
}

// weighRevocations derives revs, sorted by sortRevocations and citing no
// version below one d holds, into d: each is weighed against the keys d
// has revoked at versions below the one it cites. It returns the keys
// whose revocation it made or lowered.
func (s *State) weighRevocations(d *revocationDerivation, revs []*proposal) (touched []PublicKey) {
	for _, p := range revs {
		rv := p.body.(*Revocation)
		cs := s.linked[rv.Charter]
		if len(cs) == 0 {
			// Version 0 (a key's own), or one no charter links yet: it
			// weighs nothing, and does not count in maxCited, or anyone
			// could make every later derivation whole with one revocation
			// citing a far version. Its version linking is a charter
			// change, which derives everything again.
			continue
		}
		d.maxCited = max(d.maxCited, rv.Charter)
		valid, lost := false, []PublicKey(nil)
		for _, c := range cs {
			n, all := revocationWeight(p, c, d.revokedAt, rv.Charter)
			if n >= int(c.Threshold) {
				valid = true
				break
			}
			if all >= int(c.Threshold) && lost == nil {
				for k := range p.sigs {
					if v, rev := d.revokedAt[k]; rev && v < rv.Charter && c.isSteward(k) {
						lost = append(lost, k)
					}
				}
			}
		}
		if !valid {
			if lost != nil {
				slices.SortFunc(lost, compareKeys)
				d.voided[p.id] = lost
			}
			continue
		}
		// Revocations citing the same version take no weight from each
		// other: a key revoked at rv.Charter is weighed as unrevoked by
		// the others that cite it (revocationWeight), so it is marked at
		// once.
		d.valid[p.id] = true
		k := rv.Key
		if _, ok := d.revokedAt[k]; !ok {
			d.revokedAt[k] = rv.Charter
		}
		if old, ok := d.revokedBy[k]; !ok || bytes.Compare(p.id[:], old[:]) < 0 {
			d.revokedBy[k] = p.id
			touched = append(touched, k)
		}
	}
	return touched
}

// revocationWeight counts p's signers that are stewards of c: n those not
// revoked by stewards at a version below cited, all of them with those.
func revocationWeight(p *proposal, c *Charter, revokedAt map[PublicKey]uint64, cited uint64) (n, all int) {
	for k := range p.sigs {
		if !c.isSteward(k) {
			continue
		}
		all++
		if v, rev := revokedAt[k]; !rev || v >= cited {
			n++
		}
	}
	return n, all
}

// deriveChain follows the chain from the genesis. Unlike linked, it does
// not count on a link citing version N the signature of a steward that a
// revocation by stewards citing a version up to N revoked: revoking a
// compromised steward at the current version takes its weight from every
// later amendment, so one more compromise does not give its holders the
// threshold over the charter. Links citing earlier versions still count
// it (history: a revocation never rolls back what came before the version
// it names). The chain is derived whole from the pool on every recompute,
// and what depends on it (members, epochs) after it, so it may move back
// when such a revocation arrives. Linked counts revoked signers, so it
// only grows; revocations take weight away by the same rule
// (deriveRevocations).
//
// revokedFrom is deriveRevocations': for each key revoked by stewards, the
// lowest version such a revocation cites.
func (s *State) deriveChain(genesis []*proposal, byPrev map[Hash][]*proposal, revokedFrom map[PublicKey]uint64) {
	if len(genesis) == 0 {
		return
	}
	weight := func(q *proposal, prev *Charter) int {
		n := 0
		for k := range q.sigs {
			if v, rev := revokedFrom[k]; prev.isSteward(k) && (!rev || v > prev.Version) {
				n++
			}
		}
		return n
	}
	s.chain = append(s.chain, genesis[0])
	for {
		tc := s.chain[len(s.chain)-1].body.(*Charter)
		var next []*proposal
		for _, q := range byPrev[s.chain[len(s.chain)-1].id] {
			if q.body.(*Charter).Version == tc.Version+1 && weight(q, tc) >= int(tc.Threshold) {
				next = append(next, q)
			}
		}
		if len(next) == 0 {
			return
		}
		if len(next) > 1 {
			s.noteEquivocation(PublicKey{}, fmt.Sprintf("charter/%d", tc.Version+1), next[0].id, next[1].id)
			next = s.forkWinner(next, func(q *proposal) int { return weight(q, tc) })
			if next == nil {
				return // frozen at the last common version
			}
		}
		s.chain = append(s.chain, next[0])
	}
}

// forkWinner settles a fork of the chain after charter prev: the successor
// signed by strictly more of the previous version's stewards (that count,
// by weight) than every other, or none.
// No rule that picks among equals can hold: those who sign both
// candidates can also vary theirs until any deterministic choice (the
// lower proposal ID, as before) favours it. A tie freezes the chain at
// prev, reported as equivocation, until more stewards sign one side.
func (s *State) forkWinner(next []*proposal, weight func(*proposal) int) []*proposal {
	var win *proposal
	best, tie := -1, false
	for _, q := range next {
		switch n := weight(q); {
		case n > best:
			win, best, tie = q, n, false
		case n == best:
			tie = true
		}
	}
	if tie {
		return nil
	}
	return []*proposal{win}
}

// deriveEpochs builds the epoch chain: epoch 1, then each number only
// after the one before it, so no single signer can jump the count or make
// it wrap. One epoch per number; two valid ones are equivocation and the
// weightier wins (epochForkWinner).
func (s *State) deriveEpochs() {
	s.epochs = s.epochs[:0]
	byNumber := map[uint64][]*proposal{}
	for _, p := range sortedByID(s.governance[TypeEpoch]) {
		n := p.body.(*Epoch).Number
		byNumber[n] = append(byNumber[n], p)
	}
	// The revocations the chain's epochs named so far: each justifies one
	// rotation by one steward, not one more each time it is named again
	// after another.
	named := map[Hash]bool{}
	for n := uint64(1); len(byNumber[n]) > 0; n++ {
		var prev *Epoch
		if n > 1 {
			prev = s.epochs[n-2].body.(*Epoch)
		}
		var valid []*proposal
		for _, p := range byNumber[n] {
			if s.epochValid(p, prev, named) {
				valid = append(valid, p)
			}
		}
		if len(valid) == 0 {
			break
		}
		win := valid[0]
		if len(valid) > 1 {
			s.noteEquivocation(PublicKey{}, fmt.Sprintf("epoch/%d", n), valid[0].id, valid[1].id)
			win = s.epochForkWinner(valid)
		}
		s.epochs = append(s.epochs, win)
		if after := win.body.(*Epoch).After; after != (Hash{}) {
			named[after] = true
		}
	}
}

// epochForkWinner picks among valid epochs of one number, sorted by
// proposal ID: one its charter's threshold approved over any lone
// rotation, then the one more unrevoked stewards of its charter approved,
// then the lowest proposal ID. Lowest ID alone let one steward, after any
// revocation by stewards, sign a rotation sealed to itself and vary its
// random rotation ID until it won over the rotation the threshold
// approved and nodes had adopted: every other steward, organization and
// reader lost the current read key (found in review, session 40). Weight
// is what one steward cannot forge; an honest lone rotation gains it as
// co-stewards approve it, the attacker's does not.
// Unlike the charter's forkWinner a tie does not freeze: an epoch number
// left unsettled would keep the revoked key reading, so ties fall to the
// lowest ID as before (both sides then carry the same weight of stewards).
func (s *State) epochForkWinner(valid []*proposal) *proposal {
	rank := func(p *proposal) int {
		e := p.body.(*Epoch)
		c := s.charterAt(e.Charter)
		n := s.approvals(p, c, countsRevokedSigners(e))
		if n >= int(c.Threshold) {
			n += 1 << 16 // more than any count of stewards (64 at most)
		}
		return n
	}
	win, best := valid[0], rank(valid[0])
	for _, p := range valid[1:] {
		if r := rank(p); r > best {
			win, best = p, r
		}
	}
	return win
}

// epochValid says whether p may follow prev (nil for epoch 1): Threshold
// unrevoked stewards of its charter, or one of them right after a
// revocation by stewards. "Right after" is what keeps one revocation from
// justifying a string of rotations by one steward: the revocation is no
// older than prev, p no older than the revocation, no earlier epoch of the
// chain named it (named; comparing with prev alone let one steward
// alternate between two revocations of the same second and rotate without
// end), and p seals nothing to the revoked key: every page of p is held
// and none has a package for that key.
func (s *State) epochValid(p *proposal, prev *Epoch, named map[Hash]bool) bool {
	e := p.body.(*Epoch)
	c := s.charterAt(e.Charter)
	if c == nil {
		return false
	}
	n := s.approvals(p, c, countsRevokedSigners(e))
	if n >= int(c.Threshold) {
		return true
	}
	if n < 1 || prev == nil || !s.stewardRevocations[e.After] || named[e.After] {
		return false
	}
	rv, ok := s.proposals[e.After].body.(*Revocation)
	if !ok || rv.Issued < prev.Issued || e.Issued < rv.Issued {
		return false
	}
	return s.completeWithout(p.id, e, rv.Key)
}

// pruneWaiting drops proposals that waited for a charter version now
// linked but that none of whose signers can weigh. Citing version 1 they
// can never take effect. Citing a later version they could, once a
// sibling of it that names a signer links (notStewardOf): their records
// leave the pool all the same (the waiting quota must free up, and an
// arrival in that state is refused), and are listed in setAside for the
// caller to offer again, so that the node holds what it would have held
// had they arrived after the sibling.
func (s *State) pruneWaiting() {
	for id, p := range s.waiting {
		cited, _ := citedVersion(p.body)
		cs := s.linked[cited]
		if len(cs) == 0 {
			continue
		}
		delete(s.waiting, id)
		counts := false
		for k := range p.sigs {
			if slices.ContainsFunc(cs, func(c *Charter) bool { return c.isSteward(k) }) {
				counts = true
				break
			}
		}
		if rv, ok := p.body.(*Revocation); ok && p.sigs[rv.Key] {
			counts = true
		}
		if counts {
			continue
		}
		delete(s.proposals, id)
		delete(s.governance[p.typ], id)
		s.proposalDropped(p)
		for h := range p.records {
			if cited >= 2 {
				s.setAside = append(s.setAside, s.records[h])
			}
			delete(s.records, h)
			s.dropped = append(s.dropped, h)
		}
	}
}

// governanceView is the part of the view recompute derives whole, kept by
// proposal ID to tell whether a recompute changed it. It is compared, not
// hashed: hashing every member twice per recompute was half of applying a
// governance record (BenchmarkApplyGovernanceWithJunk), which every node
// does before it forwards a revocation.
type governanceView struct {
	chain, epochs []Hash
	members       map[PublicKey]Hash
}

func (s *State) governanceView() governanceView {
	v := governanceView{
		chain:   make([]Hash, len(s.chain)),
		epochs:  make([]Hash, len(s.epochs)),
		members: make(map[PublicKey]Hash, len(s.members)),
	}
	for i, p := range s.chain {
		v.chain[i] = p.id
	}
	for i, p := range s.epochs {
		v.epochs[i] = p.id
	}
	for k, p := range s.members {
		v.members[k] = p.id
	}
	return v
}

// sameGovernance says whether the state's view is still v.
func (s *State) sameGovernance(v governanceView) bool {
	if len(s.chain) != len(v.chain) || len(s.epochs) != len(v.epochs) || len(s.members) != len(v.members) {
		return false
	}
	for i, p := range s.chain {
		if p.id != v.chain[i] {
			return false
		}
	}
	for i, p := range s.epochs {
		if p.id != v.epochs[i] {
			return false
		}
	}
	for k, p := range s.members {
		if id, ok := v.members[k]; !ok || id != p.id {
			return false
		}
	}
	return true
}

func sortedByID(m map[Hash]*proposal) []*proposal {
	ps := make([]*proposal, 0, len(m))
	for _, p := range m {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *proposal) int { return bytes.Compare(a.id[:], b.id[:]) })
	return ps
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
	now := s.now().Unix()
	s.mu.RLock()
	if s.digestValid(now) {
		d := s.digest
		s.mu.RUnlock()
		return d
	}
	s.mu.RUnlock()
	// Entries expire by the clock, so a digest is reused only while
	// nothing changed and no entry it counts has expired since (and the
	// clock has not gone back past the time it was computed at): at
	// 100,000 entries computing one takes 60 ms, and every status
	// request, sync hello and API poll asks for it.
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digestLocked(now).Digest
}

// digestLocked is the digest stamp, computed afresh unless the kept one
// is valid at now; s.mu is held for writing.
func (s *State) digestLocked(now int64) DigestStamp {
	if !s.digestValid(now) {
		s.digest, s.digestUntil = s.viewDigest()
		s.digestAt, s.digestSet = now, true
	}
	return DigestStamp{Digest: s.digest, At: s.digestAt, Until: s.digestUntil}
}

// A DigestStamp is a digest as Digest computed it, at At (Unix seconds),
// counting entries of which the first to expire expires at Until: it is
// the digest of a state holding the same records from At until Until.
type DigestStamp struct {
	Digest    Hash
	At, Until int64
}

// HeldRecords returns the hashes of every record the state holds, the
// entries apart, and the stamp of its digest, as of one moment: a node's
// start-up checkpoint lists the one and keeps the other (AdoptDigest).
func (s *State) HeldRecords() (others, entries []Hash, stamp DigestStamp) {
	now := s.now().Unix()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, r := range s.records {
		if r != nil && r.Type == TypeEntry { // nil: a retired page
			entries = append(entries, h)
		} else {
			others = append(others, h)
		}
	}
	return others, entries, s.digestLocked(now)
}

// AdoptDigest makes stamp the state's kept digest, as if Digest had
// computed it at stamp.At, provided the state holds exactly the records of
// the state it was taken of (HeldRecords): count of them, each one listed.
// It reports whether it did. It is for a node's start, which applies the
// records its checkpoint lists and would otherwise compute the digest
// again (80 ms at 100,000 entries, for the first status request): a state
// holding the same records has the same digest lines whatever the order
// they came in (PROTOCOL.md §6; what lets nodes compare digests at all),
// and the stamp is used only while valid, as a computed one is (from At
// until an entry it counts expires, and until a record or Expire changes
// the state). Call it before Expire, which then drops it if the time
// since changed anything.
func (s *State) AdoptDigest(stamp DigestStamp, count int, listed func(Hash) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.records) != count {
		return false
	}
	for h := range s.records {
		if !listed(h) {
			return false
		}
	}
	s.digest, s.digestAt, s.digestUntil, s.digestSet = stamp.Digest, stamp.At, stamp.Until, true
	return true
}

func (s *State) digestValid(now int64) bool {
	return s.digestSet && s.digestAt <= now && now < s.digestUntil
}

// viewDigest is the digest, and the earliest expiry among the entries it
// counts.
func (s *State) viewDigest() (Hash, int64) {
	h := sha256.New()
	// Lines are gathered in a buffer and hashed a block at a time: eight
	// small writes per entry to the hash cost more than the hashing.
	buf := make([]byte, 0, 64<<10)
	until := s.digestLines(func(parts ...[]byte) {
		for _, p := range parts {
			buf = binary.BigEndian.AppendUint32(buf, uint32(len(p)))
			buf = append(buf, p...)
		}
		if len(buf) >= 60<<10 {
			h.Write(buf)
			buf = buf[:0]
		}
	})
	h.Write(buf)
	var out Hash
	h.Sum(out[:0])
	return out, until
}

// digestLines writes the digest's lines (PROTOCOL.md §6, Digest), each as
// its parts, to line: the digest is their hash, and the test vectors list
// them so that a second implementation sees which line differs. It
// returns the earliest expiry among the entries it lists (MaxInt64 for
// none): the lines stay the same until then, unless a record changes
// them. The parts are valid only during the call.
func (s *State) digestLines(line func(parts ...[]byte)) (until int64) {
	until = math.MaxInt64
	now := s.now().Unix()
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
	s.pageDigest(line)
	// The entry lines are most of the digest (every status request and
	// sync hello after a change asks for it): the slots are gathered in
	// one pass over each author's map, sorted by ID, and written through
	// one reused set of parts, not a fresh one per line.
	type namedSlot struct {
		id   string
		slot *entrySlot
	}
	var (
		slots []namedSlot
		parts [4][]byte
		id    []byte
	)
	parts[0] = []byte("entry")
	for _, k := range sortedKeys(s.entries) {
		slots = slices.Grow(slots[:0], len(s.entries[k]))
		for name, slot := range s.entries[k] {
			if slot.visible && now < slot.facts.expires {
				slots = append(slots, namedSlot{name, slot})
			}
		}
		slices.SortFunc(slots, func(a, b namedSlot) int { return strings.Compare(a.id, b.id) })
		parts[1] = k[:]
		for _, ns := range slots {
			id = append(id[:0], ns.id...)
			parts[2], parts[3] = id, ns.slot.hash[:]
			line(parts[:]...)
			until = min(until, ns.slot.facts.expires)
		}
	}
	return until
}

func sortedKeys[V any](m map[PublicKey]V) []PublicKey {
	ks := make([]PublicKey, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, compareKeys)
	return ks
}
