//go:build !js

package core_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/webapp/core"
)

// The web app listens where a Go node holding the same keys listens, and
// judges what comes there as a node's validator does: the topics are the
// node's names (its sealing epoch's and the one before), a record on the
// right topic is applied and searchable, one on another key's topic or the
// other kind's topic, or one that does not open, is rejected (its sender
// is scored down and it is not forwarded), a copy held already or a
// topic the reader is not on is ignored; with a rotation's epoch record
// and not its pages it says it awaits them (the page then syncs); after a
// rotation that came by gossip the reader is on the new key's topics and
// takes what is published there.
func TestGossipAsANodeJudgesIt(t *testing.T) {
	w := newWasmNetwork(t)
	ks, err := directory.DecryptKeystore(w.keystore, wasmPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewReader(w.nw.ID, ks.Identity, ks.Keys, nil)
	names := func() []string {
		var out []string
		for _, tp := range r.Topics() {
			out = append(out, tp.Name)
		}
		slices.Sort(out)
		return out
	}
	nodeNames := func(keys ...directory.ReadKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, node.GovernanceTopic(k), node.EntriesTopic(k))
		}
		slices.Sort(out)
		return out
	}
	k1, k2 := w.keys[1], w.keys[2]
	if got, want := names(), nodeNames(k1); !slices.Equal(got, want) {
		t.Fatalf("holding epoch 1's key, the reader listens on %v, a node on %v", got, want)
	}
	topicOf := func(s []byte, key directory.ReadKey) (right, wrong string) {
		rec, err := directory.Open(s, w.nw.ID, w.keys)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type == directory.TypeEntry {
			return node.EntriesTopic(key), node.GovernanceTopic(key)
		}
		return node.GovernanceTopic(key), node.EntriesTopic(key)
	}
	var entry1 []byte // an entry sealed under epoch 1's key
	awaited := false  // the rotation's epoch record came before its pages
	for _, s := range w.sealed {
		tag, _ := directory.SealedTag(s)
		key := k1
		if tag == k2.Tag() {
			key = k2
		}
		right, wrong := topicOf(s, key)
		if key == k1 {
			if _, v, err := r.Gossip(wrong, s); v != core.Reject || !errors.Is(err, core.ErrWrongTopic) {
				t.Errorf("a record on the other kind's topic: %s (%v), want reject", v, err)
			}
			if rec, _ := directory.Open(s, w.nw.ID, w.keys); rec.Type == directory.TypeEntry && entry1 == nil {
				entry1 = s
			}
		}
		a, v, err := r.Gossip(right, s)
		if v != core.Accept {
			t.Fatalf("a record on its own topic: %s (%v), want accept", v, err)
		}
		if a.Type == directory.TypeEpoch && !r.Status().KeyHeld {
			awaited = true
			if !r.AwaitsPages() {
				t.Error("with a rotation's epoch record and none of its pages, the reader does not say it awaits them")
			}
		}
		if _, v, _ := r.Gossip(right, s); v != core.Ignore {
			t.Errorf("a copy of a record held: %s, want ignore", v)
		}
	}
	// The rotation came by gossip on epoch 1's governance topic: the
	// reader opened the new key, is on both keys' topics, and took the
	// entries published on the new ones.
	if got, want := names(), nodeNames(k1, k2); !slices.Equal(got, want) {
		t.Errorf("after the rotation the reader listens on %v, a node on %v", got, want)
	}
	if !awaited || r.AwaitsPages() {
		t.Errorf("the epoch record before its pages was seen: %v; holding the rotation's key, the reader still says it awaits its pages: %v", awaited, r.AwaitsPages())
	}
	if got := r.Search(directory.Query{Text: "psicosocial"}); len(got) != 1 {
		t.Errorf("the entry gossiped under the new key: found %d, want 1", len(got))
	}
	digest := r.Digest()

	// Sealed under the other key than its topic's: refused unopened.
	if _, v, err := r.Gossip(node.EntriesTopic(k2), entry1); v != core.Reject || !errors.Is(err, core.ErrWrongTopic) {
		t.Errorf("an epoch-1 record on epoch 2's topic: %s (%v), want reject", v, err)
	}
	// Bytes that do not open under the topic's key.
	bad := slices.Clone(entry1)
	bad[len(bad)-1] ^= 1
	if _, v, _ := r.Gossip(node.EntriesTopic(k1), bad); v != core.Reject {
		t.Errorf("a record that does not open: %s, want reject", v)
	}
	// A topic the reader is not on.
	if _, v, _ := r.Gossip(node.EntriesTopic(directory.NewReadKey()), entry1); v != core.Ignore {
		t.Errorf("a message on a topic the reader is not on: %s, want ignore", v)
	}
	if r.Digest() != digest {
		t.Error("a refused message changed the view")
	}
}
