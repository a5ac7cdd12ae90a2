package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/transport"
)

// A network gossips on two GossipSub topics (PROTOCOL.md §7):
//
//   - governance: every record that is not an entry (charter, memberships,
//     readers, revocations, epochs and their pages, approvals, evidence,
//     heartbeats). Low-rate, bounded by what stewards sign; every node
//     subscribes.
//   - entries: organizations' entries, the bulk of the traffic and the
//     part one member can churn. Nodes subscribe unless they run the
//     lowdata profile: a lowdata node joins it only to publish its own
//     entries, and takes other entries by sync, which offers only current
//     versions and pulls each record once. So on a byte-capped link no
//     entry byte arrives by gossip, a superseded version is never sent to
//     it, and several peers forwarding the same churn cost it nothing:
//     revocations arrive without queuing behind entries.
//
// Both names are derived from a read key (PROTOCOL.md §7), never the
// network's name or ID: a peer without the key cannot tell which network a
// topic belongs to, and each rotation moves the network to new names,
// which a device the rotation revoked cannot compute. A node is on the
// topics of its sealing epoch's key and of the epoch before (topics.go).
func GovernanceTopic(key directory.ReadKey) string {
	return directory.TopicName(key, directory.TopicGovernance)
}

// EntriesTopic is the key's entries topic (see GovernanceTopic).
func EntriesTopic(key directory.ReadKey) string {
	return directory.TopicName(key, directory.TopicEntries)
}

// onEntriesTopic says which topic a record travels on.
func onEntriesTopic(t directory.RecordType) bool { return t == directory.TypeEntry }

// ErrWrongTopic refuses a gossiped record on the other topic than its type
// belongs to. Every node, honest or not, knows the rule, and a node
// forwards only what it validated, so only the first sender breaks it.
var ErrWrongTopic = errors.New("node: record gossiped on the wrong topic (entries go on the entries topic, everything else on governance)")

// ErrWrongKeyTopic refuses a gossiped message that is not sealed under the
// key its topic is named from. Every record travels on the topics of the
// key it is sealed under, so an honest node never sends one elsewhere.
var ErrWrongKeyTopic = errors.New("node: message gossiped on another key's topic than the key it is sealed under")

// subscribesToEntries says whether this node takes entries by gossip.
func (n *Node) subscribesToEntries() bool {
	return n.cfg.Transport.Profile != transport.ProfileLowData
}

// Peer-score thresholds. An honest peer never falls below zero for long: it
// never sends records that fail to open or verify. Each invalid message
// costs invalidWeight × (count)², so one is forgiven (a bit flip), two put
// a peer below the gossip and publish thresholds, three graylist it: its
// messages are dropped before validation.
const (
	GossipThreshold   = -100
	PublishThreshold  = -200
	GraylistThreshold = -400

	invalidWeight = -50
)

// messageID is the hash of the message's data: the same sealed bytes from
// any author are one message, and the ID says nothing about who sent it.
func messageID(m *pb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

// topicParams are every topic's score parameters, set on each topic as the
// node joins it (topics.go).
func topicParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation: true,
		TopicWeight:          1,
		// P1, P2: a little credit for staying in the mesh and for
		// delivering new records first, capped by TopicScoreCap.
		TimeInMeshWeight:             0.01,
		TimeInMeshQuantum:            time.Second,
		TimeInMeshCap:                600,
		FirstMessageDeliveriesWeight: 1,
		FirstMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:    20,
		// P3 (mesh delivery rate) is off: directory traffic is
		// bursty and rare, so a quiet mesh peer is not a bad one.
		// P4: invalid messages, heavily, forgotten over an hour.
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

func scoreParams(topics []string, app func(peer.ID) float64) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		// The same parameters on every topic: an invalid message costs
		// as much on one as on another, and the cap below bounds the
		// credit from all of them together.
		Topics:            map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:     30,
		AppSpecificScore:  app,
		AppSpecificWeight: 1,
		// Many peers behind one address is how a sybil looks; loopback is
		// exempt so tests and the demo work.
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 10,
		IPColocationFactorWhitelist: []*net.IPNet{loop4, loop6},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               pubsub.DefaultDecayInterval,
		DecayToZero:                 pubsub.DefaultDecayToZero,
		// A graylisted peer that reconnects keeps its score.
		RetainScore: time.Hour,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           100, // peer exchange is off anyway
		OpportunisticGraftThreshold: 3,
	}
	for _, t := range topics {
		params.Topics[t] = topicParams()
	}
	return params, thresholds
}

func (n *Node) startGossip() error {
	params, thresholds := scoreParams(nil, n.sync.appScore)
	n.outq = newOutQueues()
	n.topicFilter = newTopicFilter()
	n.topicsWake = make(chan struct{}, 1)
	// GossipSub gets a view of the host that lets it use relay circuits
	// (limited.go), so records and revocations reach peers that can be
	// reached no other way. The DHT is not given it.
	ps, err := pubsub.NewGossipSub(n.ctx, newGossipHost(n.host),
		// v1.2 and later peers send IDONTWANT for every message of 1 KiB
		// or more (every sealed record is) to their other mesh peers as
		// soon as it arrives, before validating it: a large record a
		// node is already receiving is not sent to it again.
		pubsub.WithGossipSubProtocols(gossipProtocolIDs, pubsub.GossipSubDefaultFeatures),
		pubsub.WithGossipSubParams(GossipSubParams()),
		// No author, sequence number or signature at the pubsub layer:
		// the record's own signature, inside the seal, proves who wrote
		// it, and a pubsub author would tell every node which peer first
		// published each record, i.e. which IP address is an
		// organization's. Message IDs are the hash of the data.
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(directory.MaxSealedBytes+16<<10),
		// Tracking other topics' subscriptions would only let peers make
		// this node keep state for them: the filter lets through only the
		// topics the node is on now (topics.go), which change with its
		// keys. A lowdata node tracks the entries topics too: it
		// publishes its own entries there.
		pubsub.WithSubscriptionFilter(n.topicFilter),
		pubsub.WithValidateQueueSize(256),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.inspectScores), time.Second),
		// How full each peer's outbound queue is, for publishing a
		// rotation's pages no faster than they drain (rotation.go).
		pubsub.WithRawTracer(n.outq),
		pubsub.WithLogger(n.log.With("component", "gossipsub")),
	)
	if err != nil {
		return fmt.Errorf("node: starting GossipSub: %w", err)
	}
	n.ps = ps
	if err := n.refreshTopics(); err != nil {
		return err
	}
	n.wg.Go(n.topicsLoop)
	return nil
}

// outboundQueue is how many RPCs GossipSub queues for each peer; it drops
// what does not fit. At the default 32 a burst of 300 publications lost 1
// to 2% of its records on every node of a ten-node network, to wait for the
// next sync round; at 64 none (TestBurstOfPublicationsArrivesByGossip). 128
// did as well, but in the simulator, where every node shares two cores, it
// let backlogs grow: a revocation's ratio to bare GossipSub at N = 100 rose
// from 1.6 to 1.85. Queued RPCs share the message bytes with every other
// queue, but a peer that stops reading keeps the last outboundQueue
// messages sent to it alive, up to about 17 MiB of the largest records (the
// default kept half that); entries are about 1 KiB each.
const outboundQueue = 64

// GossipSubParams are GossipSub's defaults but for one: each heartbeat a node
// announces (IHAVE) what it has newly seen to every topic peer outside its
// mesh, not to a random quarter of them. A member's node has far more
// peers than its mesh holds, most of them readers, which connect to
// members only (SECURITY.md, readers); with the default quarter, a reader
// outside every mesh missed a record's announcements from all three of its
// members about once in a hundred (BenchmarkReaders: 1 of 300 nodes at 50
// members and 250 readers, on an idle machine) and waited for the next sync.
// An announcement is a list of 32-byte message IDs, sent only while there
// are new ones. Exported for the simulator's bare GossipSub baseline,
// which runs with the same parameters so that it measures what Ceiba adds.
func GossipSubParams() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.GossipFactor = 1
	return p
}

// joinTopic joins one of the network's topics, with its validator that
// takes only messages sealed under the key tag, and subscribes to it when
// subscribe is set.
func (n *Node) joinTopic(name string, tag directory.KeyTag, entries, subscribe bool) (*pubsub.Topic, *pubsub.Subscription, error) {
	validate := func(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		return n.validate(ctx, from, msg, tag, entries)
	}
	n.topicFilter.allow(name)
	if err := n.ps.RegisterTopicValidator(name, validate, pubsub.WithValidatorTimeout(30*time.Second)); err != nil {
		return nil, nil, fmt.Errorf("node: topic validator: %w", err)
	}
	t, err := n.ps.Join(name)
	if err != nil {
		return nil, nil, fmt.Errorf("node: joining a topic: %w", err)
	}
	// Score parameters per topic: without them an invalid message on the
	// topic would cost its sender nothing.
	if err := t.SetScoreParams(topicParams()); err != nil {
		return nil, nil, fmt.Errorf("node: topic score parameters: %w", err)
	}
	if !subscribe {
		return t, nil, nil
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, nil, fmt.Errorf("node: subscribing: %w", err)
	}
	// The validator does all the work; the subscription exists so peers
	// count this node in the topic's mesh, and is drained so pubsub never
	// has to drop for it. It ends when the node leaves the topic.
	n.wg.Go(func() {
		for {
			if _, err := sub.Next(n.ctx); err != nil {
				return
			}
		}
	})
	return t, sub, nil
}

// validate is the topics' validator: a message is accepted (and forwarded)
// only once its record is applied; its durable write follows, behind
// (writebehind.go). tag is the key tag of the
// topic the message came on, entries says which of the key's two topics.
func (n *Node) validate(_ context.Context, from peer.ID, msg *pubsub.Message, tag directory.KeyTag, entries bool) pubsub.ValidationResult {
	if from == n.host.ID() {
		// Our own Publish or Import, applied and stored before it was
		// handed to pubsub.
		return pubsub.ValidationAccept
	}
	if got, ok := directory.SealedTag(msg.Data); !ok || got != tag {
		// Every record travels on the topic of the key it is sealed
		// under; an honest node never sends one elsewhere. Refused
		// before opening: a topic is not a way in for records under a
		// key nobody on it holds, nor a way to make the node sync.
		n.events.publish(Event{Kind: EventRejected, Via: ViaGossip, From: from, Err: ErrWrongKeyTopic})
		return pubsub.ValidationReject
	}
	if !n.enter() {
		return pubsub.ValidationIgnore
	}
	defer n.leave()
	_, v, out, _ := n.ingestGossip(msg.Data, from, entries)
	switch v {
	case accepted:
		kr := n.keyringSnapshot()
		if e, _ := directory.SealedEpoch(msg.Data, kr); e < n.sealEpoch() {
			if mine, _ := directory.SealedEpoch(out, kr); mine >= n.sealEpoch() {
				// Sealed under a key older than ours, by a publisher that
				// has not rotated yet: keep it, but do not spread it under
				// that key, which a revoked device may hold. Sync hands it
				// on resealed under the newer key. (Epoch records and
				// their approvals travel under the older key: sealFor.)
				return pubsub.ValidationIgnore
			}
		}
		return pubsub.ValidationAccept
	case invalid:
		return pubsub.ValidationReject
	}
	return pubsub.ValidationIgnore
}

func (n *Node) inspectScores(scores map[peer.ID]float64) {
	n.scoresMu.Lock()
	defer n.scoresMu.Unlock()
	n.scores = maps.Clone(scores)
}
