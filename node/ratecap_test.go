package node

import (
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A node with a receive cap (the lowdata profile's kind) catches up on a
// directory several times the cap, in full, and its streams never take
// more than the cap allows. The bound is on bytes per elapsed time, so a
// slow machine only makes it easier to meet; it fails if the cap is not
// applied to the node's streams (the catch-up would arrive at loopback
// speed, far above it).
func TestReceiveCapBoundsCatchUp(t *testing.T) {
	const recvCap = 64 << 10
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo lento"))
	ref.publish(a, entries(t, nw, org, "refugio", 600)...)
	want := ref.digest()

	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Transport.RecvRate = recvCap
	cfgB.Bootstrap = []string{addr(a)}
	start := time.Now()
	b := startNode(t, cfgB)
	if got := b.RateCaps(); got.Recv != recvCap || got.Send != 0 {
		t.Fatalf("node reports caps %+v, want a receive cap of %d", got, recvCap)
	}
	waitFor(t, 90*time.Second, "the capped node to catch up", func() bool {
		return sameDigest([]*Node{b}, want)
	})
	took := time.Since(start)
	in := b.Bandwidth().TotalIn
	// One second's burst, plus what libp2p exchanges outside the cap
	// (identify, ping, the muxer's and security handshake's own bytes).
	const burst, uncapped = recvCap, 32 << 10
	allowed := int64(burst+uncapped) + int64(took.Seconds()*recvCap)
	t.Logf("%d records: %d KiB received in %s (%.1f KiB/s; cap %d KiB/s; %.0f B per record); sync sessions of %d records",
		len(ref.recs), in>>10, took.Round(time.Millisecond), float64(in)/1024/took.Seconds(), recvCap>>10,
		float64(in)/float64(len(ref.recs)), b.cfg.SyncMaxRecords)
	if in > allowed {
		t.Fatalf("received %d bytes in %s under a %d B/s cap; at most %d allowed", in, took, recvCap, allowed)
	}
	if th := b.Throttled(); th.Recv < time.Second {
		t.Fatalf("the capped node reports %s waited for tokens while catching up for %s", th.Recv, took)
	}
	if in < 3*recvCap {
		t.Fatalf("the directory was only %d bytes: too small to show the cap", in)
	}
}
