package sim

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// mocknet links never lose anything: LinkOptions has Latency and Bandwidth
// only. And libp2p never sees a lost packet anyway: TCP and QUIC resend
// it, and what the application sees is a stream that stalls. So loss is
// emulated at that level, on every stream of a node (the node's router,
// sync and the bare router alike): each write of k packets (1,400 bytes
// each) is lost with probability 1-(1-p)^k, and then reaches the wire one
// retransmission timeout later, 200 ms (Linux's minimum RTO) doubling on
// each further loss. The stream is blocked meanwhile, so what follows it
// waits too, as in-order delivery makes it. Only outbound writes are
// delayed: each direction of a link is its own sender.
const (
	packetBytes = 1400
	minRTO      = 200 * time.Millisecond
)

// lossyHost wraps a host so every stream it opens or accepts loses writes.
type lossyHost struct {
	streamHost
	p float64

	mu  sync.Mutex
	rng *rand.Rand
}

func newLossyHost(h host.Host, p float64, seed uint64) *lossyHost {
	l := &lossyHost{p: p, rng: rand.New(rand.NewPCG(seed, 0x10557))}
	l.streamHost = streamHost{Host: h, wrap: l.wrap}
	return l
}

// delay draws the extra time one write of n bytes takes to get through.
func (h *lossyHost) delay(n int) time.Duration {
	k := max(1, (n+packetBytes-1)/packetBytes)
	h.mu.Lock()
	defer h.mu.Unlock()
	var d time.Duration
	rto := minRTO
	for {
		lost := false
		for range k {
			if h.rng.Float64() < h.p {
				lost = true
				break
			}
		}
		if !lost {
			return d
		}
		d += rto
		rto *= 2
	}
}

func (h *lossyHost) wrap(s network.Stream) network.Stream { return &lossyStream{Stream: s, h: h} }

type lossyStream struct {
	network.Stream
	h *lossyHost
}

func (s *lossyStream) Write(b []byte) (int, error) {
	if d := s.h.delay(len(b)); d > 0 {
		time.Sleep(d)
	}
	return s.Stream.Write(b)
}
