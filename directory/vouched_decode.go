package directory

import (
	"encoding/binary"
	"math"
)

// decodeVouchedEntry reads an entry record's envelope and the facts of its
// body from data without the reflective decoder: at start-up a node opens
// every stored entry its checkpoint vouches for (VouchedAll), and decoding
// them with the general decoder was half of opening them (0.29 s of CPU
// at 100,000 entries).
//
// It is only for bytes a checkpoint vouches for, which this build's full
// decoder accepted before, so it reads the one shape Encode writes (a map
// of the record's five fields in key order; a signature's two) and nothing
// else: ok is false for anything else (another shape, a field it does not
// know, a number out of range), and the caller then decodes with the
// general decoder, which says what is wrong. It does not check that the
// rest of the body is well formed: the body is decoded in full when
// anything reads it. Body and the signatures are copies, in one
// allocation, so the decrypted bytes are not kept.
func decodeVouchedEntry(data []byte) (r Record, facts entryFactsWire, ok bool) {
	d := vouchedReader{b: data}
	if d.head(majorMap) != 5 {
		return Record{}, entryFactsWire{}, false
	}
	var body []byte
	for key := uint64(1); key <= 5; key++ {
		if d.head(majorUint) != key {
			return Record{}, entryFactsWire{}, false
		}
		switch key {
		case 1:
			v := d.head(majorUint)
			if v > math.MaxUint8 {
				d.fail()
			}
			r.Version = uint8(v)
		case 2:
			v := d.head(majorUint)
			if v > math.MaxUint8 {
				d.fail()
			}
			r.Type = RecordType(v)
		case 3:
			if n := d.bytes(); len(n) == len(r.Network) {
				copy(r.Network[:], n)
			} else {
				d.fail()
			}
		case 4:
			body = d.bytes()
		case 5:
			n := d.head(majorArray)
			if n == 0 || n > uint64(len(d.b)) {
				d.fail()
				break
			}
			// Each Sig points into data until it is copied out below.
			r.Sigs = make([]Signature, n)
			for i := range r.Sigs {
				if d.head(majorMap) != 2 || d.head(majorUint) != 1 {
					d.fail()
					break
				}
				if k := d.bytes(); len(k) == len(PublicKey{}) {
					copy(r.Sigs[i].Key[:], k)
				} else {
					d.fail()
				}
				if d.head(majorUint) != 2 {
					d.fail()
					break
				}
				r.Sigs[i].Sig = d.bytes()
			}
		}
	}
	if d.bad || len(d.b) != 0 || r.Type != TypeEntry {
		return Record{}, entryFactsWire{}, false
	}
	if facts, ok = decodeVouchedFacts(body); !ok {
		return Record{}, entryFactsWire{}, false
	}
	size := len(body)
	for _, s := range r.Sigs {
		size += len(s.Sig)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, body...)
	r.Body = buf[:len(body):len(body)]
	for i := range r.Sigs {
		start := len(buf)
		buf = append(buf, r.Sigs[i].Sig...)
		r.Sigs[i].Sig = buf[start:len(buf):len(buf)]
	}
	return r, facts, true
}

// decodeVouchedFacts reads an entry body's first fields, the facts, which
// Encode writes first and in key order; it stops at the first key past
// them (the service).
func decodeVouchedFacts(body []byte) (f entryFactsWire, ok bool) {
	d := vouchedReader{b: body}
	n := d.head(majorMap)
	var last uint64
	for range n {
		key := d.head(majorUint)
		if d.bad || key <= last {
			return entryFactsWire{}, false
		}
		last = key
		switch key {
		case 1:
			f.ID = string(d.text())
		case 2:
			f.Seq = d.head(majorUint)
		case 3:
			f.Issued = d.int()
		case 4:
			f.Expires = d.int()
		case 5:
			f.Deleted = d.boolean()
		}
		if key >= 5 {
			break
		}
	}
	// An entry has an ID, a seq and both dates (checkEntry refuses it
	// otherwise): without them this is not the shape Encode writes.
	return f, !d.bad && last >= 4 && f.ID != ""
}

// vouchedReader reads CBOR heads from b; any surprise sets bad, after
// which every read returns zero values.
type vouchedReader struct {
	b   []byte
	bad bool
}

const (
	majorUint   = 0
	majorNegint = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
)

func (d *vouchedReader) fail() { d.bad, d.b = true, nil }

// head reads a data item's head of major type major and returns its
// argument.
func (d *vouchedReader) head(major byte) uint64 {
	if d.bad || len(d.b) == 0 || d.b[0]>>5 != major {
		d.fail()
		return 0
	}
	info := d.b[0] & 0x1f
	d.b = d.b[1:]
	var n int
	switch {
	case info < 24:
		return uint64(info)
	case info == 24:
		n = 1
	case info == 25:
		n = 2
	case info == 26:
		n = 4
	case info == 27:
		n = 8
	default: // indefinite lengths and reserved values
		d.fail()
		return 0
	}
	if len(d.b) < n {
		d.fail()
		return 0
	}
	var v uint64
	switch n {
	case 1:
		v = uint64(d.b[0])
	case 2:
		v = uint64(binary.BigEndian.Uint16(d.b))
	case 4:
		v = uint64(binary.BigEndian.Uint32(d.b))
	case 8:
		v = binary.BigEndian.Uint64(d.b)
	}
	d.b = d.b[n:]
	return v
}

func (d *vouchedReader) str(major byte) []byte {
	n := d.head(major)
	if d.bad || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *vouchedReader) bytes() []byte { return d.str(majorBytes) }
func (d *vouchedReader) text() []byte  { return d.str(majorText) }

func (d *vouchedReader) int() int64 {
	if !d.bad && len(d.b) > 0 && d.b[0]>>5 == majorNegint {
		v := d.head(majorNegint)
		if v > math.MaxInt64 {
			d.fail()
			return 0
		}
		return -1 - int64(v)
	}
	v := d.head(majorUint)
	if v > math.MaxInt64 {
		d.fail()
		return 0
	}
	return int64(v)
}

func (d *vouchedReader) boolean() bool {
	if d.bad || len(d.b) == 0 || (d.b[0] != 0xf4 && d.b[0] != 0xf5) {
		d.fail()
		return false
	}
	v := d.b[0] == 0xf5
	d.b = d.b[1:]
	return v
}
