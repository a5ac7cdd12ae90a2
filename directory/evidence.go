package directory

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
)

// Evidence carries the two conflicting records of an equivocation (one key
// signed two different entries with one ID and seq), so any node can
// verify the conflict again: after a restart, or having been offline when
// it happened, or behind a rotation (evidence is pooled, stored and
// resealed like every record). Without it a node remembers an
// equivocation only in memory, and only if both versions reached it.
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
// conflict: entries, each signed by the same one key, same ID and seq,
// different records, in canonical order.
func (e *Evidence) conflict() (a, b *Record, err error) {
	if a, err = DecodeRecord(e.First); err != nil {
		return nil, nil, fmt.Errorf("first record: %v", err)
	}
	if b, err = DecodeRecord(e.Second); err != nil {
		return nil, nil, fmt.Errorf("second record: %v", err)
	}
	if a.Type != TypeEntry || b.Type != TypeEntry {
		return nil, nil, errors.New("evidence covers two entries")
	}
	if a.Network != b.Network {
		return nil, nil, errors.New("the two records belong to different networks")
	}
	if len(a.Sigs) != 1 || len(b.Sigs) != 1 || a.Sigs[0].Key != b.Sigs[0].Key {
		return nil, nil, errors.New("the two records are not signed by one and the same key")
	}
	ha, hb := a.Hash(), b.Hash()
	if bytes.Compare(ha[:], hb[:]) >= 0 {
		return nil, nil, errors.New("records must differ, the lower hash first")
	}
	ea, eb := a.body.(*Entry), b.body.(*Entry)
	if ea.ID != eb.ID || ea.Seq != eb.Seq {
		return nil, nil, errors.New("the two entries differ in ID or seq: no conflict")
	}
	return a, b, nil
}

// NewEvidence builds the evidence record for two conflicting entries,
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

// signer0 is the first signer of an encoded record, the zero key if it
// does not decode (Slot is asked only of records that passed their checks).
func signer0(raw []byte) PublicKey {
	r, err := DecodeRecord(raw)
	if err != nil || len(r.Sigs) == 0 {
		return PublicKey{}
	}
	return r.Sigs[0].Key
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
	slot    string    // the entry slot it equivocated in
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
	k := a.Sigs[0].Key
	if _, rev := s.revoked[k]; rev {
		return false, reject(r.Type, ErrRevoked, "equivocating key %s is revoked already", Fingerprint(k))
	}
	ha, hc := a.Hash(), c.Hash()
	name := evidenceSlotName(k)
	cur := s.evidence[name]
	if cur != nil && bytes.Compare(cur.hash[:], h[:]) <= 0 {
		return false, reject(r.Type, ErrStale, "evidence against %s is held already", Fingerprint(k))
	}
	pending := !s.activeMember(k)
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
	s.evidence[name] = &evidenceSlot{hash: h, signer: k, slot: entrySlotName(k, a.body.(*Entry).ID), a: ha, b: hc, pending: pending}
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

// Conflicting returns the pooled entry that r equivocates with: same
// signer, ID and seq, another record. A node that sees r lose (or win)
// such a conflict builds evidence from the two (NewEvidence).
func (s *State) Conflicting(r *Record) (*Record, bool) {
	if r.Type != TypeEntry || len(r.Sigs) != 1 {
		return nil, false
	}
	body, err := r.DecodeBody()
	if err != nil {
		return nil, false
	}
	e := body.(*Entry)
	s.mu.RLock()
	defer s.mu.RUnlock()
	slot := s.entries[r.Sigs[0].Key][e.ID]
	if slot == nil || slot.expired || slot.entry.Seq != e.Seq || slot.hash == r.Hash() {
		return nil, false
	}
	return slot.best, true
}
