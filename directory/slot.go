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
//
// Heads, when present, name the record the signer holds in each slot
// (Heads[i] for Slots[i]), so a node that already holds it does not read
// the slot again: without them, a node cut off from its peers re-read
// every slot of the directory at each DHT walk. A page without heads (made
// before they existed) means "read every slot".
type Manifest struct {
	Page   uint32   `cbor:"1,keyasint"`
	Pages  uint32   `cbor:"2,keyasint"`
	Issued int64    `cbor:"3,keyasint"`
	Slots  []SlotID `cbor:"4,keyasint"`
	Heads  []Head   `cbor:"5,keyasint,omitempty"`
}

// ManifestPageSize is how many slots one manifest page lists at most.
const ManifestPageSize = 4000

// Head names a record by the first 16 bytes of its hash. A manifest's
// signer could list a head that collides with a record a node holds only
// by finding a second preimage of 128 bits, and even then it would only
// make that node skip one read of a slot that sync still carries.
type Head [16]byte

// HeadOf is the head of the record with hash h.
func HeadOf(h Hash) Head {
	var hd Head
	copy(hd[:], h[:])
	return hd
}

// SlotHead is one line of a manifest: a slot and the record its signer
// holds there.
type SlotHead struct {
	Slot SlotID
	Head Head
}

// manifestOverhead bounds a manifest record's bytes besides its slots and
// heads: the envelope, one signature and the other fields.
const manifestOverhead = 512

// ManifestSlotsPerPage is how many slots (with their heads) one manifest
// page lists so that it encodes within maxRecordBytes, the current
// charter's max_record_bytes: DHT servers store nothing larger, and a
// page only its signer holds is no use while the signer is offline. At the
// default 64 KiB a page lists 1,912 slots.
func ManifestSlotsPerPage(maxRecordBytes int) int {
	const perSlot = 2 * (1 + 16) // a 16-byte string each, slot and head
	return max(1, min(ManifestPageSize, (maxRecordBytes-manifestOverhead)/perSlot))
}

func (*Manifest) RecordType() RecordType { return TypeManifest }

func (m *Manifest) check() error {
	if m.Pages == 0 || m.Page >= m.Pages {
		return fmt.Errorf("page %d of %d", m.Page, m.Pages)
	}
	if len(m.Slots) > ManifestPageSize {
		return errors.New("too many slots in one page")
	}
	if len(m.Heads) != 0 && len(m.Heads) != len(m.Slots) {
		return fmt.Errorf("%d heads for %d slots", len(m.Heads), len(m.Slots))
	}
	return checkTime("issued", m.Issued)
}
