package sim

import (
	"context"
	"runtime/pprof"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// streamHost is a host whose every stream, opened or accepted, passes
// through wrap: the base of the simulation's lossy and counting hosts.
type streamHost struct {
	host.Host
	wrap func(network.Stream) network.Stream
	// labels, when set, are the profiler labels of the node this host
	// is: a stream handler runs in a goroutine mocknet starts from the
	// goroutine that opened the stream, so without them a node's
	// reading of what a peer sends it would be profiled as the peer's.
	labels context.Context
}

func (h streamHost) handle(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		if h.labels != nil {
			pprof.SetGoroutineLabels(h.labels)
		}
		handler(h.wrap(s))
	}
}

func (h streamHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.wrap(s), nil
}

func (h streamHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.handle(handler))
}

func (h streamHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, h.handle(handler))
}

// countingHost counts the bytes its streams read and write: every
// protocol a node speaks (gossip, sync, DHT), not libp2p's own framing.
// mocknet hosts have no bandwidth counter of their own.
type countingHost struct {
	streamHost
	in, out atomic.Int64
}

func newCountingHost(h host.Host, node int) *countingHost {
	c := &countingHost{}
	c.streamHost = streamHost{Host: h, wrap: func(s network.Stream) network.Stream { return &countingStream{Stream: s, h: c} },
		labels: pprof.WithLabels(context.Background(), nodeLabel(node))}
	return c
}

type countingStream struct {
	network.Stream
	h *countingHost
}

func (s *countingStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	s.h.in.Add(int64(n))
	return n, err
}

func (s *countingStream) Write(b []byte) (int, error) {
	n, err := s.Stream.Write(b)
	s.h.out.Add(int64(n))
	return n, err
}
