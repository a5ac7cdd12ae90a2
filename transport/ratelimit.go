package transport

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"
)

// Rates are a host's byte-rate caps, in bytes per second; zero means no
// cap in that direction.
type Rates struct {
	Send, Recv int64
}

// Throttled is how long a capped host's streams have waited for tokens
// so far, per direction: how much the cap slowed the node down. It is
// zero for a host LimitRate did not wrap.
type Throttled struct {
	Send, Recv time.Duration
}

// RatesOf returns the caps LimitRate put on h; none for another host.
func RatesOf(h host.Host) Rates {
	if lh, ok := h.(*rateLimitedHost); ok {
		return lh.caps
	}
	return Rates{}
}

// ThrottledOf returns how long h's streams have waited under its caps.
func ThrottledOf(h host.Host) Throttled {
	lh, ok := h.(*rateLimitedHost)
	if !ok {
		return Throttled{}
	}
	return Throttled{Send: time.Duration(lh.sendWaited.Load()), Recv: time.Duration(lh.recvWaited.Load())}
}

// RatesFor returns the byte-rate caps cfg asks for once its profile is
// applied: what to give LimitRate for a host built from cfg.
func RatesFor(cfg Config) (Rates, error) {
	cfg, err := cfg.withProfile()
	if err != nil {
		return Rates{}, err
	}
	return cfg.rates(), nil
}

func (cfg Config) rates() Rates {
	return Rates{Send: max(cfg.SendRate, 0), Recv: max(cfg.RecvRate, 0)}
}

// minBurst keeps a small cap usable: a token bucket cannot pass a chunk
// bigger than its burst, and libp2p frames are a few KiB.
const minBurst = 4 << 10

// LimitRate returns h with every stream it opens or accepts from now on
// sharing one token bucket per direction, so the node's traffic (gossip,
// sync, DHT, invites) averages at most r.Send and r.Recv bytes per second.
// The bucket is shared fairly between peers, not streams (takeTurn): a
// peer that floods over many streams gets one peer's share. With no cap
// it returns h itself.
//
// The cap sits on streams, not on the wire: libp2p's own upkeep (identify,
// ping, AutoNAT, relay reservations, the muxer and security framing) is
// outside it, and bounded instead by the connection limits. Reads are paid
// for after they return, so a peer can get up to one stream's flow-control
// window (yamux: 256 KiB) ahead of the cap before backpressure reaches it.
//
// Closing the returned host closes h and wakes every stream waiting for
// tokens.
func LimitRate(h host.Host, r Rates) host.Host {
	if r.Send <= 0 && r.Recv <= 0 {
		return h
	}
	lh := &rateLimitedHost{Host: h, caps: r, closed: make(chan struct{}), turns: map[turnKey]*turn{}}
	if r.Send > 0 {
		lh.send = rate.NewLimiter(rate.Limit(r.Send), burstFor(r.Send))
	}
	if r.Recv > 0 {
		lh.recv = rate.NewLimiter(rate.Limit(r.Recv), burstFor(r.Recv))
	}
	return lh
}

// burstFor allows up to a second's worth at once: enough for a whole
// GossipSub message at any cap a person would set, small enough that the
// average over a few seconds is the cap.
func burstFor(bytesPerSecond int64) int {
	return int(max(bytesPerSecond, minBurst))
}

type rateLimitedHost struct {
	host.Host
	caps       Rates
	send, recv *rate.Limiter
	// Nanoseconds streams spent waiting for tokens, per direction.
	sendWaited, recvWaited atomic.Int64

	// turns make the cap fair between peers rather than streams: a
	// stream takes its peer's turn (per direction) before it reserves
	// tokens, so each peer has at most one reservation in the bucket's
	// queue and peers' chunks interleave, however many streams one of
	// them opens. Entries live while a stream holds or waits for them.
	turnsMu sync.Mutex
	turns   map[turnKey]*turn

	closeOnce sync.Once
	closed    chan struct{}
}

type turnKey struct {
	p    peer.ID
	recv bool
}

type turn struct {
	ch    chan struct{} // holds one token while a stream of the peer reserves
	users int
}

// takeTurn waits until no other stream of s's peer is reserving tokens in
// lim's direction, or until due or the host closes; release gives the turn
// back.
func (h *rateLimitedHost) takeTurn(p peer.ID, recv bool, due time.Time) (release func(), err error) {
	k := turnKey{p, recv}
	h.turnsMu.Lock()
	t := h.turns[k]
	if t == nil {
		t = &turn{ch: make(chan struct{}, 1)}
		h.turns[k] = t
	}
	t.users++
	h.turnsMu.Unlock()
	done := func() {
		h.turnsMu.Lock()
		if t.users--; t.users == 0 {
			delete(h.turns, k)
		}
		h.turnsMu.Unlock()
	}
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; done() }, nil
	default:
	}
	var expire <-chan time.Time
	if !due.IsZero() {
		timer := time.NewTimer(time.Until(due))
		defer timer.Stop()
		expire = timer.C
	}
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; done() }, nil
	case <-expire:
		done()
		return nil, os.ErrDeadlineExceeded
	case <-h.closed:
		done()
		return nil, network.ErrReset
	}
}

func (h *rateLimitedHost) wrap(s network.Stream) network.Stream {
	return &rateLimitedStream{Stream: s, h: h}
}

func (h *rateLimitedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return h.wrap(s), nil
}

func (h *rateLimitedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *rateLimitedHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, func(s network.Stream) { handler(h.wrap(s)) })
}

func (h *rateLimitedHost) Close() error {
	h.closeOnce.Do(func() { close(h.closed) })
	return h.Host.Close()
}

// rateLimitedStream pays for its bytes from the host's buckets. It keeps
// the deadlines it is given, so waiting for tokens ends where the
// deadline would have ended a read or write on a slow link.
type rateLimitedStream struct {
	network.Stream
	h *rateLimitedHost

	mu                sync.Mutex
	readDue, writeDue time.Time
}

func (s *rateLimitedStream) Read(p []byte) (int, error) {
	lim := s.h.recv
	if lim == nil {
		return s.Stream.Read(p)
	}
	if len(p) > lim.Burst() {
		p = p[:lim.Burst()]
	}
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.mu.Lock()
		due := s.readDue
		s.mu.Unlock()
		if werr := s.h.wait(lim, n, s.Conn().RemotePeer(), true, due, &s.h.recvWaited); werr != nil && err == nil {
			// The bytes are the caller's; the error says why the next
			// read will not come in time.
			err = werr
		}
	}
	return n, err
}

func (s *rateLimitedStream) Write(p []byte) (int, error) {
	lim := s.h.send
	if lim == nil {
		return s.Stream.Write(p)
	}
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), lim.Burst())]
		s.mu.Lock()
		due := s.writeDue
		s.mu.Unlock()
		if err := s.h.wait(lim, len(chunk), s.Conn().RemotePeer(), false, due, &s.h.sendWaited); err != nil {
			return written, err
		}
		n, err := s.Stream.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (s *rateLimitedStream) SetDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDue, s.writeDue = t, t
	s.mu.Unlock()
	return s.Stream.SetDeadline(t)
}

func (s *rateLimitedStream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.readDue = t
	s.mu.Unlock()
	return s.Stream.SetReadDeadline(t)
}

func (s *rateLimitedStream) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	s.writeDue = t
	s.mu.Unlock()
	return s.Stream.SetWriteDeadline(t)
}

// wait takes n tokens from lim for a stream of peer p, in p's turn,
// sleeping until they are there and adding the sleep to waited. It gives
// up (returning the tokens) when they would come after due, or when the
// host closes.
func (h *rateLimitedHost) wait(lim *rate.Limiter, n int, p peer.ID, recv bool, due time.Time, waited *atomic.Int64) error {
	start := time.Now()
	release, err := h.takeTurn(p, recv, due)
	if err != nil {
		return err
	}
	defer release()
	now := time.Now()
	waited.Add(int64(now.Sub(start)))
	r := lim.ReserveN(now, n)
	if !r.OK() {
		// n is at most the burst by construction; this cannot happen,
		// but a stream must not pass unpaid if it does.
		return os.ErrDeadlineExceeded
	}
	d := r.DelayFrom(now)
	if d == 0 {
		return nil
	}
	if !due.IsZero() && now.Add(d).After(due) {
		r.CancelAt(now)
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		waited.Add(int64(d))
		return nil
	case <-h.closed:
		r.Cancel()
		return network.ErrReset
	}
}
