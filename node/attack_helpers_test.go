package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"golang.org/x/time/rate"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Helpers shared by the adversarial suite (adversary_test.go,
// insider_test.go, partition_test.go, crashstorm_test.go, soak_test.go).

// cluster is an in-process network of nodes on libp2p's mock network.
type cluster struct {
	t     testing.TB
	nw    *dirtest.Network
	mn    mocknet.Mocknet
	nodes []*Node
	// extras are the identities newCluster made up for nodes the test
	// gave none: admitAll admits them, since only admitted keys sync.
	extras []*directory.Identity
}

// newCluster starts size nodes of nw on a mock network, each with its own
// identity (ids[i] when given), linked to every other node but connected
// only as connect says (nil: a ring plus two random chords per node).
func newCluster(t testing.TB, nw *dirtest.Network, size int, ids []*directory.Identity, mod func(i int, c *Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, nw: nw, mn: mocknet.New()}
	t.Cleanup(func() { c.mn.Close() })
	for i := range size {
		h, err := c.mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		var id *directory.Identity
		if i < len(ids) && ids[i] != nil {
			id = ids[i]
		} else {
			id = dirtest.MustIdentity(t)
			c.extras = append(c.extras, id)
		}
		cfg := testConfig(t, nw, id, "")
		cfg.Host = h
		cfg.Datastore = dssync.MutexWrap(datastore.NewMapDatastore())
		cfg.SyncInterval = time.Second
		if mod != nil {
			mod(i, &cfg)
		}
		c.nodes = append(c.nodes, startNode(t, cfg))
	}
	if err := c.mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	return c
}

// admitExtras publishes on node i, into ref, the admissions of the nodes
// newCluster made identities for: every node of a real network runs under
// an admitted key, and a node serves sync only to admitted keys.
func (c *cluster) admitExtras(ref *reference, i int) {
	c.t.Helper()
	for k, id := range c.extras {
		ref.publish(c.nodes[i], c.nw.Admit(c.t, id, fmt.Sprintf("Nodo %d", k)))
	}
}

// topicUp waits until every node knows min peers on the network's topic:
// from then on what one publishes reaches its topic peers by gossip. A
// revoked key's node learns of its revocation only that way, since no
// node serves it sync any more.
func topicUp(t testing.TB, min int, nodes ...*Node) {
	t.Helper()
	if !waitUntil(15*time.Second, func() bool {
		for _, n := range nodes {
			if n.Status().TopicPeers < min {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the topic did not come up: fewer than %d topic peers on some node", min)
	}
}

// meshUp connects the nodes as a ring with two random chords each: a
// connected graph far from complete, as a real network would be.
func (c *cluster) meshUp(seed uint64) {
	c.t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	n := len(c.nodes)
	for i := range c.nodes {
		c.connect(i, (i+1)%n)
		c.connect(i, rng.IntN(n))
		c.connect(i, rng.IntN(n))
	}
}

func (c *cluster) connect(i, j int) {
	c.t.Helper()
	if i == j {
		return
	}
	if _, err := c.mn.ConnectPeers(c.nodes[i].Host().ID(), c.nodes[j].Host().ID()); err != nil {
		c.t.Fatal(err)
	}
}

// attacker adds a bare host to the mock network, linked to every node.
func (c *cluster) attacker() host.Host {
	c.t.Helper()
	h, err := c.mn.GenPeer()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.mn.LinkAll(); err != nil {
		c.t.Fatal(err)
	}
	return h
}

func (c *cluster) converged(want directory.Hash) bool { return sameDigest(c.nodes, want) }

// convergedWithKey reports whether every node holds want and the read key
// of epoch.
func (c *cluster) convergedWithKey(want directory.Hash, epoch uint64) bool {
	if !c.converged(want) {
		return false
	}
	for _, n := range c.nodes {
		if n.Status().KeyEpoch != epoch {
			return false
		}
	}
	return true
}

// recordAll starts recording the events of every node.
func (c *cluster) recordAll() []*recorder {
	recs := make([]*recorder, len(c.nodes))
	for i, n := range c.nodes {
		recs[i] = record(n)
	}
	return recs
}

// connectAll connects host m to every node.
func (c *cluster) connectAll(m host.Host) {
	c.t.Helper()
	for _, n := range c.nodes {
		if _, err := c.mn.ConnectPeers(m.ID(), n.Host().ID()); err != nil {
			c.t.Fatal(err)
		}
	}
}

// rawTopic joins the network's topic from a host that runs no validator:
// what it publishes reaches the honest nodes' validators unfiltered.
func rawTopic(t testing.TB, h host.Host, key directory.ReadKey) rawTopics {
	t.Helper()
	topic, _ := capturingTopic(t, h, key)
	return topic
}

// wireGossipOptions are the pubsub settings a peer needs for the node to
// take its messages at all (PROTOCOL.md §7): no author, no signature,
// message IDs by content. An attacker that knows the topic knows these.
func wireGossipOptions() []pubsub.Option {
	return []pubsub.Option{
		pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(messageID),
	}
}

// rawTopics are the network's two topics as a host without a validator
// joins them: the embedded Topic is governance, where Publish puts junk
// and anything else it is given; publishRecord picks the topic a record's
// type belongs on, as an honest publisher would.
type rawTopics struct {
	*pubsub.Topic
	entries *pubsub.Topic
}

func (rt rawTopics) publishRecord(ctx context.Context, r *directory.Record, sealed []byte) error {
	if onEntriesTopic(r.Type) {
		return rt.entries.Publish(ctx, sealed)
	}
	return rt.Publish(ctx, sealed)
}

// capturingTopic is rawTopic that also keeps what the host receives on
// either topic: what a peer without keys sees of the network's traffic.
func capturingTopic(t testing.TB, h host.Host, key directory.ReadKey) (rawTopics, func() [][]byte) {
	t.Helper()
	var mu sync.Mutex
	var seen [][]byte
	ps, err := pubsub.NewGossipSub(t.Context(), h, wireGossipOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var topics []*pubsub.Topic
	for _, name := range []string{GovernanceTopic(key), EntriesTopic(key)} {
		topic, err := ps.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
		go func() {
			for {
				m, err := sub.Next(t.Context())
				if err != nil {
					return
				}
				if m.ReceivedFrom != h.ID() {
					mu.Lock()
					seen = append(seen, m.Data)
					mu.Unlock()
				}
			}
		}()
	}
	return rawTopics{Topic: topics[0], entries: topics[1]}, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// frame is one sync protocol frame: uvarint length, type, body.
func frame(typ byte, body []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(body)+1))
	out = append(out, typ)
	return append(out, body...)
}

// insiderHello is a valid hello from initiator to responder by the holder
// of id, dated at the network's clock, claiming the keys of the given
// epochs. Whether the responder serves it depends on what id is there.
func insiderHello(id *directory.Identity, nw *dirtest.Network, initiator, responder peer.ID, epochs ...uint64) []byte {
	s := newSyncer(&Node{cfg: Config{Network: nw.ID}})
	body := append(s.proof('I', initiator, responder), signedHello(id, nw.ID, initiator, responder, nw.Now, epochs)...)
	return frame(msgHello, body)
}

// unlimitedSync lifts n's sync budgets, for tests that are about something
// else and open many sessions from one key.
func unlimitedSync(n *Node) {
	b := n.sync.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lim = syncLimits{bytesPerSec: rate.Inf, bytesBurst: 1 << 40, sessionsPerSec: rate.Inf, sessionsBurst: 1 << 30}
	clear(b.keys)
	clear(b.peers)
}

// insiderAck is a valid helloAck from responder to initiator.
func insiderAck(nw directory.NetworkID, initiator, responder peer.ID, count uint32, root directory.Hash) []byte {
	s := newSyncer(&Node{cfg: Config{Network: nw}})
	body := s.proof('R', initiator, responder)
	body = binary.BigEndian.AppendUint32(body, count)
	return frame(msgHelloAck, append(body, root[:]...))
}

// entries returns n entries of org with ids prefix-0 … prefix-(n-1).
func entries(t testing.TB, nw *dirtest.Network, org *directory.Identity, prefix string, n int) []*directory.Record {
	var out []*directory.Record
	for i := range n {
		out = append(out, entryRec(t, nw, org, fmt.Sprintf("%s-%d", prefix, i), 1))
	}
	return out
}

// hasNone reports whether no node holds any of recs.
func hasNone(nodes []*Node, recs ...*directory.Record) bool {
	for _, n := range nodes {
		for _, r := range recs {
			if n.State().Has(r.Hash()) {
				return false
			}
		}
	}
	return true
}

// waitUntil polls cond until it holds or timeout passes, and reports
// whether it held; for tests that explain a failure before failing.
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// govTopic is the node's current governance topic (its sealing epoch's).
func (n *Node) govTopic() *pubsub.Topic {
	if kt := n.currentTopics(); kt != nil {
		return kt.gov
	}
	return nil
}

// entriesTopic is the node's current entries topic.
func (n *Node) entriesTopic() *pubsub.Topic {
	if kt := n.currentTopics(); kt != nil {
		return kt.ent
	}
	return nil
}
