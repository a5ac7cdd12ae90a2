package node

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A hostile sync responder (an admitted reader's own host) answers a
// node's session with 256 hash lists of hashes the node lacks. Nothing
// checked the lists against the bucket table or the helloAck's count, and
// the node kept every lacking hash before it cut its request to
// SyncMaxRecords: 4 M hashes, 640 MiB of heap, in one session. Found in
// review (session 39). Now lists longer than the table says, and a table
// that does not add up to the announced count, end the session as
// misbehaviour, and a session keeps at most lackingPerSession ×
// SyncMaxRecords hashes however consistent the lies. Scaled down: 256
// lists of 4,096 hashes (1 M) against SyncMaxRecords 16.
func TestHostileResponderListsAreBounded(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.SyncInterval = time.Hour
	cfg.SyncMaxRecords = 16
	a := startNode(t, cfg)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader))

	const perBucket = 4096
	lists := make([][]byte, 256)
	for b := range 256 {
		out := make([]byte, 5, 5+listItem*perBucket)
		out[0] = byte(b)
		binary.BigEndian.PutUint32(out[1:], perBucket)
		for i := range perBucket {
			var h [32]byte
			h[0] = byte(b)
			binary.BigEndian.PutUint32(h[1:], uint32(i)) // ascending within the bucket
			rand.Read(h[5:])
			out = append(append(out, h[:]...), kindEntry)
		}
		lists[b] = out
	}
	// responder answers as a hostile peer whose bucket table says
	// tableCount hashes per bucket and whose helloAck says ackCount.
	responder := func(tableCount, ackCount uint32) host.Host {
		m := hostileHost(t)
		admitAs(m, nw.ID, reader)
		m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
			defer st.Reset()
			w := newWire(st)
			if _, err := w.expect(msgHello, maxControlFrame); err != nil {
				return
			}
			var root directory.Hash
			rand.Read(root[:])
			if _, err := st.Write(insiderAck(nw.ID, st.Conn().RemotePeer(), m.ID(), ackCount, root)); err != nil {
				return
			}
			if _, err := w.expect(msgWantBuckets, maxControlFrame); err != nil {
				return
			}
			table := make([]byte, 256*36)
			rand.Read(table)
			for b := range 256 {
				binary.BigEndian.PutUint32(table[b*36:], tableCount)
			}
			w.send(msgBuckets, table)
			want, err := w.expect(msgWantLists, maxControlFrame)
			if err != nil {
				return
			}
			for _, b := range want {
				if err := w.send(msgList, lists[b]); err != nil {
					return
				}
			}
			// Hold the session open a moment with the node's request
			// read, so that what the node keeps is measured, then go.
			if _, err := w.expect(msgWantRecords, maxControlFrame); err == nil {
				time.Sleep(time.Second)
			}
		})
		connectTo(t, m, a)
		return m
	}

	t.Run("lists longer than the table", func(t *testing.T) {
		m := responder(1, 256)
		if _, _, err := a.sync.session(m.ID()); !errors.Is(err, errMisbehaving) {
			t.Errorf("a session with lists longer than the bucket table: %v, want %v", err, errMisbehaving)
		}
	})
	t.Run("table not adding up", func(t *testing.T) {
		m := responder(perBucket, 1)
		if _, _, err := a.sync.session(m.ID()); !errors.Is(err, errMisbehaving) {
			t.Errorf("a session whose bucket table does not add up to the helloAck's count: %v, want %v", err, errMisbehaving)
		}
	})
	t.Run("consistent lies", func(t *testing.T) {
		m := responder(perBucket, 256*perBucket)
		var peak atomic.Uint64
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				// Live heap, not the garbage of the lists read and dropped.
				runtime.GC()
				var s runtime.MemStats
				runtime.ReadMemStats(&s)
				if s.HeapAlloc > peak.Load() {
					peak.Store(s.HeapAlloc)
				}
			}
		})
		start := time.Now()
		_, more, err := a.sync.session(m.ID())
		close(stop)
		wg.Wait()
		grew := int64(peak.Load()) - int64(base)
		t.Logf("%d hashes listed: session in %s (more %v, %v); heap %d MiB → peak %d MiB (+%d MiB)",
			256*perBucket, time.Since(start).Round(time.Millisecond), more, err, base>>20, peak.Load()>>20, grew>>20)
		if grew > 16<<20 {
			t.Errorf("one session with a hostile responder grew the node's heap by %d MiB for %d listed hashes", grew>>20, 256*perBucket)
		}
	})
}
