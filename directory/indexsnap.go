package directory

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// An index snapshot is the search index as a node's state held it, so the
// node's next start need not decode and analyse every entry again: at
// 100,000 entries that was half of a start's serial work. It is
// derived data, trusted only as far as the state it is restored into
// agrees with it: each document names the slot and the record hash it was
// made from, and RestoreIndex refuses a snapshot unless the state shows
// exactly those records, no more and no fewer. A snapshot made by a build
// that analyses or weighs words differently carries another fingerprint
// and is refused too.
//
// The bytes hold the words of every entry: whoever keeps them must keep
// them as secret as the records (the node seals them under a key of its
// own identity, node/indexsnap.go). The decoder still treats them as
// untrusted input: a damaged snapshot is an error, never a panic.

const (
	indexSnapshotMagic   = "ceiba index snapshot\x00"
	indexSnapshotVersion = 1
)

// ErrIndexSnapshot is returned for a snapshot that cannot be used.
var ErrIndexSnapshot = errors.New("directory: index snapshot not usable")

// analysisFingerprint hashes what this build's analyzer makes of a sample
// text and the weights it gives: a snapshot from a build that would index
// the same entries differently does not match it.
var analysisFingerprint = sync.OnceValue(func() [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%v %v %v\n", fieldInfo, bm25K1, wScale)
	var an analyzer
	const sample = "Asesoría jurídica gratuita para personas refugiadas y solicitantes de asilo; " +
		"legal aid for refugees, asylum seekers and stateless people; aide juridique aux réfugiés; " +
		"الدعم القانوني للاجئين; Юридическая помощь беженцам; Çalışma izni, ĲSSEL, 24/7 +1-555-0100 " +
		"housing shelters sheltered psychologists psychosocial digital-security"
	an.each(sample, func(word, stem []byte) {
		h.Write(word)
		h.Write([]byte{0})
		h.Write(stem)
		h.Write([]byte{1})
	})
	for n := range 20 {
		tf := [numFields]uint16{uint16(n % 3), uint16(n % 2), uint16(n), uint16(n / 4)}
		lens := [numFields]int{n + 1, 2 * n, 10 * n, n * n}
		binary.Write(h, binary.BigEndian, termWeight(tf, lens))
	}
	return [32]byte(h.Sum(nil))
})

// snapDoc is what a snapshot says of one document: the slot and record
// it was made from, checked against the state before the index is used.
type snapDoc struct {
	pub  PublicKey
	id   string
	hash Hash
}

// IndexSnapshot is a decoded snapshot, not yet checked against a state.
type IndexSnapshot struct {
	ix   *Index
	docs []snapDoc
}

// EncodeIndexSnapshot encodes the state's search index with the slot and
// record hash of each document. It returns nil while the state is loading.
func (s *State) EncodeIndexSnapshot() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.unindexed {
		return nil
	}
	ix := s.index
	ix.readLocked()
	defer ix.mu.RUnlock()
	if ix.deferred.Load() {
		return nil
	}
	// Documents are renumbered densely in their old order, so postings
	// stay sorted; the name order is written as a list of the new numbers.
	renum := make([]uint32, len(ix.docs))
	live := uint32(0)
	for id := range ix.docs {
		renum[id] = math.MaxUint32
		if ix.docs[id].key != "" {
			renum[id] = live
			live++
		}
	}
	postings := 0
	for _, ps := range ix.post {
		postings += len(ps)
	}
	b := make([]byte, 0, 64+len(ix.docs)*96+len(ix.termID)*16+postings*5)
	b = append(b, indexSnapshotMagic...)
	b = append(b, indexSnapshotVersion)
	fp := analysisFingerprint()
	b = append(b, fp[:]...)
	b = binary.AppendUvarint(b, uint64(live))
	for id := range ix.docs {
		d := &ix.docs[id]
		if d.key == "" {
			continue
		}
		entryID := d.key[strings.LastIndexByte(d.key, '/')+1:]
		slot := s.entries[d.pub][entryID]
		if slot == nil || slot.best != d.held {
			// The index no longer matches the state it belongs to: a bug
			// elsewhere, and no snapshot is better than a wrong one.
			return nil
		}
		b = append(b, d.pub[:]...)
		b = append(b, slot.hash[:]...)
		b = appendSnapString(b, entryID)
		b = appendSnapString(b, d.name)
		b = append(b, ix.meta[id].tier)
	}
	order := make([]uint32, 0, live)
	for _, blk := range ix.order.blocks {
		for _, id := range blk {
			order = append(order, renum[id])
		}
	}
	if len(order) != int(live) {
		return nil
	}
	for _, id := range order {
		b = binary.AppendUvarint(b, uint64(id))
	}
	// Terms in sorted order, which is the lexicon a prefix search reads.
	terms := ix.liveTermsSorted()
	b = binary.AppendUvarint(b, uint64(len(terms)))
	for _, t := range terms {
		b = appendSnapString(b, t)
		ps := ix.post[ix.termID[t]]
		b = binary.AppendUvarint(b, uint64(len(ps)))
		prev := uint32(0)
		for i, p := range ps {
			d := renum[p.doc]
			if i == 0 {
				b = binary.AppendUvarint(b, uint64(d))
			} else {
				b = binary.AppendUvarint(b, uint64(d-prev))
			}
			prev = d
			b = binary.AppendUvarint(b, uint64(p.w))
			b = append(b, p.fields)
		}
	}
	for _, list := range []map[string][]uint32{ix.cats, ix.langs, ix.countries} {
		keys := slices.Sorted(maps.Keys(list))
		b = binary.AppendUvarint(b, uint64(len(keys)))
		for _, k := range keys {
			b = appendSnapString(b, k)
			docs := list[k]
			b = binary.AppendUvarint(b, uint64(len(docs)))
			prev := uint32(0)
			for i, id := range docs {
				d := renum[id]
				if i == 0 {
					b = binary.AppendUvarint(b, uint64(d))
				} else {
					b = binary.AppendUvarint(b, uint64(d-prev))
				}
				prev = d
			}
		}
	}
	return b
}

// liveTermsSorted is every term the index holds, sorted: the lexicon
// merged with what was added since, read without changing either (a
// snapshot holds only a read lock; mergeLex keeps the result).
func (ix *Index) liveTermsSorted() []string {
	fresh := slices.Sorted(slices.Values(ix.lexNew))
	out := make([]string, 0, len(ix.lex)+len(fresh))
	a := ix.lex
	for len(a) > 0 || len(fresh) > 0 {
		var t string
		if len(fresh) == 0 || (len(a) > 0 && a[0] <= fresh[0]) {
			t, a = a[0], a[1:]
		} else {
			t, fresh = fresh[0], fresh[1:]
		}
		if _, live := ix.termID[t]; live && (len(out) == 0 || out[len(out)-1] != t) {
			out = append(out, t)
		}
	}
	return out
}

func appendSnapString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// snapReader reads a snapshot, remembering the first thing wrong.
type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrIndexSnapshot}, args...)...)
	}
}

func (r *snapReader) uvarint(max uint64, what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("%s: truncated", what)
		return 0
	}
	r.b = r.b[n:]
	if v > max {
		r.fail("%s: %d, at most %d", what, v, max)
		return 0
	}
	return v
}

func (r *snapReader) bytes(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("%s: truncated", what)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// str reads a length-prefixed string. Each is a copy of its own: strings
// sharing the snapshot's memory would keep all of it, postings included,
// alive as long as the index.
func (r *snapReader) str(max uint64, what string) string { return string(r.raw(max, what)) }

// raw reads a length-prefixed string's bytes, in the snapshot's memory.
func (r *snapReader) raw(max uint64, what string) []byte {
	n := int(r.uvarint(max, what+" length"))
	if r.err != nil || len(r.b) < n {
		r.fail("%s: truncated", what)
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// DecodeIndexSnapshot decodes a snapshot EncodeIndexSnapshot made. It needs no
// state: a node decodes it while it reads its store, and RestoreIndex
// checks it against the state once the records are applied.
func DecodeIndexSnapshot(b []byte) (*IndexSnapshot, error) {
	hdr := len(indexSnapshotMagic) + 1 + sha256.Size
	switch {
	case len(b) < hdr || string(b[:len(indexSnapshotMagic)]) != indexSnapshotMagic:
		return nil, fmt.Errorf("%w: not an index snapshot", ErrIndexSnapshot)
	case b[len(indexSnapshotMagic)] != indexSnapshotVersion:
		return nil, fmt.Errorf("%w: version %d, this build writes %d", ErrIndexSnapshot, b[len(indexSnapshotMagic)], indexSnapshotVersion)
	}
	if fp := analysisFingerprint(); string(b[len(indexSnapshotMagic)+1:hdr]) != string(fp[:]) {
		return nil, fmt.Errorf("%w: written by a build that analyses words differently", ErrIndexSnapshot)
	}
	r := &snapReader{b: b[hdr:]}
	// Every count is bounded by what the remaining bytes could hold, so a
	// damaged count cannot make the decoder allocate beyond the input.
	n := int(r.uvarint(uint64(len(r.b)/(2*len(Hash{}))), "document count"))
	snap := &IndexSnapshot{ix: NewIndex(), docs: make([]snapDoc, n)}
	ix := snap.ix
	ix.docs, ix.meta = make([]doc, n), make([]docMeta, n)
	ix.byKey = make(map[string]uint32, n)
	for i := range n {
		sd := &snap.docs[i]
		copy(sd.pub[:], r.bytes(len(PublicKey{}), "publisher"))
		copy(sd.hash[:], r.bytes(len(Hash{}), "record hash"))
		id := r.raw(64, "entry id")
		name := r.str(MaxRecordBytes, "name")
		tier := r.bytes(1, "status")
		if r.err != nil {
			return nil, r.err
		}
		// The ID shares the slot name's memory, which the index keeps.
		var buf [maxEntrySlotName]byte
		key := string(append(appendEntrySlotName(buf[:0], sd.pub, ""), id...))
		sd.id = key[len(key)-len(id):]
		if !validEntryID(sd.id) || tier[0] > 2 {
			return nil, fmt.Errorf("%w: document %d: bad entry id or status", ErrIndexSnapshot, i)
		}
		if _, dup := ix.byKey[key]; dup {
			return nil, fmt.Errorf("%w: slot %s twice", ErrIndexSnapshot, key)
		}
		ix.byKey[key] = uint32(i)
		d := &ix.docs[i]
		d.key, d.pub, d.name, d.sortName = key, sd.pub, name, foldShared(name)
		ix.meta[i].tier = tier[0]
	}
	order := make([]uint32, n)
	placed := make([]bool, n)
	for i := range order {
		id := uint32(r.uvarint(uint64(max(n-1, 0)), "name order"))
		if r.err == nil && placed[id] {
			r.fail("document %d twice in the name order", id)
		}
		if r.err != nil {
			return nil, r.err
		}
		order[i], placed[id] = id, true
	}
	if n > 0 {
		ix.setOrder(order)
	}
	terms := int(r.uvarint(uint64(len(r.b)/3), "term count"))
	ix.termStr = make([]string, terms)
	ix.termLetters = make([]uint32, terms)
	ix.post = make([][]posting, terms)
	ix.dtIdx = make([]int32, terms)
	ix.termID = make(map[string]uint32, terms)
	for t := range terms {
		s := r.str(MaxRecordBytes, "term")
		if r.err == nil && (s == "" || (t > 0 && s <= ix.termStr[t-1])) {
			r.fail("term %d out of order", t)
		}
		count := int(r.uvarint(uint64(min(n, len(r.b)/3)), "posting count"))
		if r.err == nil && count == 0 {
			r.fail("term %q without postings", s)
		}
		if r.err != nil {
			return nil, r.err
		}
		ps := make([]posting, count)
		prev := uint64(0)
		for i := range ps {
			d := r.uvarint(uint64(n-1), "posting")
			if i > 0 {
				if d == 0 {
					r.fail("postings of %q out of order", s)
				}
				d += prev
			}
			w := r.uvarint(math.MaxUint16, "posting weight")
			f := r.bytes(1, "posting fields")
			if r.err == nil && (d >= uint64(n) || f[0] == 0 || f[0] >= 1<<numFields) {
				r.fail("posting of %q: document %d of %d, fields %d", s, d, n, f[0])
			}
			if r.err != nil {
				return nil, r.err
			}
			ps[i], prev = posting{doc: uint32(d), w: uint16(w), fields: f[0]}, d
		}
		ix.termStr[t], ix.termLetters[t], ix.post[t] = s, letterSet(s), ps
		ix.termID[s] = uint32(t)
	}
	ix.lex = slices.Clone(ix.termStr)
	for _, list := range []map[string][]uint32{ix.cats, ix.langs, ix.countries} {
		keys := int(r.uvarint(uint64(len(r.b)/2), "list count"))
		for range keys {
			k := r.str(MaxRecordBytes, "list key")
			if _, dup := list[k]; r.err == nil && dup {
				r.fail("list %q twice", k)
			}
			count := int(r.uvarint(uint64(min(n, len(r.b))), "list length"))
			docs := make([]uint32, count)
			prev := uint64(0)
			for i := range docs {
				d := r.uvarint(uint64(max(n-1, 0)), "list entry")
				if i > 0 {
					if d == 0 {
						r.fail("list %q out of order", k)
					}
					d += prev
				}
				if r.err == nil && d >= uint64(n) {
					r.fail("list %q: document %d of %d", k, d, n)
				}
				if r.err != nil {
					return nil, r.err
				}
				docs[i], prev = uint32(d), d
			}
			if count > 0 {
				list[k] = docs
			}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrIndexSnapshot, len(r.b))
	}
	return snap, nil
}

// LoadingUnindexed is Loading for a state whose index will come from a
// snapshot: records are applied without being analysed, and RestoreIndex
// must follow before anything searches the state.
func (s *State) LoadingUnindexed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unindexed = true
}

// RestoreIndex ends LoadingUnindexed. It installs snap if the state shows
// exactly the records snap's documents were made from; otherwise, or
// when snap is nil, it indexes every visible entry again, and says why
// the snapshot was not used.
func (s *State) RestoreIndex(snap *IndexSnapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.unindexed {
		return nil
	}
	s.unindexed = false
	err := s.linkSnapshot(snap)
	if err == nil {
		s.index.adopt(snap.ix)
		return nil
	}
	s.index.adopt(s.indexVisible())
	return err
}

// indexVisible indexes every visible entry. The entries' bodies were not
// decoded when they were applied (VouchedAll), so they are decoded here,
// on every core; only putting them into the index is serial.
func (s *State) indexVisible() *Index {
	type visible struct {
		pub  PublicKey
		id   string
		slot *entrySlot
		e    *Entry
	}
	var docs []visible
	for pub, slots := range s.entries {
		for id, slot := range slots {
			if slot.visible {
				docs = append(docs, visible{pub: pub, id: id, slot: slot})
			}
		}
	}
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(docs); i += workers {
				docs[i].e = docs[i].slot.entry()
			}
		})
	}
	wg.Wait()
	ix := NewIndex()
	ix.DeferOrder()
	for i := range docs {
		d := &docs[i]
		ix.putHeld(entrySlotName(d.pub, d.id), d.pub, d.slot.best, d.e)
		d.e = nil // put keeps the record, not the decoded entry
	}
	ix.SettleOrder()
	return ix
}

// adopt takes what src indexes; src must not be used afterwards. The
// state's index stays the same object, so a search running meanwhile
// reads one index or the other, whole.
func (ix *Index) adopt(src *Index) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	// What waited was made for the index being replaced.
	ix.laterMu.Lock()
	ix.later = nil
	ix.pending.Store(false)
	ix.laterMu.Unlock()
	ix.indexData = src.indexData
	ix.deferred.Store(src.deferred.Load())
}

// linkSnapshot checks snap against the state's visible entries and points
// its documents at the records the state holds.
func (s *State) linkSnapshot(snap *IndexSnapshot) error {
	if snap == nil {
		return fmt.Errorf("%w: none", ErrIndexSnapshot)
	}
	visible := 0
	for _, slots := range s.entries {
		for _, slot := range slots {
			if slot.visible {
				visible++
			}
		}
	}
	if visible != len(snap.docs) {
		return fmt.Errorf("%w: it indexes %d entries, the state shows %d", ErrIndexSnapshot, len(snap.docs), visible)
	}
	ix := snap.ix
	for i, sd := range snap.docs {
		slot := s.entries[sd.pub][sd.id]
		if slot == nil || !slot.visible || slot.hash != sd.hash {
			return fmt.Errorf("%w: slot %s holds another version", ErrIndexSnapshot, ix.docs[i].key)
		}
		ix.docs[i].held = slot.best
		ix.meta[i].expires = slot.facts.expires
	}
	return nil
}
