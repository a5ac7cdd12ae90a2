// Package core is the part of a Ceiba reader that the web app runs in the
// browser, compiled to WebAssembly (webapp/core/wasm): it opens sealed
// records, applies them to a directory.State, unlocks read keys from the
// rotations sealed to the reader, and searches. It is the Go directory
// package and nothing else, so a phone and a node cannot disagree on what
// a set of records means.
//
// It owns the reader's view of one network. It must never import
// networking or storage: the JavaScript side moves bytes (libp2p) and keeps
// them (IndexedDB), and hands every record to Receive.
package core

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Bounds on records kept while their read key has not arrived: a record
// sealed under an epoch the reader has no key for yet (its rotation's
// pages are still on their way) is kept and opened once the key comes,
// as a node parks it. A peer must not be able to grow this without bound.
const (
	maxWaitingRecords = 4096
	maxWaitingBytes   = 16 << 20
)

// Reader is one reader's view of one network.
type Reader struct {
	mu      sync.Mutex
	net     directory.NetworkID
	id      *directory.Identity
	state   *directory.State
	keys    directory.Keyring
	waiting map[string][]byte // sealed records without a key yet, by content
	waitLen int
	// tried remembers epochs whose package did not open with the pages
	// held then: ML-KEM decapsulation is too slow to redo on every record.
	tried map[triedKey]bool
}

type triedKey struct {
	number   uint64
	rotation [16]byte
	pages    int
}

// NewReader starts an empty view of network net for identity id (nil for a
// view that only reads with the keys given), holding the read keys keys.
// now is the clock for expiry and skew checks; nil means time.Now.
func NewReader(net directory.NetworkID, id *directory.Identity, keys directory.Keyring, now func() time.Time) *Reader {
	kr := directory.Keyring{}
	for n, k := range keys {
		kr[n] = k
	}
	return &Reader{net: net, id: id, state: directory.NewState(net, now), keys: kr, waiting: map[string][]byte{}, tried: map[triedKey]bool{}}
}

// Receive opens one sealed record and applies it. A record sealed under an
// epoch whose key the reader does not hold yet (ErrNoKey), or refused for a
// reason that may pass (directory.MayPass), is kept and applied when the
// key or the governance it needs arrives. Any other error says why the
// record was refused; it changes nothing.
func (r *Reader) Receive(sealed []byte) (directory.Applied, error) {
	return r.take(sealed, nil)
}

// take is Receive; rec, when not nil, is sealed already opened (a sync
// session opens a record to check it against what was listed, and need
// not open it twice).
func (r *Reader) take(sealed []byte, rec *directory.Record) (directory.Applied, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var a directory.Applied
	var err error
	if rec != nil {
		a, err = r.state.Apply(rec)
	} else {
		a, err = r.receive(sealed)
	}
	if waits(err) {
		r.wait(sealed)
		return a, err
	}
	if err == nil && a.Type != directory.TypeEntry {
		r.unlock()
		r.retryWaiting()
	}
	return a, err
}

func (r *Reader) receive(sealed []byte) (directory.Applied, error) {
	rec, err := directory.Open(sealed, r.net, r.keys)
	if err != nil {
		return directory.Applied{}, err
	}
	return r.state.Apply(rec)
}

func (r *Reader) wait(sealed []byte) {
	k := string(sealed)
	if _, ok := r.waiting[k]; ok {
		return
	}
	if len(r.waiting) >= maxWaitingRecords || r.waitLen+len(sealed) > maxWaitingBytes {
		return // fetched again by the next sync once the key is here
	}
	r.waiting[k] = sealed
	r.waitLen += len(sealed)
}

// unlock opens this reader's packages in effective epochs it holds no key
// for, and reports whether it gained a key. Any governance record can make
// an epoch effective (its charter, its predecessor), so it runs after each.
func (r *Reader) unlock() bool {
	if r.id == nil {
		return false
	}
	gained := false
	for _, e := range r.state.Epochs() {
		if _, ok := r.keys[e.Number]; ok {
			continue
		}
		pages := r.state.EpochPages(e)
		tk := triedKey{e.Number, e.Rotation, len(pages)}
		if r.tried[tk] {
			continue
		}
		k, err := directory.OpenKeyPackage(r.id, r.net, e, pages)
		if err != nil {
			if len(r.tried) >= maxWaitingRecords {
				clear(r.tried)
			}
			r.tried[tk] = true // not a recipient, or pages still missing
			continue
		}
		r.keys[e.Number] = k
		gained = true
	}
	return gained
}

// waits reports whether a refused record is kept for later: its key has not
// arrived, or it was refused for a reason more records may remove (a page
// before its epoch, an entry before its publisher's membership), as a node
// parks it.
func waits(err error) bool { return Waits(err) }

// Waits reports whether Receive or Gossip kept the record it refused with
// err, to apply it once its key or the governance it needs arrives. The
// page asks its node for what is missing then, by sync, as a node does
// when gossip brings it a record it cannot apply yet.
func Waits(err error) bool {
	return errors.Is(err, directory.ErrNoKey) || directory.MayPass(err)
}

// retryWaiting applies the kept records that governance or new keys now
// let in, until a pass applies nothing new (a record may bring an epoch
// that unlocks more).
func (r *Reader) retryWaiting() {
	for progress := true; progress; {
		progress = false
		for k, sealed := range r.waiting {
			a, err := r.receive(sealed)
			if waits(err) {
				continue
			}
			delete(r.waiting, k)
			r.waitLen -= len(sealed)
			progress = true
			if err == nil && a.Type != directory.TypeEntry {
				r.unlock()
			}
		}
	}
}

// Digest is the state digest (PROTOCOL.md §6): equal to a node's for the
// same records.
func (r *Reader) Digest() directory.Hash {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Digest()
}

// Search finds visible entries, as the node's search does.
func (r *Reader) Search(q directory.Query) []directory.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state.Search(q)
}

// Status is what the app shows about the reader's view.
type Status struct {
	Network string `json:"network"`
	Epoch   uint64 `json:"epoch"`    // newest effective epoch
	KeyHeld bool   `json:"key_held"` // whether this reader holds its key
	Waiting int    `json:"waiting"`  // records kept until their key arrives
	Digest  string `json:"digest"`
	Entries int    `json:"entries"` // entries in the view
	Keys    int    `json:"keys"`    // read keys held: when it grows, the keystore is kept again
	// Fingerprint is this reader's key; Revoked says the view holds its
	// revocation (the network's nodes no longer admit it).
	Fingerprint string `json:"fingerprint,omitempty"`
	Revoked     bool   `json:"revoked"`
	// AwaitsPages says the view knows a rotation whose pages and key
	// this reader lacks (Reader.AwaitsPages).
	AwaitsPages bool `json:"awaits_pages"`
}

// Status reports the view's epoch, key and digest.
func (r *Reader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	ep := r.state.CurrentEpoch()
	_, held := r.keys[ep]
	d := r.state.Digest()
	st := Status{Network: r.net.String(), Epoch: ep, KeyHeld: held, Waiting: len(r.waiting), Digest: fmt.Sprintf("%x", d[:]),
		Entries: r.state.Stats().Entries, Keys: len(r.keys)}
	if r.id != nil {
		st.Fingerprint = r.id.Fingerprint()
		st.Revoked = r.state.IsRevoked(r.id.Public())
	}
	st.AwaitsPages = r.awaitsPages()
	return st
}

// Keys returns a copy of the read keys held, for the keystore.
func (r *Reader) Keys() directory.Keyring {
	r.mu.Lock()
	defer r.mu.Unlock()
	kr := directory.Keyring{}
	for n, k := range r.keys {
		kr[n] = k
	}
	return kr
}

// Judge says whether key k, proven by peer on a connection, is admitted
// in this view, as a node's admission judges it (PROTOCOL.md §7): an
// unrevoked steward of the current charter, admitted member or reader; a
// key merely unknown passes from a bootstrap peer (the inviting node,
// whose membership a fresh view may not hold yet), and any unrevoked key
// while the view holds no charter.
func (r *Reader) Judge(k directory.PublicKey, bootstrap bool) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Charter() == nil && !r.state.IsRevoked(k) {
		return "unjudged", nil
	}
	role, ok := r.state.AdmittedRole(k)
	if !ok && role == "unknown" && bootstrap {
		return "bootstrap peer", nil
	}
	if !ok {
		return role, fmt.Errorf("the key is not an admitted, unrevoked steward, member or reader here (%s)", role)
	}
	return role, nil
}

// Network is the view's network ID.
func (r *Reader) Network() directory.NetworkID { return r.net }

// Export returns what the phone keeps to search again after a reload: every
// record of the view sealed under the newest read key held, and the
// records still waiting for their key as they came. Sealed, they say
// nothing to whoever copies the phone's storage without the passphrase
// that guards the keys (the keystore); given to Receive in any order after
// unlocking, they rebuild the same view (the same digest).
func (r *Reader) Export() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, key, ok := r.keys.Current()
	if !ok {
		return nil // no key to seal under: nothing can be kept safely
	}
	recs := r.state.Records()
	out := make([][]byte, 0, len(recs)+len(r.waiting))
	for _, rec := range recs {
		out = append(out, directory.Seal(rec, key))
	}
	for _, sealed := range r.waiting {
		out = append(out, sealed)
	}
	return out
}
