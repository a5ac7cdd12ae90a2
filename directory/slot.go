package directory

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
)

// A slot is the logical place a record occupies: the DHT stores one record
// per slot (the best, by Better), and manifests list slots so a node can
// fetch a whole directory from the DHT alone.
//
//	charter/<version>            a charter version
//	proposal/<proposal id>       a membership, revocation or epoch, however signed
//	approval/<proposal id>/<key> one steward's approval
//	reader/<reader key>/<voucher key>
//	entry/<publisher key>/<entry id>
//	manifest/<signer key>/<page>
//	epoch/<number>/<rotation hex>/<page index>   an epoch page, whoever relays it
//	heartbeat/<steward key>
//	evidence/<equivocating key>, evidence/charter/<version>, evidence/epoch/<number>
func (r *Record) Slot() (string, error) {
	body, err := r.DecodeBody()
	if err != nil {
		return "", err
	}
	signer := r.Sigs[0].Key
	switch b := body.(type) {
	case *Charter:
		return fmt.Sprintf("charter/%d", b.Version), nil
	case *Membership, *Revocation, *Epoch:
		return "proposal/" + r.ProposalID().String(), nil
	case *Approval:
		return "approval/" + r.ProposalID().String() + "/" + signer.Hex(), nil
	case *Reader:
		return "reader/" + b.Key.Hex() + "/" + signer.Hex(), nil
	case *Entry:
		return entrySlotName(signer, b.ID), nil
	case *Manifest:
		return fmt.Sprintf("manifest/%s/%d", signer.Hex(), b.Page), nil
	case *EpochPage:
		return pageSlot(b), nil
	case *Heartbeat:
		return "heartbeat/" + signer.Hex(), nil
	case *Evidence:
		return evidenceSlotOf(b.First), nil
	}
	return "", reject(r.Type, ErrUnknownType, "")
}

// SlotID is the short, fixed-size name of a slot used in manifests and
// blinded DHT keys.
type SlotID [16]byte

// slotDomain separates slot IDs from every other hash.
const slotDomain = "ceiba slot v1\x00"

// SlotIDOf hashes a slot name.
func SlotIDOf(slot string) SlotID {
	h := sha256.Sum256([]byte(slotDomain + slot))
	var id SlotID
	copy(id[:], h[:])
	return id
}

// Better reports whether a should replace b in their shared slot: the
// higher entry seq or manifest date, the proposal with more signatures,
// and on a tie the lower hash, so every node keeps the same one.
func Better(a, b *Record) bool {
	ba, errA := a.DecodeBody()
	bb, errB := b.DecodeBody()
	if errA != nil || errB != nil {
		return errB != nil && errA == nil
	}
	switch x := ba.(type) {
	case *Entry:
		if y, ok := bb.(*Entry); ok && x.Seq != y.Seq {
			return x.Seq > y.Seq
		}
	case *Manifest:
		if y, ok := bb.(*Manifest); ok && x.Issued != y.Issued {
			return x.Issued > y.Issued
		}
	case *Heartbeat:
		if y, ok := bb.(*Heartbeat); ok && x.Issued != y.Issued {
			return x.Issued > y.Issued
		}
	default:
		if len(a.Sigs) != len(b.Sigs) {
			return len(a.Sigs) > len(b.Sigs)
		}
	}
	ha, hb := a.Hash(), b.Hash()
	return bytes.Compare(ha[:], hb[:]) < 0
}

// Manifest lists the slots a member or steward knows, so a node that holds
// only an invite can fetch the whole directory from the DHT. It is a hint,
// never authority: every record fetched through it is validated as usual.
// Manifests do not enter the State.
type Manifest struct {
	Page   uint32   `cbor:"1,keyasint"`
	Pages  uint32   `cbor:"2,keyasint"`
	Issued int64    `cbor:"3,keyasint"`
	Slots  []SlotID `cbor:"4,keyasint"`
}

// ManifestPageSize is how many slots one manifest page lists.
const ManifestPageSize = 4000

func (*Manifest) RecordType() RecordType { return TypeManifest }

func (m *Manifest) check() error {
	if m.Pages == 0 || m.Page >= m.Pages {
		return fmt.Errorf("page %d of %d", m.Page, m.Pages)
	}
	if len(m.Slots) > ManifestPageSize {
		return errors.New("too many slots in one page")
	}
	return checkTime("issued", m.Issued)
}
