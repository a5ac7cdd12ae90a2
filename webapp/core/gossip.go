package core

import (
	"errors"

	"github.com/ceiba-network/ceiba/directory"
)

// Topic is one GossipSub topic the reader listens on while the app is open
// and connected (PROTOCOL.md §7).
type Topic struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // directory.TopicGovernance or TopicEntries
	Epoch uint64 `json:"epoch"`
}

// Topics are the topics a node holding this reader's keys and view is on
// (directory.GossipEpochs: the sealing epoch's key and the one before),
// named as the node names them. They change when a rotation brings a new
// key; the page subscribes again then.
func (r *Reader) Topics() []Topic {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Topic
	for _, e := range directory.GossipEpochs(r.state.Epochs(), r.keys) {
		for _, kind := range []string{directory.TopicGovernance, directory.TopicEntries} {
			out = append(out, Topic{Name: directory.TopicName(r.keys[e], kind), Kind: kind, Epoch: e})
		}
	}
	return out
}

// Verdict is what a GossipSub validator answers for a message.
type Verdict string

const (
	// Accept: the record was applied.
	Accept Verdict = "accept"
	// Ignore: nothing wrong with it that its sender is answerable for
	// (held already, superseded, waiting for a key or for governance),
	// or a topic this reader is not on.
	Ignore Verdict = "ignore"
	// Reject: no honest peer sends it (it does not open or verify, or it
	// came on another topic than its key and type say).
	Reject Verdict = "reject"
)

// ErrWrongTopic is a gossiped record on another topic than its key and type
// name: every honest node sends a record on the topic of the key it is
// sealed under, entries on the entries topic and everything else on the
// governance topic, and forwards only what it validated.
var ErrWrongTopic = errors.New("a record gossiped on another topic than its key and type say")

// Gossip takes one message that arrived on topic, as a node's validator
// does (node/gossip.go validate, node/ingest.go): refused before opening
// when it is not sealed under the topic's key, refused when it does not
// open or verify or is of the other topic's type, and otherwise applied as
// Receive applies a record. The error says why it was not accepted.
func (r *Reader) Gossip(topic string, sealed []byte) (directory.Applied, Verdict, error) {
	var kind string
	var key directory.ReadKey
	for _, t := range r.Topics() {
		if t.Name == topic {
			kind, key = t.Kind, r.Keys()[t.Epoch]
		}
	}
	if kind == "" {
		return directory.Applied{}, Ignore, errors.New("a message on a topic this reader is not on")
	}
	if tag, ok := directory.SealedTag(sealed); !ok || tag != key.Tag() {
		return directory.Applied{}, Reject, ErrWrongTopic
	}
	u, err := directory.OpenUnverified(sealed, r.net, r.Keys())
	if errors.Is(err, directory.ErrNoKey) {
		return directory.Applied{}, Ignore, err
	}
	if err != nil {
		return directory.Applied{}, Reject, err
	}
	if (u.Type() == directory.TypeEntry) != (kind == directory.TopicEntries) {
		return directory.Applied{}, Reject, ErrWrongTopic
	}
	if r.has(u.Hash()) {
		// Held already (it came by sync, or from another peer first),
		// and the hash covers the signatures: not verified again.
		return directory.Applied{}, Ignore, directory.ErrDuplicate
	}
	rec, err := u.Verify()
	if err != nil {
		return directory.Applied{}, Reject, err
	}
	a, err := r.take(sealed, rec)
	if err != nil {
		return a, Ignore, err
	}
	return a, Accept, nil
}

// AwaitsPages reports whether the view knows a rotation whose key this
// reader does not hold and whose pages it does not all hold. A node stops
// forwarding a rotation's pages once it has opened the new key with them
// (node/gossip.go validate: they are sealed under the older key), so a
// reader behind it gets the rest by sync; the page asks at once, as a
// node fetches missing pages (node/pagefetch.go), instead of at its next
// periodic sync.
func (r *Reader) AwaitsPages() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.awaitsPages()
}

func (r *Reader) awaitsPages() bool {
	for _, m := range r.state.IncompleteRotations() {
		if _, held := r.keys[m.Number]; !held {
			return true
		}
	}
	return false
}
