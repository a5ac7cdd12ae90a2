package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// TopicName is the GossipSub topic of a network. It is derived from the
// network ID, never its name, so a peer that does not hold the charter
// cannot tell which network a topic belongs to, or find it by name.
func TopicName(net directory.NetworkID) string {
	h := sha256.New()
	h.Write([]byte("ceiba topic v1"))
	h.Write(net[:])
	return "/ceiba/t/" + hex.EncodeToString(h.Sum(nil))[:32]
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

func scoreParams(topic string, app func(peer.ID) float64) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{
			topic: {
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
			},
		},
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
	return params, thresholds
}

func (n *Node) startGossip() error {
	topic := TopicName(n.cfg.Network)
	params, thresholds := scoreParams(topic, n.sync.appScore)
	// GossipSub gets a view of the host that lets it use relay circuits
	// (limited.go), so records and revocations reach peers that can be
	// reached no other way. The DHT is not given it.
	ps, err := pubsub.NewGossipSub(n.ctx, newGossipHost(n.host),
		pubsub.WithGossipSubProtocols(gossipProtocolIDs, pubsub.GossipSubDefaultFeatures),
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
		// this node keep state for them.
		pubsub.WithSubscriptionFilter(pubsub.NewAllowlistSubscriptionFilter(topic)),
		pubsub.WithValidateQueueSize(256),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.inspectScores), time.Second),
		pubsub.WithLogger(n.log.With("component", "gossipsub")),
	)
	if err != nil {
		return fmt.Errorf("node: starting GossipSub: %w", err)
	}
	if err := ps.RegisterTopicValidator(topic, n.validate, pubsub.WithValidatorTimeout(30*time.Second)); err != nil {
		return fmt.Errorf("node: topic validator: %w", err)
	}
	t, err := ps.Join(topic)
	if err != nil {
		return fmt.Errorf("node: joining the topic: %w", err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		return fmt.Errorf("node: subscribing: %w", err)
	}
	n.ps, n.topic, n.sub = ps, t, sub
	// The validator does all the work; the subscription exists so peers
	// count this node in the topic's mesh, and is drained so pubsub never
	// has to drop for it.
	n.wg.Go(func() {
		for {
			if _, err := sub.Next(n.ctx); err != nil {
				return
			}
		}
	})
	return nil
}

// validate is the topic validator: a message is accepted (and forwarded)
// only once its record is applied and durable.
func (n *Node) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	if from == n.host.ID() {
		// Our own Publish or Import, applied and stored before it was
		// handed to pubsub.
		return pubsub.ValidationAccept
	}
	if !n.enter() {
		return pubsub.ValidationIgnore
	}
	defer n.leave()
	_, v, out, _ := n.ingestSealed(msg.Data, from, ViaGossip)
	switch v {
	case accepted:
		if e, _ := directory.SealedEpoch(msg.Data); e < n.sealEpoch() {
			if mine, _ := directory.SealedEpoch(out); mine >= n.sealEpoch() {
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
