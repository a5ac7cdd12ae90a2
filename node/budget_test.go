package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// bigEntry is an entry near the largest the entry rules allow (about 27 KB
// signed): what an insider asks for when it wants the most bytes back.
func bigEntry(t testing.TB, nw *dirtest.Network, org *directory.Identity, id string) *directory.Record {
	t.Helper()
	e := dirtest.SampleEntry(id, 1, nw.Now)
	e.Service.Name = "Entrada grande " + id
	e.Service.Description = strings.Repeat("€", 4000)
	e.Service.Eligibility = strings.Repeat("€", 2000)
	e.Service.ApplicationProcess = strings.Repeat("€", 2000)
	e.Service.Fees = strings.Repeat("€", 500)
	e.Service.Alert = strings.Repeat("€", 500)
	return nw.Sign(t, e, org)
}

// bigStore is a steward's node holding an organization, a reader it
// vouched for, and n of the organization's entries made by bigEntry.
func bigStore(t *testing.T, n int) (nw *dirtest.Network, reader *directory.Identity, a *Node, ref *reference, big []*directory.Record) {
	t.Helper()
	nw = dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	reader = dirtest.MustIdentity(t)
	a = startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref = &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader))
	for i := range n {
		big = append(big, bigEntry(t, nw, org, fmt.Sprintf("grande-%d", i)))
	}
	ref.publish(a, big...)
	return nw, reader, a, ref, big
}

// syncClient speaks the sync protocol as an insider: a host of its own
// holding the key id, asking a node for records by hash.
type syncClient struct {
	t      testing.TB
	h      host.Host
	id     *directory.Identity
	nw     *dirtest.Network
	target *Node
}

// pull runs one session: a hello (the one given, or a fresh one), then
// each request as one wantRecords. It returns the sealed bytes received
// (record frames, without their hash prefix), how many records came, and
// whether the node answered the hello at all.
func (c *syncClient) pull(hello []byte, requests ...[]directory.Hash) (bytes, records int, answered bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	st, err := c.h.NewStream(ctx, c.target.Host().ID(), SyncProtocol)
	if err != nil {
		return 0, 0, false
	}
	defer st.Reset()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if hello == nil {
		hello = insiderHello(c.id, c.nw, c.h.ID(), c.target.Host().ID(), 1)
	}
	if _, err := st.Write(hello); err != nil {
		return 0, 0, false
	}
	w := newWire(st)
	if _, err := w.expect(msgHelloAck, maxControlFrame); err != nil {
		return 0, 0, false
	}
	for _, req := range requests {
		body := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
		for _, h := range req {
			body = append(body, h[:]...)
		}
		if err := w.send(msgWantRecords, body); err != nil {
			return bytes, records, true
		}
		for range req {
			b, err := w.expect(msgRecord, maxRecordFrame)
			if err != nil {
				return bytes, records, true
			}
			if len(b) > 32 {
				bytes += len(b) - 32
				records++
			}
		}
	}
	w.finish()
	return bytes, records, true
}

// An admitted reader's device, on a host of its own over real TCP, asks a
// node for one large entry 1,024 times in one request, then for the whole
// store again and again over many sessions from two peer IDs. The node
// sends one copy per session, and across sessions no more than the
// documented per-key budget: SyncBytesBurst plus SyncBytesPerMinute for
// every minute that passed.
func TestSyncAmplificationIsBounded(t *testing.T) {
	nw, reader, a, ref, big := bigStore(t, 120)
	if !a.State().IsReader(reader.Public()) {
		t.Fatal("the reader is not admitted")
	}
	one := directory.Seal(big[0], nw.Key)

	attacker := &syncClient{t: t, h: insiderHost(t, nw), id: reader, nw: nw, target: a}
	connectTo(t, attacker.h, a)

	t.Run("one entry asked 1024 times", func(t *testing.T) {
		req := make([]directory.Hash, 1024)
		for i := range req {
			req[i] = big[0].Hash()
		}
		got, n, answered := attacker.pull(nil, req)
		if !answered {
			t.Fatal("the node did not answer an admitted reader's hello")
		}
		t.Logf("request of %d bytes (1024 × one %d-byte sealed entry): %d sealed bytes in %d records came back",
			4+32*len(req), len(one), got, n)
		if n != 1 || got > len(one)+1024 {
			t.Fatalf("the node served %d copies (%d bytes) of one entry asked 1024 times; want one copy of about %d bytes", n, got, len(one))
		}
	})

	t.Run("whole store again and again", func(t *testing.T) {
		// The sessions above drew from the same budget; so does a second
		// peer ID holding the same key.
		second := &syncClient{t: t, h: insiderHost(t, nw), id: reader, nw: nw, target: a}
		connectTo(t, second.h, a)
		all := a.State().Hashes()
		storeBytes := 0
		for _, h := range all {
			r, _ := a.State().Record(h)
			storeBytes += len(directory.Seal(r, nw.Key))
		}
		start := time.Now()
		total, sessions, full := len(one), 0, 0
		// Each session asks for the store four times (the most requests
		// a session allows); without a budget every session would bring
		// the store once and 30 sessions about 30 stores.
		const attempts = 30
		for i := range attempts {
			c := attacker
			if i%2 == 1 {
				c = second
			}
			got, n, answered := c.pull(nil, all, all, all, all)
			if answered {
				sessions++
			}
			if n == len(all) {
				full++
			}
			if n > len(all) {
				t.Fatalf("session %d served %d records from a store of %d: a record went twice", i, n, len(all))
			}
			total += got
		}
		elapsed := time.Since(start)
		bound := SyncBytesBurst + int(float64(SyncBytesPerMinute)*elapsed.Minutes()) + 4096
		t.Logf("store of %d records, %d sealed bytes; %d sessions of 4 whole-store requests answered, %d whole stores served, %d sealed bytes in %s (asked for %d); budget %d bytes (burst %d + %d/min)",
			len(all), storeBytes, sessions, full, total, elapsed.Round(time.Millisecond), attempts*4*storeBytes, bound, SyncBytesBurst, SyncBytesPerMinute)
		if full == 0 {
			t.Fatal("not even the first whole-store request was served: the test shows nothing")
		}
		if total > bound {
			t.Fatalf("one reader key drew %d bytes in %s, over the budget of %d", total, elapsed, bound)
		}
		if full*storeBytes < SyncBytesBurst/2 {
			t.Fatalf("only %d whole stores were served (%d bytes): the budget cut far below its burst", full, full*storeBytes)
		}
	})

	t.Run("a member still syncs", func(t *testing.T) {
		// The reader's exhausted budget is its own: a steward's node pulls
		// the whole directory at once.
		cfg := testConfig(t, nw, nw.Stewards[1], t.TempDir())
		cfg.SyncInterval = time.Hour
		b := startNode(t, cfg)
		connectTo(t, b.Host(), a)
		if _, _, err := b.sync.session(a.Host().ID()); err != nil {
			t.Fatalf("a steward's session failed: %v", err)
		}
		// Connecting started a session of its own; the records it asked
		// for first are left out of this one (each crosses the link
		// once), so the directory is complete when both have ended. The
		// 4 MB store takes about 11 s under the race detector, past the
		// node's 10 s session deadline (testConfig) at a high load: the
		// node cuts that session (the "stream reset" seen at load 14),
		// and the next one follows at once (TestCutSessionIsFollowedAtOnce;
		// before, it waited 7 to 29 s for another trigger). The wait is
		// for completeness, not speed.
		waitFor(t, 60*time.Second, "the steward to get the directory", func() bool { return b.State().Digest() == ref.digest() })
	})
}

// A hello must prove an admitted, unrevoked key of the directory, bound to
// this connection and fresh. A host that knows the network ID but signs
// with a key the directory does not admit, a revoked reader, a hello
// replayed on a second stream, a hello made for another node and one
// dated an hour ago are all refused with nothing served: not even the
// count and root of what the node holds.
func TestSyncHelloMustProveAnAdmittedKey(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader, revoked, stranger := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader), nw.Vouch(t, org, revoked),
		entryRec(t, nw, org, "asesoria", 1))
	ref.publish(a, nw.RevokeBy(t, revoked.Public()))
	if !a.State().IsRevoked(revoked.Public()) || !a.State().IsReader(reader.Public()) {
		t.Fatal("setup: the reader should be admitted and the other revoked")
	}
	other := startNode(t, testConfig(t, nw, nw.Stewards[1], t.TempDir()))
	m := insiderHost(t, nw)
	connectTo(t, m, a)
	all := a.State().Hashes()

	// nothing reads what the node says after a hello: it must close or
	// reset the stream without a byte.
	nothing := func(t *testing.T, hello []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		st, err := m.NewStream(ctx, a.Host().ID(), SyncProtocol)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Reset()
		st.Write(hello)
		st.Write(frame(msgWantBuckets, nil))
		st.CloseWrite()
		got, took := readAll(st, 10*time.Second)
		if len(got) != 0 {
			t.Fatalf("the node answered %d bytes", len(got))
		}
		if took > helloTimeout+time.Second {
			t.Fatalf("the node held the refused stream %s", took)
		}
	}
	client := &syncClient{t: t, h: m, id: reader, nw: nw, target: a}

	t.Run("an admitted reader is served", func(t *testing.T) {
		if _, n, answered := client.pull(nil, all); !answered || n != len(all) {
			t.Fatalf("the admitted reader got %d of %d records (answered %v)", n, len(all), answered)
		}
	})
	t.Run("a key the directory does not admit", func(t *testing.T) {
		nothing(t, insiderHello(stranger, nw, m.ID(), a.Host().ID(), 1))
	})
	t.Run("a revoked reader", func(t *testing.T) {
		nothing(t, insiderHello(revoked, nw, m.ID(), a.Host().ID(), 1))
	})
	t.Run("a replayed hello", func(t *testing.T) {
		hello := insiderHello(reader, nw, m.ID(), a.Host().ID(), 1)
		if _, n, answered := client.pull(hello, all); !answered || n != len(all) {
			t.Fatalf("the first use of the hello got %d records (answered %v)", n, answered)
		}
		nothing(t, hello)
	})
	t.Run("a hello made for another node", func(t *testing.T) {
		hello := insiderHello(reader, nw, m.ID(), other.Host().ID(), 1)
		// Re-framed with this node's network proof, so only the signed
		// transcript can tell.
		body := append(newSyncer(&Node{cfg: Config{Network: nw.ID}}).proof('I', m.ID(), a.Host().ID()), hello[len(hello)-(helloFixedLen+8):]...)
		nothing(t, frame(msgHello, body))
	})
	t.Run("a hello from an hour ago", func(t *testing.T) {
		old := *nw
		old.Now = nw.Now.Add(-time.Hour)
		nothing(t, insiderHello(reader, &old, m.ID(), a.Host().ID(), 1))
	})
	t.Run("a forged signature", func(t *testing.T) {
		hello := insiderHello(reader, nw, m.ID(), a.Host().ID(), 1)
		hello[len(hello)-20] ^= 1 // inside the signature
		nothing(t, hello)
	})
}

// A peer may hold only a few sync streams open at once; the next one is
// reset at once rather than left open until the hello deadline. This
// holds on a host the node built (whose resource manager also limits the
// protocol) and on a host it was given, which has no such limit.
func TestSyncStreamsBeyondThePerPeerLimitAreResetAtOnce(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	t.Run("own host", func(t *testing.T) {
		a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
		m := insiderHost(t, nw)
		connectTo(t, m, a)
		checkStreamLimit(t, m, a)
	})
	t.Run("given host", func(t *testing.T) {
		mn := mocknet.New()
		t.Cleanup(func() { mn.Close() })
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		m, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		if err := mn.LinkAll(); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, nw, nw.Stewards[0], "")
		cfg.Host, cfg.Datastore = h, dssync.MutexWrap(datastore.NewMapDatastore())
		a := startNode(t, cfg)
		if _, err := mn.ConnectPeers(m.ID(), h.ID()); err != nil {
			t.Fatal(err)
		}
		checkStreamLimit(t, m, a)
	})
}

func checkStreamLimit(t *testing.T, m host.Host, a *Node) {
	t.Helper()
	for i := range maxInboundPerPeer + 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		st, err := m.NewStream(ctx, a.Host().ID(), SyncProtocol)
		cancel()
		if err != nil {
			if i < maxInboundPerPeer {
				t.Fatalf("stream %d within the limit refused: %v", i, err)
			}
			continue // refused before it opened: as good
		}
		// One byte of a hello that never completes: it makes libp2p
		// negotiate the protocol, so the stream reaches the handler.
		st.Write([]byte{0x80})
		if i < maxInboundPerPeer {
			// Held open, silent, until the test ends.
			t.Cleanup(func() { st.Reset() })
			time.Sleep(200 * time.Millisecond)
			continue
		}
		st.SetReadDeadline(time.Now().Add(helloTimeout + 2*time.Second))
		// Not every transport honors read deadlines (mocknet does not):
		// a stream still open past them is given up here.
		giveUp := time.AfterFunc(helloTimeout+2*time.Second, func() { st.Reset() })
		start := time.Now()
		_, err = io.ReadAll(st)
		giveUp.Stop()
		took := time.Since(start)
		st.Reset()
		if took > helloTimeout/3 {
			t.Fatalf("stream %d beyond the per-peer limit was held %s (err %v); want an immediate reset", i, took, err)
		}
	}
}

// A fresh reader's node pulls a directory larger than the byte budget the
// serving node grants its key. The server cuts it off with a busy message
// naming when the budget has refilled, and the reader's node comes back
// then, as often as it takes, without ever counting the cut as a failure
// of the peer: the doubling back-off after failures once kept a fresh
// node at 10,000 recipients minutes away from its key (issue 14).
func TestSyncOverBudgetResumesWhenTheBudgetRefills(t *testing.T) {
	nw, reader, a, ref, big := bigStore(t, 40) // about 1.3 MB sealed
	const burst = 128 << 10
	b := a.sync.budgets
	b.mu.Lock()
	b.lim.bytesBurst, b.lim.bytesPerSec = burst, burst // refills in a second
	clear(b.keys)
	clear(b.peers)
	b.mu.Unlock()

	cfg := testConfig(t, nw, reader, t.TempDir())
	cfg.SyncInterval = time.Hour // only the cut and its resumption start sessions
	rn := startNode(t, cfg)
	rec := record(rn)
	connectTo(t, rn.Host(), a)
	waitFor(t, hangLimit, "the reader's node to hold the whole directory", func() bool { return rn.State().Digest() == ref.digest() })

	cuts := 0
	for _, ev := range rec.snapshot() {
		if ev.Kind != EventSync || ev.Err == nil {
			continue
		}
		var busy *busyError
		if !errors.As(ev.Err, &busy) {
			t.Fatalf("a session ended with %v, want it cut only for the budget, with a time to come back", ev.Err)
		}
		cuts++
	}
	if cuts == 0 {
		t.Fatal("no session was cut for the budget: the test shows nothing")
	}
	rn.sync.mu.Lock()
	failures := rn.sync.peers[a.Host().ID()].failures
	rn.sync.mu.Unlock()
	if failures != 0 {
		t.Fatalf("the reader's node counts %d failures of the serving node, which only said it was over budget", failures)
	}
	t.Logf("%d sealed bytes pulled under a %d-byte budget in %d cuts", 40*len(directory.Seal(big[0], nw.Key)), burst, cuts)
}

// A session's initiator says done and then closes its side; on QUIC a
// responder that closed on done stopped the initiator's writing first, and
// the initiator's Close failed ("close called for canceled stream"): a
// session that got everything read as a failed one (CI, stop 28). The
// responder now closes only after the initiator's Close, however late it
// comes. A reader's device on a QUIC host of its own says done, waits, and
// closes.
func TestSessionEndsWithoutCancellingTheInitiatorsClose(t *testing.T) {
	nw, reader, a, _, _ := bigStore(t, 1)
	h := bareHost(t, libp2p.Transport(libp2pquic.NewTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	admitAs(h, nw.ID, reader)
	connectTo(t, h, a)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, a.Host().ID(), SyncProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(insiderHello(reader, nw, h.ID(), a.Host().ID(), 1)); err != nil {
		t.Fatal(err)
	}
	w := newWire(st)
	if _, err := w.expect(msgHelloAck, maxControlFrame); err != nil {
		t.Fatalf("the node did not answer the hello: %v", err)
	}
	if err := w.send(msgDone, nil); err != nil {
		t.Fatal(err)
	}
	// Time for a STOP_SENDING to cross loopback many times over.
	time.Sleep(300 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatalf("the initiator's Close after done failed: %v (the node stopped its writing first)", err)
	}
}
