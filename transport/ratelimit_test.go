package transport_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/transport"
)

const rateProto = "/ceiba-test/bulk/1.0.0"

var loopbackTCP = transport.Config{TCP: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, MaxMemory: 256 << 20, MaxFD: 1024}

// pair returns two connected hosts, each wrapped with its caps.
func pair(t *testing.T, sendCap, recvCap transport.Rates) (sender, receiver host.Host) {
	t.Helper()
	s := transport.LimitRate(newHost(t, loopbackTCP), sendCap)
	r := transport.LimitRate(newHost(t, loopbackTCP), recvCap)
	connectVia(t, s, r, ma.P_TCP)
	return s, r
}

// transfer sends size random bytes from sender to receiver's handler and
// returns how long the receiver took to get them all, checking they
// arrived intact.
func transfer(t *testing.T, sender, receiver host.Host, size int) time.Duration {
	t.Helper()
	payload := make([]byte, size)
	rand.Read(payload)
	got := make(chan []byte, 1)
	receiver.SetStreamHandler(rateProto, func(s network.Stream) {
		defer s.Close()
		b, _ := io.ReadAll(s)
		got <- b
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	s, err := sender.NewStream(ctx, receiver.ID(), rateProto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, payload) {
			t.Fatalf("received %d bytes, not the %d sent", len(b), len(payload))
		}
	case <-ctx.Done():
		t.Fatal("transfer did not finish in 30 s")
	}
	return time.Since(start)
}

// A cap in either direction slows a bulk transfer to it. Only a lower
// bound on the time is checked: a busy machine makes transfers slower,
// never faster, so the test cannot flake that way.
func TestRateCapSlowsBulkTransfer(t *testing.T) {
	const capBps = 64 << 10
	const size = 256 << 10
	// The first burst (one second's worth) passes at once; the rest is paced.
	minTime := time.Duration(float64(size-capBps)/capBps*float64(time.Second)) * 9 / 10
	for _, tc := range []struct {
		name       string
		send, recv transport.Rates
	}{
		{"send", transport.Rates{Send: capBps}, transport.Rates{}},
		{"receive", transport.Rates{}, transport.Rates{Recv: capBps}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, r := pair(t, tc.send, tc.recv)
			took := transfer(t, s, r, size)
			t.Logf("%d KiB under a %d KiB/s %s cap in %s", size>>10, capBps>>10, tc.name, took.Round(time.Millisecond))
			if took < minTime {
				t.Fatalf("%d KiB took %s under a %d KiB/s cap; the cap allows no less than %s", size>>10, took, capBps>>10, minTime)
			}
			capped, caps := r, tc.recv
			if tc.send.Send > 0 {
				capped, caps = s, tc.send
			}
			if got := transport.RatesOf(capped); got != caps {
				t.Fatalf("the capped host reports caps %+v, want %+v", got, caps)
			}
			th := transport.ThrottledOf(capped)
			if waited := th.Send + th.Recv; waited < minTime*9/10 {
				t.Fatalf("the capped host reports %s waited for tokens, want about %s", waited, minTime)
			}
		})
	}
	// Without a cap the same transfer is not paced (milliseconds on
	// loopback): the bound above measures the cap, not the link.
	s, r := pair(t, transport.Rates{}, transport.Rates{})
	if took := transfer(t, s, r, size); took >= minTime {
		t.Fatalf("uncapped, %d KiB took %s: the bound above would not show a cap", size>>10, took)
	}
	if got := transport.RatesOf(s); got != (transport.Rates{}) {
		t.Fatalf("an uncapped host reports caps %+v", got)
	}
}

// A stream waiting for tokens keeps its deadline: a read that cannot be
// paid for in time fails with os.ErrDeadlineExceeded instead of hanging.
func TestRateCapHonoursDeadlines(t *testing.T) {
	s, r := pair(t, transport.Rates{}, transport.Rates{Recv: 4 << 10})
	result := make(chan error, 1)
	r.SetStreamHandler(rateProto, func(st network.Stream) {
		defer st.Reset()
		st.SetReadDeadline(time.Now().Add(time.Second))
		_, err := io.Copy(io.Discard, st)
		result <- err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.NewStream(ctx, r.ID(), rateProto)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	go st.Write(make([]byte, 64<<10)) // 16 s worth at 4 KiB/s
	select {
	case err := <-result:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read under a cap past its deadline: %v, want a deadline error", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("a read waiting for tokens outlived its deadline by 7 s")
	}
}

// Closing a capped host wakes the streams waiting for tokens.
func TestRateCapCloseWakesWaiters(t *testing.T) {
	s, r := pair(t, transport.Rates{Send: 4 << 10}, transport.Rates{})
	r.SetStreamHandler(rateProto, func(st network.Stream) { io.Copy(io.Discard, st) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.NewStream(ctx, r.ID(), rateProto)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := st.Write(make([]byte, 64<<10)) // 15 s worth after the burst
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	s.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("write finished although the host closed while it waited")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("closing the host left a write waiting for tokens")
	}
}

// No cap, no wrapper: the host is returned as it is.
func TestNoCapReturnsTheHost(t *testing.T) {
	h := newHost(t, loopbackTCP)
	if transport.LimitRate(h, transport.Rates{}) != h {
		t.Fatal("LimitRate without caps wrapped the host")
	}
}

// The lowdata profile has caps; laptop and vps have none unless set, and
// a negative setting lifts the profile's cap.
func TestProfileRates(t *testing.T) {
	for _, tc := range []struct {
		cfg  transport.Config
		want transport.Rates
	}{
		{transport.Config{Profile: transport.ProfileLowData}, transport.Rates{Send: transport.LowDataSendRate, Recv: transport.LowDataRecvRate}},
		{transport.Config{Profile: transport.ProfileLowData, RecvRate: -1}, transport.Rates{Send: transport.LowDataSendRate}},
		{transport.Config{Profile: transport.ProfileLowData, SendRate: 1 << 20}, transport.Rates{Send: 1 << 20, Recv: transport.LowDataRecvRate}},
		{transport.Config{Profile: transport.ProfileLaptop}, transport.Rates{}},
		{transport.Config{Profile: transport.ProfileVPS, SendRate: 512 << 10}, transport.Rates{Send: 512 << 10}},
	} {
		got, err := transport.RatesFor(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%+v: rates %+v, want %+v", tc.cfg, got, tc.want)
		}
	}
	if _, err := transport.RatesFor(transport.Config{Profile: "dialup"}); err == nil {
		t.Error("an unknown profile gave rates")
	}
}

// A small message (a revocation) on one stream of a capped host is not
// queued behind other streams' bulk reads: each stream holds at most a
// small chunk of the cap's tokens at a time, so the wait for a new read
// is a fraction of a second whatever the other streams have in flight.
func TestRateCapSmallMessageNotBehindBulk(t *testing.T) {
	const capRate = 64 << 10
	sender, receiver := pair(t, transport.Rates{}, transport.Rates{Recv: capRate})
	const smallProto = "/ceiba-test/small/1.0.0"
	receiver.SetStreamHandler(rateProto, func(s network.Stream) {
		defer s.Close()
		io.CopyBuffer(io.Discard, s, make([]byte, 1<<20))
	})
	got := make(chan time.Time, 1)
	receiver.SetStreamHandler(smallProto, func(s network.Stream) {
		defer s.Close()
		if b, _ := io.ReadAll(s); len(b) == 200 {
			got <- time.Now()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Three bulk streams, each with far more than a second of the cap.
	for range 3 {
		s, err := sender.NewStream(ctx, receiver.ID(), rateProto)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Reset()
		go s.Write(make([]byte, 1<<20))
	}
	time.Sleep(time.Second)
	start := time.Now()
	s, err := sender.NewStream(ctx, receiver.ID(), smallProto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(make([]byte, 200)); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	select {
	case at := <-got:
		took := at.Sub(start)
		t.Logf("200 bytes behind three bulk streams at %d KiB/s: %s", capRate>>10, took)
		// Three streams' chunks of 4 KiB are about 0.2 s of the cap;
		// before, each held up to a second (64 KiB), about 3 s in all.
		if took > 1500*time.Millisecond {
			t.Errorf("a 200-byte message waited %s behind bulk streams; want under 1.5 s", took)
		}
	case <-ctx.Done():
		t.Fatal("the small message never arrived")
	}
}

// Under a receive cap, a peer that floods the node over many streams gets
// the share of one peer, not of its streams: an honest peer sending at the
// same time gets about half the cap, not an eighth.
func TestRateCapIsFairBetweenPeers(t *testing.T) {
	const capRate = 64 << 10
	receiver := transport.LimitRate(newHost(t, loopbackTCP), transport.Rates{Recv: capRate})
	flooder, honest := newHost(t, loopbackTCP), newHost(t, loopbackTCP)
	connectVia(t, flooder, receiver, ma.P_TCP)
	connectVia(t, honest, receiver, ma.P_TCP)
	var got [2]atomic.Int64 // bytes read from the flooder, from the honest peer
	receiver.SetStreamHandler(rateProto, func(s network.Stream) {
		defer s.Close()
		i := 0
		if s.Conn().RemotePeer() == honest.ID() {
			i = 1
		}
		buf := make([]byte, 1<<20)
		for {
			n, err := s.Read(buf)
			got[i].Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	send := func(h host.Host) {
		s, err := h.NewStream(ctx, receiver.ID(), rateProto)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Reset() })
		go func() {
			for ctx.Err() == nil {
				if _, err := s.Write(make([]byte, 64<<10)); err != nil {
					return
				}
			}
		}()
	}
	for range 7 {
		send(flooder)
	}
	send(honest)
	time.Sleep(2 * time.Second) // past the first second's burst and the windows
	before := got[1].Load()
	const measure = 4 * time.Second
	time.Sleep(measure)
	rate := float64(got[1].Load()-before) / measure.Seconds()
	t.Logf("honest peer: %.1f KiB/s of a %d KiB/s cap shared with a flooder on 7 streams", rate/1024, capRate>>10)
	// A fair share is half the cap (measured 47 KiB/s); shared per
	// stream it was 15 KiB/s.
	if rate < capRate/3 {
		t.Errorf("the honest peer got %.1f KiB/s of a %d KiB/s cap; want at least a third", rate/1024, capRate>>10)
	}
}
