package dhtstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ceiba-network/ceiba/directory"
)

// namespace is the DHT key namespace Ceiba records live in; BlindSlot
// produces keys of the form "/ceiba/<base32>".
const keyNamespace = "ceiba"

// ErrWrongSlot means a value opened and verified, but the record inside
// belongs to a different slot than the key it was offered under: someone
// with the read key tried to overwrite another record's place.
var ErrWrongSlot = errors.New("record does not belong under this DHT key")

// ErrNotCeibaKey means a value was offered under a key outside the Ceiba
// namespace.
var ErrNotCeibaKey = errors.New("not a Ceiba DHT key")

// validator is the record.Validator every node runs on DHT values, on puts it
// receives and on values it fetches. It is stateless apart from the keyring:
// the DHT calls Validate on one value at a time and never shows it what is
// already stored, so ordering between versions is Select's job (the DHT's
// value store runs Select against the stored value on every put).
type validator struct {
	net     directory.NetworkID
	keyring func() directory.Keyring
}

// Validate implements record.Validator.
func (v *validator) Validate(key string, value []byte) error {
	_, err := v.open(key, value)
	return err
}

// open does what Validate does and returns the record, so callers that need
// it do not open the value twice.
func (v *validator) open(key string, value []byte) (*directory.Record, error) {
	if !strings.HasPrefix(key, "/"+keyNamespace+"/") {
		return nil, fmt.Errorf("dhtstore: %w: %q", ErrNotCeibaKey, truncate(key))
	}
	tag, ok := directory.SealedTag(value)
	if !ok {
		return nil, fmt.Errorf("dhtstore: value under %s: %w", short(key), &directory.RejectError{Reason: directory.ErrMalformed, Detail: "not a sealed record"})
	}
	kr := v.keyring()
	_, rk, ok := kr.ByTag(tag)
	if !ok {
		// A node without the key cannot check the value, so it must not
		// store or serve it: an unverifiable value could be anything.
		return nil, fmt.Errorf("dhtstore: value under %s: %w", short(key), &directory.RejectError{Reason: directory.ErrNoKey, Detail: "key tag " + tag.String()})
	}
	r, err := directory.Open(value, v.net, kr)
	if err != nil {
		return nil, fmt.Errorf("dhtstore: value under %s: %w", short(key), err)
	}
	slot, err := r.Slot()
	if err != nil {
		return nil, fmt.Errorf("dhtstore: value under %s: %w", short(key), err)
	}
	// The key must be the record's own slot blinded under the epoch the
	// value is sealed in. Without this, anyone holding the read key could
	// put a valid but unrelated record under another record's key and
	// shadow it.
	if directory.BlindSlot(rk, directory.SlotIDOf(slot)) != key {
		return nil, fmt.Errorf("dhtstore: %w: %s record for slot %s offered under %s", ErrWrongSlot, r.Type, slot, short(key))
	}
	return r, nil
}

// Select implements record.Validator. Invalid values never win; among
// valid ones the best by directory.Better wins, and of equals the first,
// which lets a republished copy (same record, fresh nonce) replace the
// stored one and so renew its age in the DHT.
func (v *validator) Select(key string, values [][]byte) (int, error) {
	best := -1
	var bestRec *directory.Record
	var firstErr error
	for i, val := range values {
		r, err := v.open(key, val)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if best < 0 || directory.Better(r, bestRec) {
			best, bestRec = i, r
		}
	}
	if best < 0 {
		if firstErr == nil {
			firstErr = errors.New("no values to select from")
		}
		return 0, fmt.Errorf("dhtstore: no valid value under %s: %w", short(key), firstErr)
	}
	return best, nil
}

// short shortens a blinded key for messages and logs; the full key is 60
// characters of noise.
func short(key string) string {
	const keep = len("/ceiba/") + 12
	if len(key) <= keep {
		return key
	}
	return key[:keep] + "…"
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
