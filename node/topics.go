package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// A node is on the two topics (governance, entries) of two read keys: its
// sealing epoch's, where it publishes and takes everything new, and the
// epoch before's, where a rotation's epoch record, its pages and approvals
// travel (sealFor seals them under the older key, so nodes that have not
// opened the new key yet still get them) and where publishers that have
// not rotated yet still publish. It leaves older topics when its sealing
// epoch moves on: a device revoked at a rotation holds only the older keys,
// so it can neither name the new topics nor be sent anything on them, even
// while it stays connected to the node.
type keyTopics struct {
	epoch      uint64
	tag        directory.KeyTag
	gov, ent   *pubsub.Topic
	govSub     *pubsub.Subscription
	entSub     *pubsub.Subscription // nil on a lowdata node
	validators []string             // registered topic validators, to unregister
}

// topicFilter is GossipSub's subscription filter. The node subscribes
// only to the topics it is on now (names, which change with its keys).
// From peers it takes subscriptions to its own topics, and also to other
// well-formed topic names, at most foreignTopicsPerWindow new ones per
// foreignTopicWindow: a peer that opened a rotation's key before this node
// announces the new topics once, when it joins them, and pubsub has no way
// to ask again, so a node that threw that announcement away would not know
// the peer is on the topics it joins a moment later, and could not publish
// to it (flood publishing goes to the peers known to be on the topic). The
// budget bounds what a peer can make the node keep (a name, and the peers
// on it, in pubsub's table) by announcing made-up names; a peer that spends
// it only delays the mesh of the next rotation, which sync covers.
type topicFilter struct {
	mu      sync.Mutex
	names   map[string]struct{}
	foreign map[string]time.Time // other names taken, and since when
	window  time.Time            // start of the current budget window
	spent   int                  // new foreign names taken in the window
	now     func() time.Time
}

const (
	foreignTopicsPerWindow = 64
	foreignTopicWindow     = 10 * time.Minute
	// maxSubsPerRPC bounds one RPC's subscription changes: an honest
	// peer is on at most four topics and changes them two at a time.
	maxSubsPerRPC = 16
)

func newTopicFilter() *topicFilter {
	return &topicFilter{names: map[string]struct{}{}, foreign: map[string]time.Time{}, now: time.Now}
}

func (f *topicFilter) allow(name string) {
	f.mu.Lock()
	f.names[name] = struct{}{}
	delete(f.foreign, name)
	f.mu.Unlock()
}

func (f *topicFilter) forbid(name string) {
	f.mu.Lock()
	delete(f.names, name)
	f.mu.Unlock()
}

// CanSubscribe implements pubsub.SubscriptionFilter: the node's own joins.
func (f *topicFilter) CanSubscribe(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.names[name]
	return ok
}

// FilterIncomingSubscriptions implements pubsub.SubscriptionFilter.
func (f *topicFilter) FilterIncomingSubscriptions(_ peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	if len(subs) > maxSubsPerRPC {
		return nil, fmt.Errorf("node: %d subscription changes in one message, at most %d", len(subs), maxSubsPerRPC)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return pubsub.FilterSubscriptions(subs, f.takes), nil
}

// takes says whether a peer's subscription to name is kept. f.mu is held.
func (f *topicFilter) takes(name string) bool {
	if _, ok := f.names[name]; ok {
		return true
	}
	if !wellFormedTopic(name) {
		return false
	}
	now := f.now()
	if since, ok := f.foreign[name]; ok && now.Sub(since) < foreignTopicWindow {
		return true
	}
	if now.Sub(f.window) >= foreignTopicWindow {
		f.window, f.spent = now, 0
		for n, since := range f.foreign {
			if now.Sub(since) >= foreignTopicWindow {
				delete(f.foreign, n)
			}
		}
	}
	if f.spent >= foreignTopicsPerWindow {
		return false
	}
	f.spent++
	f.foreign[name] = now
	return true
}

// wellFormedTopic says whether name has the form of a Ceiba topic name:
// "/ceiba/t/" and 32 lowercase hex digits.
func wellFormedTopic(name string) bool {
	const prefix = "/ceiba/t/"
	if len(name) != len(prefix)+32 || name[:len(prefix)] != prefix {
		return false
	}
	for _, c := range name[len(prefix):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// wantedTopics is the keys whose topics the node should be on: its sealing
// epoch's and, if it holds it, the epoch before's. Empty before the node
// holds any key.
func (n *Node) wantedTopics() map[directory.KeyTag]uint64 {
	kr := n.keyringSnapshot()
	want := map[directory.KeyTag]uint64{}
	for _, e := range directory.GossipEpochs(n.state.Epochs(), kr) {
		want[kr[e].Tag()] = e
	}
	return want
}

// refreshTopics joins the topics of the keys wantedTopics names and leaves
// the others.
func (n *Node) refreshTopics() error {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	if n.ps == nil || n.ctx.Err() != nil {
		return nil
	}
	want := n.wantedTopics()
	for tag, kt := range n.topics {
		if _, ok := want[tag]; !ok {
			n.leaveTopics(kt)
			delete(n.topics, tag)
			n.log.Debug("left the topics of an older key", "epoch", kt.epoch)
		}
	}
	kr := n.keyringSnapshot()
	moved := len(n.topics) > 0
	var joined []*pubsub.Topic
	for tag, e := range want {
		if _, ok := n.topics[tag]; ok {
			continue
		}
		kt, err := n.joinTopics(e, kr[e])
		if err != nil {
			return err
		}
		n.topics[tag] = kt
		joined = append(joined, kt.gov)
		n.log.Debug("joined the topics of a key", "epoch", e)
	}
	if moved && len(joined) > 0 {
		time.AfterFunc(topicCatchUpAfter, func() { n.catchUpOnTopics(joined) })
	}
	return nil
}

// topicCatchUpAfter is how long after joining a new key's topics a node
// syncs with peers on them. GossipSub forwards a message only to the mesh
// and announces it (IHAVE) only to topic peers outside the mesh at the next
// heartbeat: a node that joins a topic a moment before a message arrives
// at its peers, and that they graft at that heartbeat, is sent neither,
// and nothing tells it the message exists. After a rotation that is when
// the next records arrive (a co-steward's approval, a rotation right
// after another, the first entries under the new key); in the simulator,
// rotations in quick succession left about one node in four runs without
// the next one's pages for 7 to 29 s, until its periodic sync
// (TestCatchUpAfterJoiningNewTopics). Two heartbeats cover the mesh
// forming on both sides.
var topicCatchUpAfter = 2 * pubsub.GossipSubHeartbeatInterval

// topicCatchUpPeers is how many peers on the new topics the node asks.
const topicCatchUpPeers = 2

// catchUpOnTopics asks up to topicCatchUpPeers peers on the given topics,
// which hold the key that names them, for a sync session.
func (n *Node) catchUpOnTopics(topics []*pubsub.Topic) {
	if n.ctx.Err() != nil {
		return
	}
	var peers []peer.ID
	for _, t := range topics {
		for _, p := range t.ListPeers() {
			if !slices.Contains(peers, p) {
				peers = append(peers, p)
			}
		}
	}
	shuffle(peers)
	asked := 0
	for _, p := range peers {
		if asked == topicCatchUpPeers {
			break
		}
		if n.sync.request(p) {
			asked++
		}
	}
	n.log.Debug("sync after joining a new key's topics", "peers", asked)
}

func (n *Node) joinTopics(epoch uint64, key directory.ReadKey) (*keyTopics, error) {
	kt := &keyTopics{epoch: epoch, tag: key.Tag()}
	gov, ent := GovernanceTopic(key), EntriesTopic(key)
	var err error
	if kt.gov, kt.govSub, err = n.joinTopic(gov, kt.tag, false, true); err != nil {
		return nil, err
	}
	kt.validators = append(kt.validators, gov)
	// A lowdata node joins the entries topic without subscribing: pubsub
	// then publishes its own entries to the topic's peers (fanout) but
	// no peer puts it in the topic's mesh or sends it the topic's
	// messages, and it drops any that come unasked, unvalidated.
	if kt.ent, kt.entSub, err = n.joinTopic(ent, kt.tag, true, n.subscribesToEntries()); err != nil {
		n.leaveTopics(kt)
		return nil, err
	}
	kt.validators = append(kt.validators, ent)
	return kt, nil
}

// leaveTopics unsubscribes from and closes a key's topics. Cancel hands
// the subscription to pubsub's event loop before it returns, so the topic
// has none left when Close asks the same loop to drop it.
func (n *Node) leaveTopics(kt *keyTopics) {
	for _, sub := range []*pubsub.Subscription{kt.govSub, kt.entSub} {
		if sub != nil {
			sub.Cancel()
		}
	}
	for _, t := range []*pubsub.Topic{kt.gov, kt.ent} {
		if t == nil {
			continue
		}
		name := t.String()
		if err := t.Close(); err != nil && !errors.Is(err, context.Canceled) {
			n.log.Debug("closing topic", "err", err)
		}
		n.topicFilter.forbid(name)
	}
	for _, name := range kt.validators {
		if err := n.ps.UnregisterTopicValidator(name); err != nil && n.ctx.Err() == nil {
			n.log.Debug("unregistering a topic validator", "err", err)
		}
	}
}

// closeTopics leaves every topic (Close).
func (n *Node) closeTopics() {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	for tag, kt := range n.topics {
		n.leaveTopics(kt)
		delete(n.topics, tag)
	}
}

// wakeTopics asks topicsLoop to look at the node's keys again. It never
// blocks: it is called from inside the topics' validators (a record that
// changed the keys), where joining a topic must not wait.
func (n *Node) wakeTopics() {
	if n.topicsWake == nil {
		return
	}
	select {
	case n.topicsWake <- struct{}{}:
	default:
	}
}

func (n *Node) topicsLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.topicsWake:
		}
		if err := n.refreshTopics(); err != nil && n.ctx.Err() == nil {
			n.log.Warn("changing gossip topics after a key change; will try again at the next one", "err", err)
		}
	}
}

// topicFor is the topic a record sealed as sealed travels on: the entries
// or governance topic of the key it is sealed under. It joins the key's
// topics if the node should be on them and has not got round to it yet (a
// key adopted a moment ago); nil when the key is not one the node is on
// (sync carries such a record).
func (n *Node) topicFor(sealed []byte, entries bool) (*pubsub.Topic, error) {
	tag, ok := directory.SealedTag(sealed)
	if !ok {
		return nil, fmt.Errorf("node: not a sealed record")
	}
	n.topicsMu.Lock()
	kt := n.topics[tag]
	n.topicsMu.Unlock()
	if kt == nil {
		if err := n.refreshTopics(); err != nil {
			return nil, err
		}
		n.topicsMu.Lock()
		kt = n.topics[tag]
		n.topicsMu.Unlock()
	}
	if kt == nil {
		return nil, nil
	}
	if entries {
		return kt.ent, nil
	}
	return kt.gov, nil
}

// currentTopics is the sealing epoch's pair of topics, nil when the node
// is on none yet.
func (n *Node) currentTopics() *keyTopics {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	var cur *keyTopics
	for _, kt := range n.topics {
		if cur == nil || kt.epoch > cur.epoch {
			cur = kt
		}
	}
	return cur
}

// topicNamed is the joined topic of that name, nil when the node is not on
// it.
func (n *Node) topicNamed(name string) *pubsub.Topic {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	for _, kt := range n.topics {
		for _, t := range []*pubsub.Topic{kt.gov, kt.ent} {
			if t.String() == name {
				return t
			}
		}
	}
	return nil
}

// topicPeers is the number of peers on the current governance topic.
func (n *Node) topicPeers() int {
	if kt := n.currentTopics(); kt != nil {
		return len(kt.gov.ListPeers())
	}
	return 0
}

// joinedTopics is the names of the topics the node is on, for tests and
// Status.
func (n *Node) joinedTopics() []string {
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	var out []string
	for _, kt := range n.topics {
		out = append(out, kt.gov.String(), kt.ent.String())
	}
	return out
}
