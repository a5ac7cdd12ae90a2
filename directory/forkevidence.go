package directory

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
)

// Evidence of a fork: two charter amendments of one version, or two epochs
// of one number, each with the signatures that gave it threshold. Without
// it a node knows of a fork only while both proposals, with enough of
// their approvals, are in its pool; with it the fork stays shown after a
// side loses an approval record, on a node that got only one side, and
// after a restart (evidence is pooled, stored, synced and put in the DHT).
//
// Each side is one record of the proposal's type whose signatures are the
// proposal record's and its approvals' together: an approval's signature
// is a signature on the proposal itself (Record.AddSignature), so they
// verify as one record's.

// forkShape checks what needs no state: a and b (verified, the lower hash
// first) propose different bodies for one fork point.
func forkShape(a, b *Record) error {
	if bytes.Equal(a.Body, b.Body) {
		return errors.New("the two sides propose the same body: no fork")
	}
	switch x := a.body.(type) {
	case *Charter:
		y := b.body.(*Charter)
		if x.Version < 2 {
			return errors.New("a charter fork is of an amendment: version 1 is a network's genesis")
		}
		if x.Version != y.Version || x.Previous != y.Previous {
			return errors.New("the two charters amend different versions: no fork")
		}
	case *Epoch:
		if x.Number != b.body.(*Epoch).Number {
			return errors.New("the two epochs have different numbers: no fork")
		}
	}
	return nil
}

// checkForkSides checks each side of a fork against the linked charter of
// the version it cites: threshold stewards of it signed the side. A side
// citing a charter not linked here waits (ErrUnknownCharter, as a proposal
// would); a side without that threshold is refused, so one real side and
// one made up is no fork (for an epoch side citing version 2 or later, a
// refusal that may pass: a sibling of that version on which the side has
// the threshold may still be linked, notStewardOf). Signers revoked since still count, as they do on
// the links themselves: what they signed then is the fork.
func (s *State) checkForkSides(sides ...*Record) error {
	for _, r := range sides {
		if err := s.forkSideWeighs(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) forkSideWeighs(r *Record) error {
	signed := func(c *Charter) bool {
		n := 0
		for _, sg := range r.Sigs {
			if c.isSteward(sg.Key) {
				n++
			}
		}
		return n >= int(c.Threshold)
	}
	switch b := r.body.(type) {
	case *Charter:
		p := s.proposals[b.Previous]
		if p == nil || !slices.ContainsFunc(s.linked[b.Version-1], func(c *Charter) bool { return c == p.body }) {
			return reject(TypeEvidence, ErrUnknownCharter, "fork of charter %d: the version it amends (%s) is not linked here", b.Version, b.Previous.Short())
		}
		if !signed(p.body.(*Charter)) {
			return reject(TypeEvidence, ErrNotSteward, "fork of charter %d: side %s lacks the threshold of version %d's stewards", b.Version, r.ProposalID().Short(), b.Version-1)
		}
	case *Epoch:
		if cur := uint64(len(s.epochs)); b.Number > cur+epochLookahead {
			return reject(TypeEvidence, ErrUnknownCharter, "fork of epoch %d, more than %d beyond the current epoch %d", b.Number, epochLookahead, cur)
		}
		cs := s.linked[b.Charter]
		if len(cs) == 0 {
			return reject(TypeEvidence, ErrUnknownCharter, "fork of epoch %d: charter %d is not known here", b.Number, b.Charter)
		}
		if !slices.ContainsFunc(cs, signed) {
			// Passing from charter 2 on: a sibling of it that the side's
			// signers reach threshold on may still be linked.
			return reject(TypeEvidence, notStewardOf(b.Charter), "fork of epoch %d: side %s lacks the threshold of every linked charter %d's stewards", b.Number, r.ProposalID().Short(), b.Charter)
		}
	}
	return nil
}

// ForkEvidence builds, signed by reporter, evidence of each fork of the
// charter or of epochs this state sees and holds no evidence of: a node
// that notes a fork publishes it, so the fork stays shown everywhere
// (State.Equivocations) whatever happens to the two proposals later.
func (s *State) ForkEvidence(reporter *Identity) []*Record {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Record
	for _, slot := range slices.Sorted(maps.Keys(s.equivoc)) {
		eq := s.equivoc[slot]
		if eq.Key != (PublicKey{}) || !strings.HasPrefix(slot, "charter/") && !strings.HasPrefix(slot, "epoch/") {
			continue
		}
		if s.evidence["evidence/"+slot] != nil || len(eq.Hashes) < 2 {
			continue
		}
		a, b := s.forkSide(eq.Hashes[0]), s.forkSide(eq.Hashes[1])
		if a == nil || b == nil || s.checkForkSides(a, b) != nil {
			continue // a side made valid by one steward after a revocation: no threshold to show
		}
		if ev, err := NewEvidence(a, b, reporter); err == nil {
			out = append(out, ev)
		}
	}
	return out
}

// forkSide is proposal id as one record carrying every signature the pool
// holds for it, decoded again so that it is checked like any other.
func (s *State) forkSide(id Hash) *Record {
	p := s.proposals[id]
	if p == nil {
		return nil
	}
	r := &Record{Version: FormatVersion, Type: p.typ, Network: s.net, Body: p.raw}
	for h := range p.records {
		if held := s.records[h]; held != nil {
			for _, sg := range held.Sigs {
				r.putSig(sg)
			}
		}
	}
	out, err := DecodeRecord(r.Encode())
	if err != nil {
		return nil // cannot happen: each signature was verified when its record came
	}
	return out
}
