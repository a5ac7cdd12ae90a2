package directory

import (
	"cmp"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// How search matches, in the words a reviewer or a user would check:
//
// Folding. Text is lowercased and accents are stripped (NFD, then every
// nonspacing mark dropped), so "Asesoría" = "asesoria" and "ñ" = "n":
// "companeros" finds "compañeros" and the other way round. Conflating ñ
// with n costs little precision (año/ano) and people in exile often type on
// borrowed or foreign keyboards without ñ.
//
// Words. A word is a run of letters, digits and marks; one-letter words and
// the Spanish and English stop words below are not indexed, and a query of
// stop words only is an empty query.
//
// Stems. Each word is cut by at most two rules, each only if 3 or more bytes
// remain: a final "s" (not "ss") goes, then a final "a", "e" or "o" goes.
// After that a final "y" of a stem of 4 or more becomes "i" and a final "z"
// becomes "c". So abogado = abogada = abogados (abogad), refugio = refugios,
// shelter = shelters, legal = legales, family = families = familia (famili),
// luz = luces. Stems are compared whole; there is no other suffix rule.
//
// Prefixes. A query word of 4 or more letters also matches, at half weight,
// every indexed stem that begins with the word as typed (folded, unstemmed):
// "abog" finds abogados and abogacía, "psico" finds psicológica. This serves
// search-as-you-type and papers over the few stems the rules above split.
//
// Typos. A query word of 5 or more letters (no digits) also matches, at a
// lower weight, every indexed stem within one edit of its stem; a word of 9
// or more letters, within two. An edit is one letter inserted, deleted or
// replaced, or two neighbours swapped: "alberge" finds albergue, "asesorai"
// finds asesoría, "psicolgo" finds psicólogo. Shorter words are too easily
// turned into other real words to guess at, and numbers (postcodes, phone
// numbers) are never guessed at.
//
// Synonyms. A query word or a two-word phrase can name categories or
// countries (tables below): "abogado" also matches every entry in category
// legal, "salud mental" every entry in psychosocial, "colombia" every entry
// with an area in CO.
//
// Fields. Name, description, eligibility and areas (city and free text) are
// indexed as text; categories, languages and country codes as exact values.
// Contacts, schedules, fees and the rest are not searched.
//
// Combining. Every query word (or phrase) must match the entry somewhere, in
// its name, categories, description, areas or eligibility — except service
// words ("ayuda", "apoyo", "help", …) that only add to the score when they
// match. If no entry matches every word, the entries matching most words are
// returned instead, marked Partial, so that one odd word does not leave an
// activist with nothing. Category, Language and Area filters always apply.
//
// Ranking. Open services first, then temporarily closed, then inactive ones
// (shown, because people need to know a service closed). Within a status,
// by score, then by folded name, then by key, so equal inputs give equal
// output on every node. A term scores idf × field weight × a BM25-style
// saturation of its frequency; field lengths are normalized against fixed
// reference lengths rather than the live average, so an entry's weight does
// not depend on what else was indexed before it.

// Query is what a person asks the directory. Empty fields do not filter.
type Query struct {
	Text     string `json:"text,omitempty"`
	Category string `json:"category,omitempty"` // one of Categories, exactly
	Language string `json:"language,omitempty"` // ISO 639 code
	Area     string `json:"area,omitempty"`     // city, country code or name, or free text
	Limit    int    `json:"limit,omitempty"`    // 0 means DefaultLimit; at most MaxLimit
}

// Result limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Result is one matching entry.
type Result struct {
	Key       string    `json:"key"`
	Publisher PublicKey `json:"-"`
	Entry     *Entry    `json:"entry"`
	Score     float64   `json:"score"`
	// Partial marks a result that matches only some of the query's words,
	// returned because no entry matched them all.
	Partial bool `json:"partial,omitempty"`
	// held is the record Entry was decoded from, in a State's index: how
	// State.ListingOf knows the slot still holds that very version.
	held *Record
}

// Fields that carry text, with their weights. The name says most about what
// a service is; eligibility mostly says who it is not for.
const (
	fieldName = iota
	fieldArea
	fieldDesc
	fieldElig
	numFields
)

var fieldInfo = [numFields]struct {
	weight float64
	b      float64 // how much the field's length dampens a term's weight
	ref    float64 // reference length, in words
}{
	fieldName: {3.0, 0, 1},
	fieldArea: {1.5, 0, 1},
	fieldDesc: {1.0, 0.5, 40},
	fieldElig: {0.7, 0.5, 15},
}

const (
	bm25K1         = 1.2
	categoryWeight = 2.0 // a category named by a query word
	prefixFactor   = 0.5
	prefixMinRunes = 4
	maxPrefixTerms = 256 // a short prefix must not turn a query into a scan
	// A guess is worth less than what was typed, and a two-edit guess less
	// than a one-edit one, so an exact match always ranks above a near one.
	fuzzyFactor1  = 0.4
	fuzzyFactor2  = 0.2
	fuzzyOneEdit  = 5 // letters in a query word before one edit is allowed
	fuzzyTwoEdits = 9 // and two
	maxFuzzyTerms = 64
	maxClauses    = 16
	maxQueryBytes = 1024
	wScale        = 1024 // posting weights are stored as fixed-point uint16
	lexMergeAt    = 512
)

// posting says that a document holds a term, with the term's precomputed
// field-weighted frequency. 8 bytes: postings are most of the index's memory.
type posting struct {
	doc    uint32
	w      uint16
	fields uint8 // bit per field the term occurs in
}

type doc struct {
	key string
	pub PublicKey
	// entry is the indexed entry as Put was given it; a State's index
	// keeps the entry's record instead (held), and decodes the entry
	// again when it needs it: an entry is then held once, encoded, rather
	// than also decoded (a third of a 100,000-entry node's memory). Both
	// are nil for a free slot.
	entry    *Entry
	held     *Record
	name     string // the service's name, for the name order
	sortName string // folded name; shares the name's memory when equal
}

// entryOf is document id's entry.
func (ix *Index) entryOf(id uint32) *Entry {
	d := &ix.docs[id]
	if d.entry != nil {
		return d.entry
	}
	return heldEntry(d.held)
}

// docMeta is what ranking and filtering read for every candidate, kept
// apart from doc in a dense array so a scan over tens of thousands of
// candidates does not chase a pointer per entry.
type docMeta struct {
	label   uint64 // position in name order (see nameOrder); 0 for a free slot
	expires int64
	tier    uint8 // 0 active, 1 temporarily closed, 2 inactive
}

// Index answers queries over the visible entries; it is safe for concurrent
// use. It keeps postings, not text: an entry is analyzed again from its
// (immutable) record when it is removed or replaced, rather than keeping a
// copy of its words.
type Index struct {
	mu sync.RWMutex
	indexData
	// deferred is set while many entries are put at once (DeferOrder):
	// inserting each into the order costs a binary search of string
	// comparisons over scattered documents, and sorting them all at the
	// end half that. Until the order is rebuilt, blocks and labels are
	// stale and only rebuildOrder reads them.
	deferred atomic.Bool

	// later holds the changes the state has made that the index has not
	// taken yet (putLater, removeLater), in order; pending says there are
	// some. Every read of the index takes them first (flushLocked), so a
	// search never shows what the state no longer holds; a node takes
	// them once it has let the record on (State.FlushIndex), so indexing
	// is not on the path of every hop a record makes. laterMu guards
	// later, and is taken inside mu or alone, never around it: queuing a
	// change does not wait for a search that holds mu.
	laterMu sync.Mutex
	later   []indexChange
	pending atomic.Bool

	// Scratch for Put and Remove, used under mu.
	an   analyzer
	lens [numFields]int

	scratch sync.Pool
}

// indexData is what an index holds, apart from its lock and scratch: one
// index takes another's whole (adopt), and a field added here cannot be
// left behind. A field that is not derived must go into the snapshot too
// (indexsnap.go).
type indexData struct {
	byKey map[string]uint32
	docs  []doc
	meta  []docMeta // by doc id, like docs
	free  []uint32  // reusable doc ids
	order nameOrder

	termID  map[string]uint32
	termStr []string // by term id
	// termLetters is, by term id, the set of letters a term holds (see
	// letterSet): typo matching skips most terms on it without reading them.
	termLetters []uint32
	post        [][]posting // by term id, sorted by doc
	freeTerm    []uint32

	// lex and lexNew list term strings for prefix lookups: lex sorted,
	// lexNew appended since the last merge. Either may still hold terms
	// since removed; termID is the truth.
	lex    []string
	lexNew []string

	cats      map[string][]uint32 // category → sorted docs
	langs     map[string][]uint32
	countries map[string][]uint32 // upper-case ISO 3166 code → sorted docs

	// Put's and Remove's working set; dtIdx has an element per term.
	dt    []docTerm
	dtIdx []int32 // by term id: its index in dt, if dt holds it there (a sparse set)
	stale []uint32
}

type docTerm struct {
	id uint32
	tf [numFields]uint16
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{indexData: indexData{
		byKey:     map[string]uint32{},
		termID:    map[string]uint32{},
		cats:      map[string][]uint32{},
		langs:     map[string][]uint32{},
		countries: map[string][]uint32{},
	}}
}

// Put adds or replaces the entry under key. The index keeps e and reads it
// again on removal, so e must not change afterwards (records never do).
// A deleted entry or one without a service is removed instead.
func (ix *Index) Put(key string, publisher PublicKey, e *Entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
	ix.put(key, publisher, e, nil)
}

// putHeld is Put for an entry the caller holds as r, its record: the index
// keeps r, not e, and decodes e from r when it needs it again.
func (ix *Index) putHeld(key string, publisher PublicKey, r *Record, e *Entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
	ix.put(key, publisher, e, r)
}

// indexChange is a put (r set: e, or e decoded from r, under key) or a
// removal (r nil) the index has yet to take.
type indexChange struct {
	key       string
	publisher PublicKey
	r         *Record
	e         *Entry
}

// maxLater bounds the changes an index keeps waiting: a node that applies
// thousands of records at once (a sync batch, a reader that never
// searches) indexes them in batches of this many as it goes, instead of
// holding them all for the next search.
const maxLater = 256

// putLater is putHeld, taken by the index at its next read or Flush. e
// may be nil or hold only an entry's facts (VouchedAll): the entry is
// then decoded from r when it is taken.
func (ix *Index) putLater(key string, publisher PublicKey, r *Record, e *Entry) {
	ix.queue(indexChange{key: key, publisher: publisher, r: r, e: e})
}

// removeLater is Remove, taken by the index at its next read or Flush.
func (ix *Index) removeLater(key string) { ix.queue(indexChange{key: key}) }

func (ix *Index) queue(c indexChange) {
	ix.laterMu.Lock()
	ix.later = append(ix.later, c)
	ix.pending.Store(true)
	full := len(ix.later) >= maxLater
	ix.laterMu.Unlock()
	if full {
		ix.Flush()
	}
}

// Flush takes the changes waiting for the index.
func (ix *Index) Flush() {
	if !ix.pending.Load() {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
}

func (ix *Index) flushLocked() {
	if !ix.pending.Load() {
		return
	}
	ix.laterMu.Lock()
	later := ix.later
	ix.later = nil
	ix.pending.Store(false)
	ix.laterMu.Unlock()
	for _, c := range later {
		if c.r == nil {
			ix.remove(c.key)
			continue
		}
		e := c.e
		if e == nil || e.Service == nil {
			e = heldEntry(c.r)
		}
		ix.put(c.key, c.publisher, e, c.r)
	}
}

// readLocked takes ix.mu for reading, once the waiting changes are taken.
func (ix *Index) readLocked() {
	ix.Flush()
	ix.mu.RLock()
}

// put is Put under ix.mu, with held the record the index keeps instead
// of e, if any.
func (ix *Index) put(key string, publisher PublicKey, e *Entry, held *Record) {
	if e == nil || e.Deleted || e.Service == nil {
		ix.remove(key)
		return
	}
	id, replace := ix.byKey[key]
	ix.stale = ix.stale[:0]
	keepName, keepLists := false, false
	if replace {
		// A new version mostly repeats the old one: postings of words in
		// both are updated in place, and lists whose membership did not
		// change are left alone, so an edit does not shift long lists.
		oldEntry := ix.entryOf(id)
		old := oldEntry.Service
		keepName = old.Name == e.Service.Name
		keepLists = slices.Equal(old.Categories, e.Service.Categories) &&
			slices.Equal(old.Languages, e.Service.Languages) &&
			slices.Equal(areaCountries(old.Areas), areaCountries(e.Service.Areas))
		if !keepName {
			ix.orderRemove(id)
		}
		if !keepLists {
			ix.unindexLists(id, old)
		}
		ix.collect(oldEntry, false)
		for _, t := range ix.dt {
			ix.stale = append(ix.stale, t.id)
		}
	} else {
		id = ix.allocDoc()
		ix.byKey[key] = id
	}
	d := doc{key: key, pub: publisher, held: held, name: e.Service.Name, sortName: foldShared(e.Service.Name)}
	if held == nil {
		d.entry = e
	}
	ix.docs[id] = d
	ix.meta[id] = docMeta{label: ix.meta[id].label, expires: e.Expires, tier: statusTier(e.Service.Status)}
	ix.collect(e, true)
	for _, t := range ix.dt {
		p := posting{doc: id, w: termWeight(t.tf, ix.lens)}
		for f, n := range t.tf {
			if n > 0 {
				p.fields |= 1 << f
			}
		}
		ix.post[t.id] = insertPosting(ix.post[t.id], p)
	}
	for _, t := range ix.stale {
		if i := ix.dtIdx[t]; int(i) >= len(ix.dt) || ix.dt[i].id != t {
			ix.removePosting(t, id)
		}
	}
	if !keepName {
		ix.orderInsert(id)
	}
	if !keepLists {
		ix.indexLists(id, e.Service)
	}
}

// Remove drops key from the index.
func (ix *Index) Remove(key string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
	ix.remove(key)
}

func (ix *Index) remove(key string) {
	id, ok := ix.byKey[key]
	if !ok {
		return
	}
	e := ix.entryOf(id)
	ix.orderRemove(id)
	ix.unindexLists(id, e.Service)
	ix.collect(e, false)
	for _, t := range ix.dt {
		ix.removePosting(t.id, id)
	}
	delete(ix.byKey, key)
	ix.docs[id] = doc{}
	ix.meta[id] = docMeta{}
	ix.free = append(ix.free, id)
}

// Len is the number of indexed entries.
func (ix *Index) Len() int {
	ix.readLocked()
	defer ix.mu.RUnlock()
	return len(ix.byKey)
}

// IndexStats describes the index's size, for memory reports.
type IndexStats struct {
	Entries  int `json:"entries"`
	Terms    int `json:"terms"`
	Postings int `json:"postings"`
}

// Stats reports the index's size.
func (ix *Index) Stats() IndexStats {
	ix.readLocked()
	defer ix.mu.RUnlock()
	st := IndexStats{Entries: len(ix.byKey), Terms: len(ix.termID)}
	for _, ps := range ix.post {
		st.Postings += len(ps)
	}
	return st
}

func (ix *Index) allocDoc() uint32 {
	if n := len(ix.free); n > 0 {
		id := ix.free[n-1]
		ix.free = ix.free[:n-1]
		return id
	}
	ix.docs = append(ix.docs, doc{})
	ix.meta = append(ix.meta, docMeta{})
	return uint32(len(ix.docs) - 1)
}

func statusTier(s string) uint8 {
	switch s {
	case "active":
		return 0
	case "inactive":
		return 2
	}
	return 1
}

func foldShared(s string) string {
	f := Fold(s)
	if f == s {
		return s
	}
	return f
}

// collect fills ix.dt with the terms of e and ix.lens with its field
// lengths. With create unset it only looks terms up (for removal).
func (ix *Index) collect(e *Entry, create bool) {
	ix.dt = ix.dt[:0]
	ix.lens = [numFields]int{}
	s := e.Service
	add := func(f int, text string) {
		ix.an.each(text, func(_, stem []byte) {
			ix.lens[f]++
			id, ok := ix.termID[string(stem)]
			if !ok {
				if !create {
					return
				}
				id = ix.newTerm(string(stem))
			}
			i := ix.dtIdx[id]
			if int(i) >= len(ix.dt) || ix.dt[i].id != id {
				i = int32(len(ix.dt))
				ix.dtIdx[id] = i
				ix.dt = append(ix.dt, docTerm{id: id})
			}
			if ix.dt[i].tf[f] < math.MaxUint16 {
				ix.dt[i].tf[f]++
			}
		})
	}
	add(fieldName, s.Name)
	add(fieldDesc, s.Description)
	add(fieldElig, s.Eligibility)
	for _, a := range s.Areas {
		add(fieldArea, a.City)
		add(fieldArea, a.Text)
	}
}

func (ix *Index) newTerm(t string) uint32 {
	var id uint32
	if n := len(ix.freeTerm); n > 0 {
		id = ix.freeTerm[n-1]
		ix.freeTerm = ix.freeTerm[:n-1]
	} else {
		id = uint32(len(ix.post))
		ix.post = append(ix.post, nil)
		ix.termStr = append(ix.termStr, "")
		ix.termLetters = append(ix.termLetters, 0)
		ix.dtIdx = append(ix.dtIdx, 0)
	}
	ix.termID[t] = id
	ix.termStr[id] = t
	ix.termLetters[id] = letterSet(t)
	ix.lexNew = append(ix.lexNew, t)
	// While loading (DeferOrder) the new terms wait for SettleOrder: each
	// merge copies the whole lexicon, and merging every lexMergeAt of a
	// loading directory's terms was half the index's start-up cost (a
	// directory of 100,000 entries with a phone number and a number in each
	// had about 200,000 terms: 150 MB copied).
	if len(ix.lexNew) >= lexMergeAt && !ix.deferred.Load() {
		ix.mergeLex()
	}
	return id
}

// mergeLex folds lexNew into lex, dropping dead and repeated terms.
func (ix *Index) mergeLex() {
	ix.lex, ix.lexNew = ix.liveTermsSorted(), ix.lexNew[:0]
	if cap(ix.lexNew) > 4*lexMergeAt {
		ix.lexNew = nil // a load's backlog, not to be kept
	}
}

// indexLists adds document id to the category, language and country lists.
func (ix *Index) indexLists(id uint32, s *Service) {
	forEachUnique(s.Categories, nil, func(c string) { ix.cats[c] = insertDoc(ix.cats[c], id) })
	forEachUnique(s.Languages, strings.ToLower, func(l string) { ix.langs[l] = insertDoc(ix.langs[l], id) })
	forEachUnique(areaCountries(s.Areas), nil, func(c string) { ix.countries[c] = insertDoc(ix.countries[c], id) })
}

func (ix *Index) unindexLists(id uint32, s *Service) {
	forEachUnique(s.Categories, nil, func(c string) { setOrDelete(ix.cats, c, removeDoc(ix.cats[c], id)) })
	forEachUnique(s.Languages, strings.ToLower, func(l string) { setOrDelete(ix.langs, l, removeDoc(ix.langs[l], id)) })
	forEachUnique(areaCountries(s.Areas), nil, func(c string) { setOrDelete(ix.countries, c, removeDoc(ix.countries[c], id)) })
}

// removePosting drops doc from term t's postings, and the term with its
// last posting.
func (ix *Index) removePosting(t, doc uint32) {
	ps := ix.post[t]
	i, found := slices.BinarySearchFunc(ps, doc, func(q posting, d uint32) int { return cmp.Compare(q.doc, d) })
	if !found {
		return
	}
	ps = slices.Delete(ps, i, i+1)
	if len(ps) == 0 {
		ix.dropTerm(t)
		return
	}
	ix.post[t] = ps
}

func (ix *Index) dropTerm(id uint32) {
	delete(ix.termID, ix.termStr[id])
	ix.termStr[id] = ""
	ix.post[id] = nil
	ix.freeTerm = append(ix.freeTerm, id)
}

func setOrDelete(m map[string][]uint32, k string, v []uint32) {
	if len(v) == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

func areaCountries(areas []Area) []string {
	var out []string
	for _, a := range areas {
		if a.Country != "" {
			out = append(out, strings.ToUpper(a.Country))
		}
	}
	return out
}

// forEachUnique calls fn once per distinct value of vs, compared after
// normalize (if not nil).
func forEachUnique(vs []string, normalize func(string) string, fn func(string)) {
	for i, v := range vs {
		if normalize != nil {
			v = normalize(v)
		}
		seen := false
		for _, w := range vs[:i] {
			if normalize != nil {
				w = normalize(w)
			}
			if w == v {
				seen = true
				break
			}
		}
		if !seen {
			fn(v)
		}
	}
}

func termWeight(tf [numFields]uint16, lens [numFields]int) uint16 {
	var w float64
	for f, n := range tf {
		if n == 0 {
			continue
		}
		fi := fieldInfo[f]
		t := float64(n)
		lnorm := 1 - fi.b + fi.b*float64(lens[f])/fi.ref
		w += fi.weight * t * (bm25K1 + 1) / (t + bm25K1*lnorm)
	}
	q := math.Round(w * wScale)
	return uint16(min(max(q, 1), math.MaxUint16))
}

func insertPosting(ps []posting, p posting) []posting {
	if n := len(ps); n == 0 || ps[n-1].doc < p.doc {
		return append(ps, p)
	}
	i, found := slices.BinarySearchFunc(ps, p.doc, func(q posting, d uint32) int { return cmp.Compare(q.doc, d) })
	if found {
		ps[i] = p
		return ps
	}
	return slices.Insert(ps, i, p)
}

func insertDoc(ds []uint32, d uint32) []uint32 {
	if n := len(ds); n == 0 || ds[n-1] < d {
		return append(ds, d)
	}
	i, found := slices.BinarySearch(ds, d)
	if found {
		return ds
	}
	return slices.Insert(ds, i, d)
}

func removeDoc(ds []uint32, d uint32) []uint32 {
	i, found := slices.BinarySearch(ds, d)
	if !found {
		return ds
	}
	return slices.Delete(ds, i, i+1)
}

// ---- Queries ----

// hit is a document with its score so far; n counts the query clauses it
// matched (for partial results).
type hit struct {
	doc   uint32
	n     uint16
	score float32
}

// scratch is per-search working memory, pooled: a dense score array and a
// bitset over doc ids, which turn the union of many posting lists into one
// pass and a sorted drain.
type scratch struct {
	acc   []float32
	cnt   []uint16
	bits  []uint64
	allow []uint64
	inter []uint64
	tmp   []uint64
	// Hit lists handed out during one search, kept for the next: most of
	// a search's garbage otherwise, and garbage is latency on a phone.
	bufs [][]hit
	used int
}

func (sc *scratch) buf(n int) []hit {
	if sc.used == len(sc.bufs) {
		sc.bufs = append(sc.bufs, nil)
	}
	b := sc.bufs[sc.used]
	if cap(b) < n {
		b = make([]hit, 0, n)
		sc.bufs[sc.used] = b
	}
	sc.used++
	return b[:0]
}

// release returns sc to the pool, buffers and all; the pool lets go of
// them at the next garbage collections if searches stop.
func (ix *Index) release(sc *scratch) {
	sc.used = 0
	ix.scratch.Put(sc)
}

func (ix *Index) getScratch() *scratch {
	sc, _ := ix.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{}
	}
	if n := len(ix.docs); len(sc.acc) < n {
		sc.acc = make([]float32, n)
		sc.cnt = make([]uint16, n)
		sc.bits = make([]uint64, (n+63)/64)
	}
	return sc
}

func (sc *scratch) add(d uint32, s float32) {
	sc.bits[d>>6] |= 1 << (d & 63)
	sc.acc[d] += s
}

// drain returns the accumulated documents in doc order and clears them.
// Counts are read (and cleared) only when counted: only partial matching
// keeps them.
func (sc *scratch) drain(counted bool) []hit {
	n := 0
	for _, w := range sc.bits {
		n += bits.OnesCount64(w)
	}
	out := sc.buf(n)
	for wi, w := range sc.bits {
		if w == 0 {
			continue
		}
		for w != 0 {
			d := uint32(wi*64 + bits.TrailingZeros64(w))
			w &= w - 1
			h := hit{doc: d, score: sc.acc[d]}
			sc.acc[d] = 0
			if counted {
				h.n, sc.cnt[d] = sc.cnt[d], 0
			}
			out = append(out, h)
		}
		sc.bits[wi] = 0
	}
	return out
}

// clause is one word or two-word phrase of a query.
type clause struct {
	key   string
	words []qword
	exp   expansion // of a phrase; a word's own is looked up by stem
	soft  bool
}

type qword struct{ word, stem string }

// parseQuery splits text into clauses: stop words dropped, known phrases
// joined, repeats merged, service words marked soft.
func parseQuery(text string) []clause {
	if len(text) > maxQueryBytes {
		n := maxQueryBytes
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = text[:n]
	}
	var an analyzer
	var words []qword
	an.each(text, func(w, s []byte) {
		if len(words) < 2*maxClauses {
			words = append(words, qword{string(w), string(s)})
		}
	})
	var out []clause
	seen := map[string]bool{}
	for i := 0; i < len(words) && len(out) < maxClauses; i++ {
		c := clause{key: words[i].stem, words: words[i : i+1]}
		if i+1 < len(words) {
			k := words[i].stem + " " + words[i+1].stem
			if exp, ok := phraseExp[k]; ok {
				c = clause{key: k, words: words[i : i+2], exp: exp}
				i++
			}
		}
		if seen[c.key] {
			continue
		}
		seen[c.key] = true
		c.soft = len(c.words) == 1 && softWords[c.key]
		out = append(out, c)
	}
	allSoft := true
	for _, c := range out {
		allSoft = allSoft && c.soft
	}
	if allSoft {
		for i := range out {
			out[i].soft = false
		}
	}
	return out
}

func (ix *Index) idf(df int) float64 {
	n := float64(len(ix.byKey))
	return math.Log(1 + (n-float64(df)+0.5)/(float64(df)+0.5))
}

func (ix *Index) addTerm(sc *scratch, t string, factor float64) {
	id, ok := ix.termID[t]
	if !ok {
		return
	}
	ps := ix.post[id]
	f := float32(ix.idf(len(ps)) * factor / wScale)
	for _, p := range ps {
		sc.add(p.doc, f*float32(p.w))
	}
}

func (ix *Index) addDocs(sc *scratch, ds []uint32, weight float64) {
	f := float32(ix.idf(len(ds)) * weight)
	for _, d := range ds {
		sc.add(d, f)
	}
}

func (ix *Index) addExpansion(sc *scratch, exp expansion) {
	for _, c := range exp.cats {
		ix.addDocs(sc, ix.cats[c], categoryWeight)
	}
	for _, c := range exp.countries {
		ix.addDocs(sc, ix.countries[c], fieldInfo[fieldArea].weight)
	}
}

// prefixTerms lists the live terms, other than except, that start with p,
// sorted so that scores add up in the same order on every node.
func (ix *Index) prefixTerms(p, except string) []string {
	var out []string
	for i, _ := slices.BinarySearch(ix.lex, p); i < len(ix.lex) && strings.HasPrefix(ix.lex[i], p); i++ {
		out = append(out, ix.lex[i])
	}
	for _, t := range ix.lexNew {
		if strings.HasPrefix(t, p) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	out = slices.DeleteFunc(out, func(t string) bool {
		_, live := ix.termID[t]
		return !live || t == except
	})
	if len(out) > maxPrefixTerms {
		out = out[:maxPrefixTerms]
	}
	return out
}

// fuzzyTerm is a live term near a query word, and how many edits away.
type fuzzyTerm struct {
	term  string
	edits int
}

// allowedEdits is how many typos a query word may carry (rules at the top
// of this file).
func allowedEdits(word string) int {
	if strings.ContainsFunc(word, unicode.IsDigit) {
		return 0
	}
	switch n := utf8.RuneCountInString(word); {
	case n >= fuzzyTwoEdits:
		return 2
	case n >= fuzzyOneEdit:
		return 1
	}
	return 0
}

// fuzzyTerms lists the live terms within k edits of stem, except those in
// skip (sorted) and stem itself: nearest first, then in byte order, so that
// scores add up in the same order on every node.
func (ix *Index) fuzzyTerms(stem string, k int, skip []string) []fuzzyTerm {
	qLetters := letterSet(stem)
	ascii := isASCII(stem)
	qRunes, qBytes := []rune(stem), []byte(stem)
	var out []fuzzyTerm
	var dp editScratch
	var tRunes []rune
	var tBytes []byte
	for id, t := range ix.termStr {
		// Each edit adds at most one letter the stem lacks and takes away
		// at most one it has; a term's byte length bounds its rune count
		// from above, and equals it for the folded text the index nearly
		// always holds.
		if t == "" || len(t) < len(qRunes)-k ||
			bits.OnesCount32(ix.termLetters[id]&^qLetters) > k ||
			bits.OnesCount32(qLetters&^ix.termLetters[id]) > k {
			continue
		}
		var d int
		if ascii && isASCII(t) {
			if len(t) > len(stem)+k {
				continue
			}
			tBytes = append(tBytes[:0], t...)
			d = editDistanceWithin(qBytes, tBytes, k, &dp)
		} else {
			tRunes = append(tRunes[:0], []rune(t)...)
			d = editDistanceWithin(qRunes, tRunes, k, &dp)
		}
		if d > k || t == stem {
			continue
		}
		if _, found := slices.BinarySearch(skip, t); found {
			continue
		}
		out = append(out, fuzzyTerm{t, d})
	}
	slices.SortFunc(out, func(a, b fuzzyTerm) int {
		return cmp.Or(cmp.Compare(a.edits, b.edits), strings.Compare(a.term, b.term))
	})
	if len(out) > maxFuzzyTerms {
		out = out[:maxFuzzyTerms]
	}
	return out
}

// letterSet maps a term's letters to bits: a–z each their own, digits and
// other letters folded onto the last six. Folding only merges letters, so
// "letters of one word missing from the other" can only shrink: the typo
// filter built on it never skips a real match.
func letterSet(t string) uint32 {
	var m uint32
	for _, r := range t {
		switch {
		case 'a' <= r && r <= 'z':
			m |= 1 << (r - 'a')
		case '0' <= r && r <= '9':
			m |= 1 << (26 + (r-'0')%5)
		default:
			m |= 1 << 31
		}
	}
	return m
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// editScratch holds the three rows editDistanceWithin works on.
type editScratch [3][]int

// editDistanceWithin returns the optimal-string-alignment distance between a
// and b (letters inserted, deleted, replaced, or neighbours swapped), or k+1
// as soon as it is known to exceed k: once a whole row exceeds k, no later
// row can come back under it.
func editDistanceWithin[E byte | rune](a, b []E, k int, rows *editScratch) int {
	if d := len(a) - len(b); d > k || -d > k {
		return k + 1
	}
	for i := range rows {
		rows[i] = slices.Grow(rows[i][:0], len(b)+1)[:len(b)+1]
	}
	prev2, prev, cur := rows[0], rows[1], rows[2]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		best := i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			best = min(best, v)
		}
		if best > k {
			return k + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func (ix *Index) evalWord(sc *scratch, w qword) []hit {
	ix.addTerm(sc, w.stem, 1)
	var prefixed []string
	if utf8.RuneCountInString(w.word) >= prefixMinRunes {
		prefixed = ix.prefixTerms(w.word, w.stem)
		for _, t := range prefixed {
			ix.addTerm(sc, t, prefixFactor)
		}
	}
	if k := allowedEdits(w.word); k > 0 {
		for _, f := range ix.fuzzyTerms(w.stem, k, prefixed) {
			factor := fuzzyFactor1
			if f.edits == 2 {
				factor = fuzzyFactor2
			}
			ix.addTerm(sc, f.term, factor)
		}
	}
	ix.addExpansion(sc, wordExp[w.stem])
	return sc.drain(false)
}

func (ix *Index) evalClause(sc *scratch, c clause) []hit {
	if len(c.words) == 1 {
		return ix.evalWord(sc, c.words[0])
	}
	both := intersect(ix.evalWord(sc, c.words[0]), ix.evalWord(sc, c.words[1]))
	for _, h := range both {
		sc.add(h.doc, h.score)
	}
	ix.addExpansion(sc, c.exp)
	return sc.drain(false)
}

// intersect keeps the documents in both a and b, adding their scores and
// counts. It reuses a's memory.
func intersect(a, b []hit) []hit {
	out := a[:0]
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].doc < b[j].doc:
			i++
		case a[i].doc > b[j].doc:
			j++
		default:
			out = append(out, hit{doc: a[i].doc, n: a[i].n + b[j].n, score: a[i].score + b[j].score})
			i++
			j++
		}
	}
	return out
}

// boost adds the scores of soft into hits, without adding documents.
func boost(hits, soft []hit) {
	j := 0
	for i := range hits {
		for j < len(soft) && soft[j].doc < hits[i].doc {
			j++
		}
		if j < len(soft) && soft[j].doc == hits[i].doc {
			hits[i].score += soft[j].score
		}
	}
}

// filter holds a query's conditions other than text: allow is nil when no
// Category, Language or Area was given, else a bitset of the documents
// passing all three.
type filter struct {
	now   int64
	allow []uint64
}

func (f *filter) ok(ix *Index, d uint32) bool {
	if ix.meta[d].expires <= f.now { // free slots have 0
		return false
	}
	return f.allow == nil || f.allow[d>>6]&(1<<(d&63)) != 0
}

func setBits(set []uint64, ds []uint32) {
	for _, d := range ds {
		set[d>>6] |= 1 << (d & 63)
	}
}

func andBits(dst, src []uint64) {
	for i := range dst {
		dst[i] &= src[i]
	}
}

// buildFilter turns q's Category, Language and Area into one bitset.
func (ix *Index) buildFilter(sc *scratch, q Query, now time.Time) filter {
	f := filter{now: now.Unix()}
	lang := strings.ToLower(strings.TrimSpace(q.Language))
	area := strings.TrimSpace(q.Area)
	if q.Category == "" && lang == "" && area == "" {
		return f
	}
	n := (len(ix.docs) + 63) / 64
	sc.allow = resize(sc.allow, n)
	sc.tmp = resize(sc.tmp, n)
	allow, tmp := sc.allow, sc.tmp
	first := true
	with := func(fill func(set []uint64)) {
		if first {
			clear(allow)
			fill(allow)
			first = false
			return
		}
		clear(tmp)
		fill(tmp)
		andBits(allow, tmp)
	}
	if q.Category != "" {
		with(func(set []uint64) { setBits(set, ix.cats[q.Category]) })
	}
	if lang != "" {
		with(func(set []uint64) { setBits(set, ix.langs[lang]) })
	}
	if area != "" {
		with(func(set []uint64) { ix.areaSet(sc, set, area) })
	}
	f.allow = allow
	return f
}

// areaSet marks in set the documents with an area matching a: its country
// code or country name, or a city or area text holding every word of a.
func (ix *Index) areaSet(sc *scratch, set []uint64, a string) {
	folded := strings.Join(strings.Fields(Fold(a)), " ")
	if len(folded) == 2 {
		setBits(set, ix.countries[strings.ToUpper(folded)])
	}
	if cc, ok := countryByName[folded]; ok {
		setBits(set, ix.countries[cc])
	}
	var an analyzer
	var stems []string
	an.each(a, func(_, s []byte) { stems = append(stems, string(s)) })
	if len(stems) == 0 {
		return
	}
	sc.inter = resize(sc.inter, len(set))
	inter := sc.inter
	for i, s := range stems {
		cur := inter
		if i > 0 {
			cur = resize(nil, len(set))
		} else {
			clear(inter)
		}
		if id, ok := ix.termID[s]; ok {
			for _, p := range ix.post[id] {
				if p.fields&(1<<fieldArea) != 0 {
					cur[p.doc>>6] |= 1 << (p.doc & 63)
				}
			}
		}
		if i > 0 {
			andBits(inter, cur)
		}
	}
	for w := range set {
		set[w] |= inter[w]
	}
}

func resize(b []uint64, n int) []uint64 {
	if cap(b) < n {
		return make([]uint64, n)
	}
	return b[:n]
}

// cand is a result being ranked, with everything the order needs.
type cand struct {
	label uint64
	doc   uint32
	score float32
	n     uint16
	tier  uint8
}

// before is the result order: status, words matched, score, then name
// order (label), which ends in the key.
func before(a, b *cand) bool {
	if a.tier != b.tier {
		return a.tier < b.tier
	}
	if a.n != b.n {
		return a.n > b.n
	}
	if a.score != b.score {
		return a.score > b.score
	}
	return a.label < b.label
}

// topK keeps the best k candidates in a heap whose root is the worst.
type topK struct {
	k int
	h []cand
}

func (t *topK) push(c cand) {
	if len(t.h) < t.k {
		t.h = append(t.h, c)
		for i := len(t.h) - 1; i > 0; {
			p := (i - 1) / 2
			if !before(&t.h[p], &t.h[i]) {
				break
			}
			t.h[p], t.h[i] = t.h[i], t.h[p]
			i = p
		}
		return
	}
	if !before(&c, &t.h[0]) {
		return
	}
	t.h[0] = c
	for i := 0; ; {
		l, r, w := 2*i+1, 2*i+2, i
		if l < len(t.h) && before(&t.h[w], &t.h[l]) {
			w = l
		}
		if r < len(t.h) && before(&t.h[w], &t.h[r]) {
			w = r
		}
		if w == i {
			break
		}
		t.h[w], t.h[i] = t.h[i], t.h[w]
		i = w
	}
}

// Search returns live entries matching q, best first: unexpired at now,
// passing every filter, matching every word of q.Text (see the rules at
// the top of this file).
func (ix *Index) Search(q Query, now time.Time) []Result {
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	clauses := parseQuery(q.Text)

	ix.SettleOrder()
	ix.readLocked()
	defer ix.mu.RUnlock()
	sc := ix.getScratch()
	defer ix.release(sc)

	f := ix.buildFilter(sc, q, now)
	top := topK{k: limit}
	consider := func(h hit) {
		if f.ok(ix, h.doc) {
			m := &ix.meta[h.doc]
			top.push(cand{label: m.label, doc: h.doc, score: h.score, n: h.n, tier: m.tier})
		}
	}

	partial := false
	if len(clauses) == 0 {
		ix.scanAll(&f, &top, consider)
	} else {
		var hard, soft [][]hit
		for _, c := range clauses {
			hs := ix.evalClause(sc, c)
			if c.soft {
				soft = append(soft, hs)
			} else {
				hard = append(hard, hs)
			}
		}
		// Intersect shortest first; the stable sort keeps the order (and
		// so the float sums) a function of the query and the entry set.
		all := slices.Clone(hard)
		slices.SortStableFunc(all, func(a, b []hit) int { return len(a) - len(b) })
		res := append(sc.buf(len(all[0])), all[0]...)
		for _, hs := range all[1:] {
			res = intersect(res, hs)
		}
		for _, s := range soft {
			boost(res, s)
		}
		for _, h := range res {
			consider(h)
		}
		if len(top.h) == 0 && len(hard) > 1 {
			partial = true
			for _, hs := range hard {
				for _, h := range hs {
					sc.add(h.doc, h.score)
					sc.cnt[h.doc]++
				}
			}
			res := sc.drain(true)
			for _, s := range soft {
				boost(res, s)
			}
			for _, h := range res {
				consider(h)
			}
		}
	}

	slices.SortFunc(top.h, func(a, b cand) int {
		if before(&a, &b) {
			return -1
		}
		return 1
	})
	out := make([]Result, len(top.h))
	for i, c := range top.h {
		d := &ix.docs[c.doc]
		out[i] = Result{Key: d.key, Publisher: d.pub, Entry: ix.entryOf(c.doc), Score: float64(c.score), Partial: partial, held: d.held}
	}
	return out
}

// scanAll considers the documents passing f, for a query without words,
// where every score is zero and the order is status, then name. When most
// documents pass, walking the name order and stopping at the limit beats
// ranking them all; when few pass, ranking those few is cheaper.
func (ix *Index) scanAll(f *filter, top *topK, consider func(hit)) {
	if f.allow != nil {
		n := 0
		for _, w := range f.allow {
			n += bits.OnesCount64(w)
		}
		if n <= len(ix.byKey)/16 {
			for wi, w := range f.allow {
				for w != 0 {
					consider(hit{doc: uint32(wi*64 + bits.TrailingZeros64(w))})
					w &= w - 1
				}
			}
			return
		}
	}
	for tier := range uint8(3) {
		for _, b := range ix.order.blocks {
			for _, d := range b {
				if ix.meta[d].tier != tier {
					continue
				}
				consider(hit{doc: d})
				if len(top.h) == top.k {
					return
				}
			}
		}
	}
}

// nameOrder keeps the documents sorted by folded name, then name, then key,
// and gives each a label (docMeta.label) that sorts the same way, so ranking
// breaks ties by comparing two integers rather than two strings somewhere
// in memory. Labels are spread over the uint64 range; a new document takes
// the midpoint of its neighbours, and when there is no room left every
// label is reassigned, which is rare and O(n). The sorted list is cut into
// blocks so an insertion moves at most a block.
type nameOrder struct {
	blocks [][]uint32
	n      int
}

// DeferOrder stops keeping the name order and the term lexicon up to date
// until SettleOrder, or the next search, rebuilds them: for loading many
// entries at once.
func (ix *Index) DeferOrder() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.deferred.Store(true)
}

// SettleOrder rebuilds the name order and the lexicon if DeferOrder left
// them stale.
func (ix *Index) SettleOrder() {
	if !ix.deferred.Load() {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.flushLocked()
	if ix.deferred.Load() {
		ix.rebuildOrder()
		ix.mergeLex()
		ix.deferred.Store(false)
	}
}

// rebuildOrder sorts every live document by name into blocks three
// quarters full, with labels spread evenly over the uint64 range.
func (ix *Index) rebuildOrder() {
	ids := make([]uint32, 0, len(ix.byKey))
	for _, id := range ix.byKey {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, ix.nameCompare)
	ix.setOrder(ids)
}

// setOrder lays out ids, already in name order, in blocks three quarters
// full, with labels spread evenly over the uint64 range.
func (ix *Index) setOrder(ids []uint32) {
	const fill = orderBlock * 3 / 4
	o := &ix.order
	o.blocks, o.n = o.blocks[:0], len(ids)
	step := math.MaxUint64 / uint64(len(ids)+1)
	for i := 0; i < len(ids); i += fill {
		b := make([]uint32, 0, orderBlock+1)
		for j := i; j < min(i+fill, len(ids)); j++ {
			b = append(b, ids[j])
			ix.meta[ids[j]].label = step * uint64(j+1)
		}
		o.blocks = append(o.blocks, b)
	}
}

const (
	orderBlock = 512
	labelStep  = 1 << 40 // room left after appending at either end
)

// nameCompare orders documents by folded name, then exact name, then key.
func (ix *Index) nameCompare(a, b uint32) int {
	da, db := &ix.docs[a], &ix.docs[b]
	if c := strings.Compare(da.sortName, db.sortName); c != 0 {
		return c
	}
	if c := strings.Compare(da.name, db.name); c != 0 {
		return c
	}
	return strings.Compare(da.key, db.key)
}

func (ix *Index) nameLess(a, b uint32) bool { return ix.nameCompare(a, b) < 0 }

// orderFind returns where id is, or would go, in the name order.
func (ix *Index) orderFind(id uint32) (bi, i int) {
	bs := ix.order.blocks
	bi, _ = slices.BinarySearchFunc(bs, id, func(b []uint32, id uint32) int {
		if ix.nameLess(b[len(b)-1], id) {
			return -1
		}
		return 1
	})
	if bi == len(bs) {
		return bi - 1, len(bs[bi-1])
	}
	b := bs[bi]
	i, _ = slices.BinarySearchFunc(b, id, func(x, id uint32) int {
		if ix.nameLess(x, id) {
			return -1
		}
		return 1
	})
	return bi, i
}

func (ix *Index) orderInsert(id uint32) {
	o := &ix.order
	if ix.deferred.Load() {
		return
	}
	o.n++
	if len(o.blocks) == 0 {
		o.blocks = [][]uint32{{id}}
		ix.meta[id].label = 1 << 63
		return
	}
	bi, i := ix.orderFind(id)
	b := slices.Insert(o.blocks[bi], i, id)
	o.blocks[bi] = b
	lo, hi := uint64(0), uint64(math.MaxUint64)
	hasPrev, hasNext := true, true
	switch {
	case i > 0:
		lo = ix.meta[b[i-1]].label
	case bi > 0:
		pb := o.blocks[bi-1]
		lo = ix.meta[pb[len(pb)-1]].label
	default:
		hasPrev = false
	}
	switch {
	case i+1 < len(b):
		hi = ix.meta[b[i+1]].label
	case bi+1 < len(o.blocks):
		hi = ix.meta[o.blocks[bi+1][0]].label
	default:
		hasNext = false
	}
	if len(b) > orderBlock {
		half := len(b) / 2
		o.blocks[bi] = b[:half:half]
		o.blocks = slices.Insert(o.blocks, bi+1, slices.Clone(b[half:]))
	}
	gap := hi - lo
	switch {
	case gap < 2:
		ix.relabel()
	case !hasNext:
		ix.meta[id].label = lo + min(gap/2, labelStep)
	case !hasPrev:
		ix.meta[id].label = hi - min(gap/2, labelStep)
	default:
		ix.meta[id].label = lo + gap/2
	}
}

func (ix *Index) orderRemove(id uint32) {
	o := &ix.order
	if ix.deferred.Load() {
		return
	}
	bi, i := -1, -1
	if len(o.blocks) > 0 {
		bi, i = ix.orderFind(id)
	}
	if bi < 0 || i >= len(o.blocks[bi]) || o.blocks[bi][i] != id {
		// Only an entry changed after Put could get here; find it the
		// slow way rather than leave it behind.
		bi, i = -1, -1
		for j, b := range o.blocks {
			if k := slices.Index(b, id); k >= 0 {
				bi, i = j, k
				break
			}
		}
		if bi < 0 {
			return
		}
	}
	o.n--
	o.blocks[bi] = slices.Delete(o.blocks[bi], i, i+1)
	if len(o.blocks[bi]) == 0 {
		o.blocks = slices.Delete(o.blocks, bi, bi+1)
	}
	ix.meta[id].label = 0
}

func (ix *Index) relabel() {
	step := math.MaxUint64 / uint64(ix.order.n+1)
	next := step
	for _, b := range ix.order.blocks {
		for _, d := range b {
			ix.meta[d].label = next
			next += step
		}
	}
}

// ---- Text analysis ----

// Fold lowercases s and strips accents, so "Asesoría" and "asesoria" match
// and "compañeros" and "companeros" too.
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return string(appendFold(make([]byte, 0, len(s)), s))
		}
	}
	return s
}

func appendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r < latinEnd {
			dst = append(dst, latinFold[r-utf8.RuneSelf]...)
			i += size
			continue
		}
		// Beyond Latin, normalize the rest the slow, general way.
		for _, r := range norm.NFD.String(s[i:]) {
			if unicode.Is(unicode.Mn, r) {
				continue
			}
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
		return dst
	}
	return dst
}

// latinFold holds the folding of every Latin-1 and Latin Extended rune,
// computed by the general rule at start-up: the text Ceiba indexes is
// nearly all Spanish, English, Portuguese and French, and normalizing it
// rune by rune from a table keeps indexing fast and allocation-free.
const latinEnd = 0x250

var latinFold = func() (t [latinEnd - utf8.RuneSelf]string) {
	for r := rune(utf8.RuneSelf); r < latinEnd; r++ {
		var b []byte
		for _, d := range norm.NFD.String(string(r)) {
			if !unicode.Is(unicode.Mn, d) {
				b = utf8.AppendRune(b, unicode.ToLower(d))
			}
		}
		t[r-utf8.RuneSelf] = string(b)
	}
	return t
}()

// analyzer turns text into folded words and their stems. Its buffers make
// it unsafe for concurrent use.
type analyzer struct{ buf, stem []byte }

// each calls fn for every indexable word of s with the folded word and its
// stem; both are valid only during the call.
func (a *analyzer) each(s string, fn func(word, stem []byte)) {
	a.buf = appendFold(a.buf[:0], s)
	b := a.buf
	for i := 0; i < len(b); {
		r, size := decodeRune(b[i:])
		if !isWordRune(r) {
			i += size
			continue
		}
		j := i + size
		for j < len(b) {
			r, size = decodeRune(b[j:])
			if !isWordRune(r) {
				break
			}
			j += size
		}
		w := b[i:j]
		i = j
		if len(w) == 1 || utf8.RuneCount(w) < 2 || stopWords[string(w)] {
			continue
		}
		a.stem = stemInto(a.stem[:0], w)
		fn(w, a.stem)
	}
}

func decodeRune(b []byte) (rune, int) {
	if b[0] < utf8.RuneSelf {
		return rune(b[0]), 1
	}
	return utf8.DecodeRune(b)
}

func isWordRune(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// stemInto appends the stem of the folded word w to dst (rules at the top
// of this file).
func stemInto(dst, w []byte) []byte {
	n := len(w)
	if n >= 4 && w[n-1] == 's' && w[n-2] != 's' {
		n--
	}
	if n >= 4 && (w[n-1] == 'a' || w[n-1] == 'e' || w[n-1] == 'o') {
		n--
	}
	dst = append(dst, w[:n]...)
	switch {
	case n >= 4 && dst[n-1] == 'y':
		dst[n-1] = 'i'
	case n >= 3 && dst[n-1] == 'z':
		dst[n-1] = 'c'
	}
	return dst
}

func stem(w string) string {
	return string(stemInto(nil, []byte(Fold(w))))
}

// stopWords are not indexed and do not have to match. They include the
// words of asking ("necesito", "busco") so that a query typed as a sentence
// still finds its services.
var stopWords = setOf(
	// Spanish
	"al", "algo", "algun", "alguna", "ante", "aqui", "asi", "como", "con", "contra", "cual", "cuando",
	"de", "del", "desde", "donde", "durante", "el", "ella", "ellas", "ellos", "en", "entre", "era",
	"es", "esa", "esas", "ese", "eso", "esos", "esta", "estan", "estas", "este", "esto", "estos",
	"estoy", "fue", "ha", "hay", "la", "las", "le", "les", "lo", "los", "mas", "me", "mi", "mis",
	"muy", "ni", "no", "nos", "nuestra", "nuestro", "otra", "otro", "para", "pero", "por", "que",
	"quien", "se", "ser", "si", "sin", "sobre", "son", "su", "sus", "tambien", "te", "tengo", "tu",
	"tus", "un", "una", "unas", "uno", "unos", "ya", "yo",
	"necesito", "necesitamos", "necesita", "busco", "buscamos", "buscando", "quiero", "queremos",
	"favor", "hola", "alguien",
	// English
	"an", "and", "any", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "into",
	"is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the", "their", "them",
	"there", "these", "they", "this", "to", "was", "we", "were", "what", "where", "which", "who",
	"will", "with", "you", "your", "need", "needs", "looking", "want", "please", "someone", "hello",
)

// softWords (stems) describe any service; they rank but do not filter, so
// "ayuda legal" finds legal services that never say "ayuda".
var softWords = stemSet(
	"ayuda", "apoyo", "atención", "servicio", "asesoría", "orientación", "información",
	"gratis", "gratuito", "urgente", "urgencia", "emergencia",
	"help", "support", "service", "assistance", "advice", "information", "free", "urgent", "emergency",
)

// categorySynonyms names each category in the words people search with, in
// Spanish and English. Entries of up to two words (after stop words); a
// two-word phrase matches only as a phrase.
var categorySynonyms = map[string][]string{
	"legal": {"legal", "jurídico", "jurídica", "abogado", "abogada", "abogacía", "amparo", "litigio", "denuncia",
		"law", "lawyer", "attorney", "litigation", "paralegal"},
	"shelter": {"albergue", "refugio", "acogida", "casa de acogida", "casa refugio", "alojamiento", "hospedaje", "vivienda",
		"shelter", "housing", "accommodation", "lodging"},
	"health": {"salud", "médico", "médica", "medicina", "clínica", "hospital", "enfermería",
		"health", "healthcare", "medical", "medicine", "clinic", "doctor", "nurse"},
	"psychosocial": {"psicosocial", "psicológico", "psicológica", "psicología", "psicólogo", "psicóloga", "terapia", "terapeuta",
		"trauma", "emocional", "mental", "salud mental",
		"psychosocial", "psychological", "psychology", "psychologist", "therapy", "therapist", "counseling", "counselling",
		"mental health", "emotional"},
	"digital-security": {"seguridad digital", "ciberseguridad", "digital", "cifrado", "privacidad", "vigilancia", "hackeo", "seguridad",
		"digital security", "cybersecurity", "encryption", "privacy", "surveillance", "hacking", "malware", "spyware", "security"},
	"migration": {"migración", "migrante", "migratorio", "migratoria", "inmigración", "asilo", "refugio", "refugiado", "refugiada",
		"visa", "visado", "residencia", "regularización", "deportación",
		"migration", "migrant", "immigration", "asylum", "refugee", "residency", "deportation"},
	"work": {"trabajo", "trabajar", "empleo", "laboral", "work", "job", "employment"},
	"education": {"educación", "escuela", "estudios", "estudiar", "beca", "curso", "taller", "formación", "capacitación",
		"education", "school", "study", "scholarship", "course", "training", "workshop"},
	"food": {"alimentación", "alimento", "comida", "despensa", "comedor", "food", "meal", "grocery"},
	"financial": {"financiero", "financiera", "económico", "económica", "dinero", "fondo", "subsidio", "apoyo económico",
		"financial", "money", "cash", "fund", "funding", "grant"},
	"protection": {"protección", "proteger", "seguridad", "riesgo", "amenaza", "reubicación", "medidas de protección",
		"protection", "security", "risk", "threat", "relocation"},
	"documentation": {"documentación", "documentar", "documento", "evidencia", "pasaporte",
		"documentation", "document", "evidence", "passport"},
	"accompaniment": {"acompañamiento", "acompañar", "acompañante", "accompaniment", "accompany"},
}

// countryNames are the countries where Ceiba's users live or pass through,
// named in Spanish and English, for Area filters and query words.
var countryNames = map[string][]string{
	"MX": {"México"}, "GT": {"Guatemala"}, "HN": {"Honduras"}, "SV": {"El Salvador"},
	"NI": {"Nicaragua"}, "CR": {"Costa Rica"}, "PA": {"Panamá"}, "CU": {"Cuba"},
	"DO": {"República Dominicana", "Dominican Republic"}, "HT": {"Haití"},
	"CO": {"Colombia"}, "VE": {"Venezuela"}, "EC": {"Ecuador"}, "PE": {"Perú"}, "BO": {"Bolivia"},
	"CL": {"Chile"}, "AR": {"Argentina"}, "UY": {"Uruguay"}, "PY": {"Paraguay"}, "BR": {"Brasil", "Brazil"},
	"US": {"Estados Unidos", "EEUU", "EE UU", "USA", "United States"}, "CA": {"Canadá"},
	"ES": {"España", "Spain"}, "PT": {"Portugal"}, "FR": {"Francia", "France"}, "DE": {"Alemania", "Germany"},
	"IT": {"Italia", "Italy"}, "NL": {"Países Bajos", "Holanda", "Netherlands"}, "BE": {"Bélgica", "Belgium"},
	"CH": {"Suiza", "Switzerland"}, "GB": {"Reino Unido", "United Kingdom", "UK"}, "SE": {"Suecia", "Sweden"},
	"NO": {"Noruega", "Norway"},
}

// expansion is what a query word or phrase names besides itself.
type expansion struct{ cats, countries []string }

var (
	wordExp       = map[string]expansion{} // by stem
	phraseExp     = map[string]expansion{} // by "stem stem"
	countryByName = map[string]string{}    // folded full name → code
)

func init() {
	addExp := func(phrase string, cat, country string) {
		var an analyzer
		var stems []string
		an.each(phrase, func(_, s []byte) { stems = append(stems, string(s)) })
		m, key := wordExp, strings.Join(stems, " ")
		switch len(stems) {
		case 1:
		case 2:
			m = phraseExp
		default:
			if country != "" {
				return // matched by Area only, e.g. "EE UU" (stop words)
			}
			panic("search: synonym " + phrase + " must be one or two words")
		}
		e := m[key]
		if cat != "" && !slices.Contains(e.cats, cat) {
			e.cats = append(e.cats, cat)
		}
		if country != "" && !slices.Contains(e.countries, country) {
			e.countries = append(e.countries, country)
		}
		m[key] = e
	}
	for _, c := range Categories {
		syns, ok := categorySynonyms[c]
		if !ok {
			panic("search: no synonyms for category " + c)
		}
		addExp(strings.ReplaceAll(c, "-", " "), c, "")
		for _, s := range syns {
			addExp(s, c, "")
		}
	}
	for _, cc := range slices.Sorted(maps.Keys(countryNames)) {
		for _, name := range countryNames[cc] {
			countryByName[strings.Join(strings.Fields(Fold(name)), " ")] = cc
			// Short names (USA, UK) are also common words or noise in
			// free text; they work in the Area filter only.
			if utf8.RuneCountInString(name) >= 4 {
				addExp(name, "", cc)
			}
		}
	}
}

func setOf(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[w] = true
	}
	return m
}

func stemSet(ws ...string) map[string]bool {
	m := make(map[string]bool, len(ws))
	for _, w := range ws {
		m[stem(w)] = true
	}
	return m
}
