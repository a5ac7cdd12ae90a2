package node

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
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
			w, ok := answerHello(st, nw.ID, ackCount)
			if !ok {
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
			if !sendLists(w, table, func(b byte) []byte { return lists[b] }) {
				return
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

// Found in review (session 39): a session kept every record it brought,
// sealed and opened, until its end, so a responder serving records of up
// to 256 KiB, a session's 1,024 of them, had the node hold some 512 MiB per
// session. It now applies what it holds whenever that reaches
// applyBytes (8 MiB; shrunk here): a responder that sends eight of the ten
// large entries asked for and then holds the session open finds the node
// already holding the first ones.
func TestSessionAppliesWhatItHoldsAsItGoes(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.SyncInterval = time.Hour
	cfg.SyncTimeout = time.Minute // a session cut short applies what it has
	a := startNode(t, cfg)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader))
	a.sync.applyBytes = 64 << 10

	var recs []*directory.Record
	byHash := map[directory.Hash]*directory.Record{}
	for i := range 10 {
		r := bigEntry(t, nw, org, fmt.Sprintf("grande-%d", i))
		recs = append(recs, r)
		byHash[r.Hash()] = r
	}
	slices.SortFunc(recs, func(x, y *directory.Record) int { h, k := x.Hash(), y.Hash(); return bytes.Compare(h[:], k[:]) })
	table := make([]byte, 256*36)
	rand.Read(table)
	lists := map[byte][]byte{}
	for b := range 256 {
		binary.BigEndian.PutUint32(table[b*36:], 0)
	}
	for _, r := range recs {
		h := r.Hash()
		binary.BigEndian.PutUint32(table[int(h[0])*36:], binary.BigEndian.Uint32(table[int(h[0])*36:])+1)
		if lists[h[0]] == nil {
			lists[h[0]] = []byte{h[0], 0, 0, 0, 0}
		}
		l := append(append(lists[h[0]], h[:]...), kindEntry)
		binary.BigEndian.PutUint32(l[1:], binary.BigEndian.Uint32(l[1:])+1)
		lists[h[0]] = l
	}
	sent := make(chan struct{})
	var sentOnce sync.Once
	release := make(chan struct{})
	m := hostileHost(t)
	admitAs(m, nw.ID, reader)
	m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
		defer st.Reset()
		w, ok := answerHello(st, nw.ID, uint32(len(recs)))
		if !ok {
			return
		}
		if _, err := w.expect(msgWantBuckets, maxControlFrame); err != nil {
			return
		}
		if !sendLists(w, table, func(b byte) []byte { return lists[b] }) {
			return
		}
		req, err := w.expect(msgWantRecords, maxControlFrame)
		if err != nil {
			return
		}
		// All but the last two, and then the session is held open: the
		// node waits for the rest.
		for i := range int(binary.BigEndian.Uint32(req)) - 2 {
			var h directory.Hash
			copy(h[:], req[4+32*i:])
			if err := w.send(msgRecord, append(h[:], directory.Seal(byHash[h], nw.Key)...)); err != nil {
				return
			}
		}
		sentOnce.Do(func() { close(sent) })
		<-release
	})
	// The node opens a session as the connection comes up.
	connectTo(t, m, a)
	select {
	case <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the node never asked for the records")
	}
	// The last records may wait for the session's end; the first may not.
	waitFor(t, 5*time.Second, "the first records to be applied while the session is open", func() bool {
		return a.State().Has(recs[0].Hash())
	})
	if a.State().Has(recs[len(recs)-1].Hash()) {
		t.Fatal("the node holds a record the responder never sent")
	}
	close(release)
}

// answerHello reads the hello of a session a node opened on st and answers
// it as a responder announcing count records under a made-up root.
func answerHello(st network.Stream, nw directory.NetworkID, count uint32) (*wire, bool) {
	w := newWire(st)
	if _, err := w.expect(msgHello, maxControlFrame); err != nil {
		return nil, false
	}
	var root directory.Hash
	rand.Read(root[:])
	_, err := st.Write(insiderAck(nw, st.Conn().RemotePeer(), st.Conn().LocalPeer(), count, root))
	return w, err == nil
}

// sendLists sends table as the bucket table, then list(b) for each bucket
// the node asks for.
func sendLists(w *wire, table []byte, list func(b byte) []byte) bool {
	if w.send(msgBuckets, table) != nil {
		return false
	}
	want, err := w.expect(msgWantLists, maxControlFrame)
	if err != nil {
		return false
	}
	for _, b := range want {
		if w.send(msgList, list(b)) != nil {
			return false
		}
	}
	return true
}
