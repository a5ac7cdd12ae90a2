package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Fuzz targets for the sync protocol. The seed corpora are in
// testdata/fuzz/<target>; `make fuzz` runs each for FUZZTIME, `make test`
// runs the seeds. Run one with
//
//	go test -run '^$' -fuzz '^FuzzSyncServe$' -fuzztime 30s ./node/

// FuzzSyncFrames decodes a stream of frames: every frame comes out within
// its limit or the decoder stops with an error; it never panics and never
// allocates for a length it has not checked.
func FuzzSyncFrames(f *testing.F) {
	f.Add(frame(msgWantBuckets, nil))
	f.Add(append(frame(msgDone, nil), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Fuzz(func(t *testing.T, data []byte) {
		w := &wire{r: bufio.NewReader(bytes.NewReader(data))}
		read := 0
		for {
			typ, body, err := w.recv(maxControlFrame)
			if err != nil {
				return
			}
			if len(body) > maxControlFrame {
				t.Fatalf("frame of type %d with %d bytes passed the %d limit", typ, len(body), maxControlFrame)
			}
			read += len(body) + 2
			if read > len(data)+1 {
				t.Fatalf("decoded %d bytes from %d", read, len(data))
			}
		}
	})
}

// fuzzNode is one node with a small directory and a peer that speaks to
// it, shared by the iterations of a fuzz target (starting a node per input
// would make fuzzing a hundred times slower).
type fuzzNode struct {
	nw     *dirtest.Network
	org    *directory.Identity // the admitted key the peer says hello with
	n      *Node
	peer   host.Host
	digest directory.Hash
	reply  atomic.Pointer[[]byte] // what the peer answers after its helloAck
}

// newFuzzNode starts the node for a whole fuzz target (one per fuzzing
// process); it is closed when the target ends.
func newFuzzNode(tb *testing.F) *fuzzNode {
	{
		nw := dirtest.New(tb, 3, 2)
		org := dirtest.MustIdentity(tb)
		mn := mocknet.New()
		tb.Cleanup(func() { mn.Close() })
		h, err := mn.GenPeer()
		if err != nil {
			tb.Fatal(err)
		}
		m, err := mn.GenPeer()
		if err != nil {
			tb.Fatal(err)
		}
		if err := mn.LinkAll(); err != nil {
			tb.Fatal(err)
		}
		cfg := testConfig(tb, nw, nw.Stewards[0], "")
		cfg.Host, cfg.Datastore = h, dssync.MutexWrap(datastore.NewMapDatastore())
		cfg.DisableSync = true
		cfg.SyncTimeout = 300 * time.Millisecond
		n, err := New(context.Background(), cfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { n.Close() })
		for _, r := range append([]*directory.Record{nw.Genesis, nw.Admit(tb, org, "Colectivo")}, entries(tb, nw, org, "s", 20)...) {
			if _, err := n.Publish(context.Background(), r); err != nil {
				tb.Fatal(err)
			}
		}
		unlimitedSync(n) // one key, thousands of sessions: the fuzzer explores the protocol, not the budget
		fz := &fuzzNode{nw: nw, org: org, n: n, peer: m, digest: n.State().Digest()}
		m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
			defer st.Reset()
			st.SetDeadline(time.Now().Add(2 * time.Second))
			c := newWire(st)
			if _, err := c.expect(msgHello, maxControlFrame); err != nil {
				return
			}
			var root directory.Hash
			root[0] = 1
			c.w.Write(insiderAck(nw.ID, st.Conn().RemotePeer(), m.ID(), 1, root))
			if p := fz.reply.Load(); p != nil {
				c.w.Write(*p)
			}
			c.flush()
			st.CloseWrite()
			c.recv(maxControlFrame)
		})
		if _, err := mn.ConnectPeers(m.ID(), h.ID()); err != nil {
			tb.Fatal(err)
		}
		return fz
	}
}

// FuzzSyncServe sends a valid hello from an insider followed by arbitrary
// frames to a node serving sync. The node answers within the session
// timeout with well-formed frames, no more than a session allows, and its
// directory does not change.
func FuzzSyncServe(f *testing.F) {
	f.Add(frame(msgWantBuckets, nil))
	f.Add(append(frame(msgWantBuckets, nil), frame(msgWantLists, []byte{0, 1, 2, 255})...))
	f.Add(frame(msgWantRecords, append([]byte{0, 0, 0, 1}, make([]byte, 32)...)))
	f.Add(frame(msgWantPages, append([]byte{0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 16)...)))
	fz := newFuzzNode(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := fz.peer.NewStream(ctx, fz.n.Host().ID(), SyncProtocol)
		if err != nil {
			t.Fatalf("opening a sync stream: %v", err)
		}
		defer st.Reset()
		start := time.Now()
		st.SetDeadline(start.Add(5 * time.Second))
		st.Write(insiderHello(fz.org, fz.nw, fz.peer.ID(), fz.n.Host().ID(), 1))
		st.Write(data)
		st.CloseWrite()
		w := newWire(st)
		total := 0
		for {
			typ, body, err := w.recv(maxRecordFrame)
			if err != nil {
				break
			}
			switch typ {
			case msgHelloAck, msgBuckets, msgList, msgRecord, msgPages, msgBusy:
			default:
				t.Fatalf("the node sent a frame of type %d", typ)
			}
			total += len(body)
			if total > maxBytesPerSession+maxRecordFrame+maxRequestsPerSession*maxControlFrame {
				t.Fatalf("the node sent %d bytes in one session", total)
			}
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the node held the session %s", took)
		}
		if fz.n.State().Digest() != fz.digest {
			t.Fatal("serving a session changed the node's directory")
		}
	})
}

// FuzzSyncSession has a node pull from an insider that answers its hello
// correctly and then sends arbitrary bytes. The session ends within the
// timeout, and the node's directory does not change (the fuzzer cannot
// produce a record sealed under the network's key).
func FuzzSyncSession(f *testing.F) {
	buckets := make([]byte, 256*36)
	buckets[7*36+3] = 1
	f.Add(frame(msgBuckets, buckets))
	list := append(append([]byte{7, 0, 0, 0, 1, 7}, make([]byte, 31)...), kindEntry)
	f.Add(append(frame(msgBuckets, buckets), frame(msgList, list)...))
	f.Add(append(append(frame(msgBuckets, buckets), frame(msgList, list)...), frame(msgRecord, append([]byte{7}, make([]byte, 200)...))...))
	fz := newFuzzNode(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		fz.reply.Store(&data)
		start := time.Now()
		fz.n.sync.session(fz.peer.ID())
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the session took %s", took)
		}
		if fz.n.State().Digest() != fz.digest {
			t.Fatal("a session with arbitrary answers changed the node's directory")
		}
	})
}

// FuzzSyncPageSession is FuzzSyncSession for a page session
// (pagefetch.go): after the helloAck the insider answers the node's
// wantPages with arbitrary bytes. The session ends within the timeout, and
// the node's directory does not change.
func FuzzSyncPageSession(f *testing.F) {
	f.Add(frame(msgPages, []byte{0, 0, 0, 0}))
	f.Add(append(frame(msgPages, append([]byte{0, 0, 0, 1}, make([]byte, 32)...)), frame(msgRecord, append(make([]byte, 32), 7, 7, 7))...))
	f.Add(frame(msgPages, append([]byte{0, 0, 0, 9}, make([]byte, 32)...)))
	fz := newFuzzNode(f)
	target := &pageTarget{number: 2}
	f.Fuzz(func(t *testing.T, data []byte) {
		fz.reply.Store(&data)
		start := time.Now()
		fz.n.sync.sessionFor(fz.peer.ID(), target)
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("the session took %s", took)
		}
		if fz.n.State().Digest() != fz.digest {
			t.Fatal("a page session with arbitrary answers changed the node's directory")
		}
	})
}

// TestWriteSyncFuzzSeeds rewrites the seeds of FuzzSyncSession that carry
// hash lists, after a change of the list format. It writes only when
// asked:
//
//	CEIBA_WRITE_FUZZ_SEEDS=1 go test -run TestWriteSyncFuzzSeeds ./node/
func TestWriteSyncFuzzSeeds(t *testing.T) {
	if os.Getenv("CEIBA_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("writes testdata only when CEIBA_WRITE_FUZZ_SEEDS is set")
	}
	buckets := make([]byte, 256*36)
	for _, b := range []int{7, 9} {
		buckets[b*36+3] = 1
		rand.Read(buckets[b*36+4 : b*36+36])
	}
	hash := func(b byte) []byte {
		h := make([]byte, 32)
		rand.Read(h)
		h[0] = b
		return h
	}
	// list is bucket b's list: count hashes, each with kind.
	list := func(b byte, count uint32, kind byte, hs ...[]byte) []byte {
		out := binary.BigEndian.AppendUint32([]byte{b}, count)
		for _, h := range hs {
			out = append(append(out, h...), kind)
		}
		return frame(msgList, out)
	}
	h7a, h7b := hash(7), hash(7)
	if bytes.Compare(h7a, h7b) > 0 {
		h7a, h7b = h7b, h7a
	}
	junk := make([]byte, 300)
	rand.Read(junk)
	seeds := map[string][][]byte{
		"buckets-lists-records": {list(7, 2, kindEntry, h7a, h7b), list(9, 1, kindGovernance, hash(9)), frame(msgRecord, append(slices.Clone(h7a), junk...))},
		"empty-record":          {list(7, 1, kindEntry, h7a), list(9, 1, kindEntry, hash(9)), frame(msgRecord, h7a)},
		"list-count-lies":       {list(7, 5, kindEntry, h7a)},
		"list-wrong-bucket":     {list(8, 1, kindEntry, hash(8))},
		"list-unknown-kind":     {list(7, 1, 9, h7a)},
		"record-not-asked":      {list(7, 1, kindEntry, h7a), list(9, 1, kindGovernance, hash(9)), frame(msgRecord, append(hash(3), junk[:40]...))},
	}
	for name, frames := range seeds {
		data := frame(msgBuckets, buckets)
		for _, f := range frames {
			data = append(data, f...)
		}
		path := filepath.Join("testdata", "fuzz", "FuzzSyncSession", name)
		if err := os.WriteFile(path, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
