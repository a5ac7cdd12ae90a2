package sim

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ceiba-network/ceiba/directory"
	ceibanode "github.com/ceiba-network/ceiba/node"
)

// The bare baseline is a second GossipSub router on every host, under a
// protocol ID of its own so it cannot share state with the node's router
// (one host holds one handler per protocol, and the node's router accepts
// subscriptions to its own topic only). It runs over the same connections
// and links, with the node's GossipSub settings (flood publish, strict
// signing, message ID = hash of the data, no peer exchange, same size cap)
// and nothing else: no topic validator, no peer scoring, no Ceiba work.
const (
	bareProtocol protocol.ID = "/ceiba-bench/meshsub/1.3.0"
	bareTopic                = "/ceiba-bench/bare"
)

type bareRouter struct {
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
}

func bareFeatures(pubsub.GossipSubFeature, protocol.ID) bool { return true }

func startBare(ctx context.Context, h host.Host, node int, tr *tracker) (*bareRouter, error) {
	ps, err := pubsub.NewGossipSub(ctx, h,
		pubsub.WithGossipSubProtocols([]protocol.ID{bareProtocol}, bareFeatures),
		// The node's parameters: the baseline differs from Ceiba only in
		// what Ceiba adds, not in how GossipSub is tuned.
		pubsub.WithGossipSubParams(ceibanode.GossipSubParams()),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			h := sha256.Sum256(m.Data)
			return string(h[:])
		}),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithMaxMessageSize(directory.MaxSealedBytes+16<<10),
	)
	if err != nil {
		return nil, fmt.Errorf("sim: bare GossipSub: %w", err)
	}
	t, err := ps.Join(bareTopic)
	if err != nil {
		return nil, err
	}
	sub, err := t.Subscribe()
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			tr.mark(sha256.Sum256(m.Data), node, time.Now())
		}
	}()
	return &bareRouter{ps: ps, topic: t, sub: sub}, nil
}
