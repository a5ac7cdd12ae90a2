package directory

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
)

// Evidence carries the two conflicting records of an equivocation, so any
// node can verify the conflict again: after a restart, or having been
// offline when it happened, or behind a rotation (evidence is pooled,
// stored and resealed like every record). Without it a node remembers an
// equivocation only in memory, and only if both records reached it. Two
// kinds of conflict are evidence:
//   - two entries one key signed with one ID and seq (the key equivocated
//     in slot entry/<key>/<id>);
//   - two reader grants for one reader key naming different KEM keys, each
//     KEM key signed by the reader's key (which therefore signed two:
//     slot kem/<key>), whoever vouched for each;
//   - a fork: two charter amendments of one version (slot charter/<v>) or
//     two epochs of one number (slot epoch/<n>), each side one record of
//     the proposal carrying the signatures that gave it the threshold of a
//     linked charter of the version it cites (forkevidence.go). That part
//     needs the state, so such evidence waits (ErrUnknownCharter) until the
//     cited charter is linked, and a side without that threshold (one
//     side forged) is refused.
//
// First and Second are the two records' canonical encodings, the lower
// record hash first, so one conflict has one body. Nothing smaller lets a
// node check both signatures; the record may therefore be larger than the
// charter's max_record_bytes, which, like every record, it is not checked
// against: only the protocol's MaxRecordBytes bounds it.
type Evidence struct {
	First  []byte `cbor:"1,keyasint"`
	Second []byte `cbor:"2,keyasint"`
}

func (*Evidence) RecordType() RecordType { return TypeEvidence }

func (e *Evidence) check() error {
	_, _, err := e.conflict()
	return err
}

// conflict decodes and verifies both records and checks that they are a
// conflict of one of the kinds above, in canonical order.
func (e *Evidence) conflict() (a, b *Record, err error) {
	if a, err = DecodeRecord(e.First); err != nil {
		return nil, nil, fmt.Errorf("first record: %v", err)
	}
	if b, err = DecodeRecord(e.Second); err != nil {
		return nil, nil, fmt.Errorf("second record: %v", err)
	}
	if a.Network != b.Network {
		return nil, nil, errors.New("the two records belong to different networks")
	}
	ha, hb := a.Hash(), b.Hash()
	if bytes.Compare(ha[:], hb[:]) >= 0 {
		return nil, nil, errors.New("records must differ, the lower hash first")
	}
	switch {
	case a.Type == TypeEntry && b.Type == TypeEntry:
		if len(a.Sigs) != 1 || len(b.Sigs) != 1 || a.Sigs[0].Key != b.Sigs[0].Key {
			return nil, nil, errors.New("the two entries are not signed by one and the same key")
		}
		ea, eb := a.body.(*Entry), b.body.(*Entry)
		if ea.ID != eb.ID || ea.Seq != eb.Seq {
			return nil, nil, errors.New("the two entries differ in ID or seq: no conflict")
		}
	case a.Type == TypeReader && b.Type == TypeReader:
		// Each grant's KEM key carries the reader key's signature
		// (checked at decoding); the vouchers may differ.
		if len(a.Sigs) != 1 || len(b.Sigs) != 1 {
			return nil, nil, errors.New("a reader grant has one signer")
		}
		ra, rb := a.body.(*Reader), b.body.(*Reader)
		if ra.Key != rb.Key {
			return nil, nil, errors.New("the two grants admit different reader keys: no conflict")
		}
		if bytes.Equal(ra.KEM, rb.KEM) {
			return nil, nil, errors.New("the two grants name the same KEM key: no conflict")
		}
	case a.Type == TypeCharter && b.Type == TypeCharter || a.Type == TypeEpoch && b.Type == TypeEpoch:
		if err := forkShape(a, b); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, errors.New("evidence covers two entries, two reader grants, two charters or two epochs")
	}
	return a, b, nil
}

// equivocator is the key a conflict shows equivocating, and the slot it
// is reported in.
// A fork has no one equivocating key (the zero key): its slot is the fork
// point.
func equivocator(a *Record) (PublicKey, string) {
	switch b := a.body.(type) {
	case *Reader:
		return b.Key, "kem/" + b.Key.Hex()
	case *Charter:
		return PublicKey{}, fmt.Sprintf("charter/%d", b.Version)
	case *Epoch:
		return PublicKey{}, fmt.Sprintf("epoch/%d", b.Number)
	}
	return a.Sigs[0].Key, entrySlotName(a.Sigs[0].Key, a.body.(*Entry).ID)
}

// Equivocator returns the key that r, an entry or a reader grant, would
// show equivocating in a conflict: an entry's signer, a grant's reader
// key. A node holding evidence against it reports no further conflict.
func Equivocator(r *Record) (PublicKey, bool) {
	body, err := r.DecodeBody()
	if err != nil || len(r.Sigs) != 1 {
		return PublicKey{}, false
	}
	switch b := body.(type) {
	case *Entry:
		return r.Sigs[0].Key, true
	case *Reader:
		return b.Key, true
	}
	return PublicKey{}, false
}

// NewEvidence builds the evidence record for two conflicting records
// (entries, reader grants, or the two sides of a fork: State.ForkEvidence),
// signed by reporter.
func NewEvidence(a, b *Record, reporter *Identity) (*Record, error) {
	ha, hb := a.Hash(), b.Hash()
	if bytes.Compare(ha[:], hb[:]) > 0 {
		a, b = b, a
	}
	return NewRecord(a.Network, &Evidence{First: a.Encode(), Second: b.Encode()}, reporter)
}

// evidenceSlotName is the slot of the evidence against key k: one piece
// per equivocating key, whatever it signed. One proof is all stewards need
// to act, and a slot per conflict would let a member that equivocates
// again and again (any two variants of any entry make a new conflict) make
// every node store evidence without end.
func evidenceSlotName(k PublicKey) string { return "evidence/" + k.Hex() }

// evidenceSlotOf is the slot of an evidence record whose first conflicting
// record is raw: evidence/<key> for a key's equivocation (Equivocator),
// evidence/charter/<v> or evidence/epoch/<n> for a fork. Slot is asked only
// of records that passed their checks; one that does not decode gets the
// zero key's slot.
func evidenceSlotOf(raw []byte) string {
	r, err := DecodeRecord(raw)
	if err != nil {
		return evidenceSlotName(PublicKey{})
	}
	if r.Type == TypeCharter || r.Type == TypeEpoch {
		_, slot := equivocator(r)
		return "evidence/" + slot
	}
	k, _ := Equivocator(r)
	return evidenceSlotName(k)
}

// HasEvidenceAgainst reports whether the state holds evidence that k
// equivocated: a node that finds another conflict of k's need not report it.
func (s *State) HasEvidenceAgainst(k PublicKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.evidence[evidenceSlotName(k)]
	return ok
}

type evidenceSlot struct {
	hash    Hash
	signer  PublicKey // the equivocating key
	slot    string    // the slot it equivocated in (entry/… or kem/…)
	a, b    Hash      // the two records
	pending bool      // counted against MaxPendingEvidence
}

// MaxPendingEvidence bounds the evidence a node keeps against keys that
// are not admitted members when it arrives: anyone can make a fresh key
// equivocate, and a member's conflicts are the ones stewards act on.
const MaxPendingEvidence = 256

// addEvidence applies evidence of an equivocation. It is accepted from
// any key: its content proves itself, and there is one slot per
// equivocating key (the lower record hash wins), so neither a reporter nor
// the equivocator can make it grow. It does not depend on the equivocator's standing, which can come
// and go as governance arrives, so every node holds the same evidence
// whatever the order; a revoked key's conflicts are settled
// (State.revokeKey). Equivocations lists what it shows.
func (s *State) addEvidence(r *Record, h Hash, b *Evidence) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "evidence has one signer, its reporter")
	}
	a, c, err := b.conflict()
	if err != nil {
		return false, reject(r.Type, ErrInvalid, "%v", err)
	}
	if a.Network != r.Network {
		return false, reject(r.Type, ErrWrongNetwork, "evidence of another network's records")
	}
	k, slot := equivocator(a)
	ha, hc := a.Hash(), c.Hash()
	name := evidenceSlotName(k)
	fork := a.Type == TypeCharter || a.Type == TypeEpoch
	if fork {
		if err := s.checkForkSides(a, c); err != nil {
			return false, err
		}
		// A fork is shown by its two proposals, as deriveChain and
		// deriveEpochs report it.
		name, ha, hc = "evidence/"+slot, a.ProposalID(), c.ProposalID()
	} else if _, rev := s.revoked[k]; rev {
		return false, reject(r.Type, ErrRevoked, "equivocating key %s is revoked already", Fingerprint(k))
	}
	cur := s.evidence[name]
	if cur != nil && bytes.Compare(cur.hash[:], h[:]) <= 0 {
		if fork {
			return false, reject(r.Type, ErrStale, "evidence of the fork at %s is held already", slot)
		}
		return false, reject(r.Type, ErrStale, "evidence against %s is held already", Fingerprint(k))
	}
	// A fork's sides carry the threshold of real stewards: only stewards
	// can make fork evidence, so it counts against no quota.
	pending := !fork && !s.activeMember(k)
	if cur != nil {
		pending = cur.pending
	} else if pending && s.pendingEvidence >= MaxPendingEvidence {
		return false, reject(r.Type, ErrQuota, "%d pieces of evidence against keys not admitted already held", s.pendingEvidence)
	}
	if cur != nil {
		delete(s.records, cur.hash)
		s.dropped = append(s.dropped, cur.hash)
	} else if pending {
		s.pendingEvidence++
	}
	s.evidence[name] = &evidenceSlot{hash: h, signer: k, slot: slot, a: ha, b: hc, pending: pending}
	s.records[h] = r
	return false, nil
}

// dropEvidenceOf forgets the evidence against k, once k is revoked.
func (s *State) dropEvidenceOf(k PublicKey) {
	for name, ev := range s.evidence {
		if ev.signer == k {
			delete(s.records, ev.hash)
			s.dropped = append(s.dropped, ev.hash)
			delete(s.evidence, name)
			if ev.pending {
				s.pendingEvidence--
			}
		}
	}
}

// equivocationsLocked is every equivocation known: those seen directly
// and those held evidence shows.
func (s *State) equivocationsLocked() map[string]Equivocation {
	if len(s.evidence) == 0 {
		return s.equivoc
	}
	out := maps.Clone(s.equivoc)
	for _, ev := range s.evidence {
		out[ev.slot] = mergeEquivocation(out[ev.slot], ev.signer, ev.slot, ev.a, ev.b)
	}
	return out
}

// Conflicting returns the pooled record that r equivocates with: for an
// entry, the one of the same signer, ID and seq; for a reader grant, one
// for the same reader key naming another KEM key. A node that sees such a
// conflict builds evidence from the two (NewEvidence).
func (s *State) Conflicting(r *Record) (*Record, bool) {
	if len(r.Sigs) != 1 || r.Type != TypeEntry && r.Type != TypeReader {
		return nil, false
	}
	body, err := r.DecodeBody()
	if err != nil {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if g, ok := body.(*Reader); ok {
		if _, rev := s.revoked[g.Key]; rev {
			return nil, false // a revoked key's conflicts are settled
		}
		for oh, og := range s.grantsByKey[g.Key] {
			if !bytes.Equal(og.body.KEM, g.KEM) {
				return s.records[oh], s.records[oh] != nil
			}
		}
		return nil, false
	}
	e := body.(*Entry)
	slot := s.entries[r.Sigs[0].Key][e.ID]
	if slot == nil || slot.expired || slot.facts.seq != e.Seq || slot.hash == r.Hash() {
		return nil, false
	}
	return slot.best, true
}
