package directory

import (
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Query is what a person asks the directory. Empty fields do not filter.
type Query struct {
	Text     string `json:"text,omitempty"`
	Category string `json:"category,omitempty"`
	Language string `json:"language,omitempty"`
	Area     string `json:"area,omitempty"` // city, country code or free text
	Limit    int    `json:"limit,omitempty"`
}

// Result is one matching entry.
type Result struct {
	Key       string    `json:"key"`
	Publisher PublicKey `json:"-"`
	Entry     *Entry    `json:"entry"`
	Score     float64   `json:"score"`
}

// Index answers queries over the visible entries.
type Index struct {
	mu      sync.RWMutex
	entries map[string]Result
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{entries: map[string]Result{}} }

// Put adds or replaces the entry under key.
func (ix *Index) Put(key string, publisher PublicKey, e *Entry) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.entries[key] = Result{Key: key, Publisher: publisher, Entry: e}
}

// Remove drops key from the index.
func (ix *Index) Remove(key string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.entries, key)
}

// Len is the number of indexed entries.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.entries)
}

// Search returns live entries matching q, best first.
func (ix *Index) Search(q Query, now time.Time) []Result {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	terms := strings.Fields(Fold(q.Text))
	var out []Result
	for _, r := range ix.entries {
		e := r.Entry
		if e.Service == nil || !now.Before(time.Unix(e.Expires, 0)) {
			continue
		}
		hay := Fold(e.Service.Name + " " + e.Service.Description + " " + strings.Join(e.Service.Categories, " "))
		ok := true
		for _, t := range terms {
			if !strings.Contains(hay, t) {
				ok = false
			}
		}
		if ok {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Fold lowercases s and strips accents, so "Asesoría" and "asesoria" match.
func Fold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
