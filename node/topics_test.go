package node

import (
	"slices"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"google.golang.org/protobuf/proto"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// After a rotation the nodes gossip on topics named from the new key. A
// device that holds only the old key (an insider whose key the rotation
// dropped, still admitted at the connection and still connected, in the
// mesh of the old topics, which the nodes keep for the epoch before) cannot
// name the new topics and is sent nothing published after the rotation,
// while a peer holding the new key gets it. A message sealed under the new
// key but sent on the old key's topic is refused, and costs its sender.
func TestRotationMovesGossipToTheNewKeysTopics(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgA := testConfig(t, nw, org, t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	nodes := []*Node{s, a}
	topicUp(t, 1, nodes...)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Uno"))
	waitFor(t, 15*time.Second, "the admission on both nodes", func() bool { return sameDigest(nodes, ref.digest()) })

	// The old-key device: in both nodes' mesh on epoch 1's topics.
	old := insiderHost(t, nw)
	oldTopics, oldSeen := capturingTopic(t, old, nw.Key)
	connectTo(t, old, s)
	connectTo(t, old, a)
	waitFor(t, 10*time.Second, "the old-key device on both nodes' entries topic", func() bool {
		return slices.Contains(a.entriesTopic().ListPeers(), old.ID()) && slices.Contains(s.entriesTopic().ListPeers(), old.ID())
	})

	rotateApproved(t, nw, s)
	waitFor(t, 20*time.Second, "both nodes to seal under epoch 2 and join its topics", func() bool {
		for _, n := range nodes {
			key, ok := n.Keyring()[2]
			if !ok || n.sealEpoch() != 2 || !slices.Contains(n.joinedTopics(), EntriesTopic(key)) {
				return false
			}
		}
		return true
	})
	key2 := s.Keyring()[2]
	if GovernanceTopic(key2) == GovernanceTopic(nw.Key) || EntriesTopic(key2) == EntriesTopic(nw.Key) {
		t.Fatal("the topic names did not change with the key")
	}
	// The epoch before's topics are kept (late publishers, the rotation's
	// own records); nothing older would be.
	if got := a.joinedTopics(); !slices.Contains(got, EntriesTopic(nw.Key)) || len(got) != 4 {
		t.Fatalf("member's node is on %d topics, want epoch 1's and 2's", len(got))
	}

	// A peer that holds the new key, on the new topics.
	fresh := insiderHost(t, nw)
	freshTopics, freshSeen := capturingTopic(t, fresh, key2)
	connectTo(t, fresh, s)
	connectTo(t, fresh, a)
	waitFor(t, 10*time.Second, "the new-key peer on both nodes' new entries topic", func() bool {
		return slices.Contains(a.entriesTopic().ListPeers(), fresh.ID()) && slices.Contains(freshTopics.entries.ListPeers(), a.Host().ID())
	})

	sealedUnder := func(seen [][]byte, key directory.ReadKey) int {
		c := 0
		for _, m := range seen {
			if tag, ok := directory.SealedTag(m); ok && tag == key.Tag() {
				c++
			}
		}
		return c
	}
	entry := entryRec(t, nw, org, "despues-de-rotar", 1)
	mustPublish(t, a, entry)
	waitFor(t, 15*time.Second, "the new-key peer to get the entry by gossip", func() bool { return sealedUnder(freshSeen(), key2) > 0 })
	// Gossip reached the new-key peer; give the old topics as long again.
	time.Sleep(2 * time.Second)
	if n := sealedUnder(oldSeen(), key2); n != 0 {
		t.Fatalf("the device holding only the old key was sent %d messages sealed under the new key", n)
	}

	// The old-key device holds a record sealed under the new key (say it
	// was handed one) and sends it on the old key's entries topic, which
	// the nodes are still on: refused there, and it costs the sender.
	other := entryRec(t, nw, org, "otro-tema", 1)
	sealed := directory.Seal(other, key2)
	if err := oldTopics.entries.Publish(t.Context(), sealed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the sender of the wrong-topic message to lose score", func() bool {
		sc, ok := s.PeerScore(old.ID())
		return ok && sc < 0
	})
	if !hasNone(nodes, other) {
		t.Fatal("a record sent on another key's topic was taken")
	}
	// The same record on its own key's topic is taken (sealed anew: pubsub
	// drops the same bytes as a message it has seen).
	if err := freshTopics.entries.Publish(t.Context(), directory.Seal(other, key2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the record on its own key's topic on both nodes", func() bool {
		return s.State().Has(other.Hash()) && a.State().Has(other.Hash())
	})
}

// The subscription filter keeps peers' subscriptions to the node's own
// topics always, to other well-formed topic names (a rotation's new topics,
// announced by a peer that opened the key first) within a budget per
// window, and to nothing else; the node itself can join only its own.
func TestTopicFilterBoundsForeignNames(t *testing.T) {
	f := newTopicFilter()
	now := time.Now()
	f.now = func() time.Time { return now }
	own := GovernanceTopic(directory.NewReadKey())
	f.allow(own)
	sub := func(names ...string) []*pb.RPC_SubOpts {
		var out []*pb.RPC_SubOpts
		for _, n := range names {
			out = append(out, &pb.RPC_SubOpts{Subscribe: proto.Bool(true), Topicid: proto.String(n)})
		}
		return out
	}
	kept := func(names ...string) int {
		got, err := f.FilterIncomingSubscriptions("", sub(names...))
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	if !f.CanSubscribe(own) || f.CanSubscribe(EntriesTopic(directory.NewReadKey())) {
		t.Fatal("the node may join only its own topics")
	}
	if kept(own, "/ceiba/t/not-hex-not-hex-not-hex-not-h", "/other/topic", "/ceiba/t/ABCDEF0123456789ABCDEF0123456789") != 1 {
		t.Fatal("a malformed topic name was kept, or the node's own was not")
	}
	next := EntriesTopic(directory.NewReadKey())
	if kept(next) != 1 {
		t.Fatal("a peer's subscription to the next rotation's topic was thrown away")
	}
	for range foreignTopicsPerWindow - 1 {
		kept(GovernanceTopic(directory.NewReadKey()))
	}
	if kept(GovernanceTopic(directory.NewReadKey())) != 0 {
		t.Fatalf("more than %d made-up names kept in one window", foreignTopicsPerWindow)
	}
	if kept(own, next) != 2 {
		t.Fatal("a spent budget drops the node's own topic or a name it already took")
	}
	now = now.Add(foreignTopicWindow)
	if kept(GovernanceTopic(directory.NewReadKey())) != 1 || len(f.foreign) != 1 {
		t.Fatalf("the budget did not come back after the window, or old names were kept (%d)", len(f.foreign))
	}
	if _, err := f.FilterIncomingSubscriptions("", sub(make([]string, maxSubsPerRPC+1)...)); err == nil {
		t.Fatal("an RPC with too many subscription changes was taken")
	}
}
