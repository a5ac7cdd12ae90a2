package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// loopback is where every test node listens: TCP and QUIC on 127.0.0.1.
var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("CEIBA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("t", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is a node of nw on loopback with identity id and epoch 1's
// key, the clock fixed at nw.Now, and fast sync.
func testConfig(t testing.TB, nw *dirtest.Network, id *directory.Identity, dir string) Config {
	return Config{
		DataDir:      dir,
		Listen:       loopback,
		Network:      nw.ID,
		Keystore:     &directory.Keystore{Identity: id, Keys: directory.Keyring{1: nw.Key}},
		Now:          func() time.Time { return nw.Now },
		SyncInterval: 500 * time.Millisecond,
		SyncTimeout:  10 * time.Second,
		Logger:       testLogger(t),
		Transport:    testTransport,
		DHT:          DHTConfig{Disabled: true},
	}
}

// startNode starts a node and closes it when the test ends.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("starting node: %v", err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// addr is a node's TCP address with its peer ID.
func addr(n *Node) string {
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(6 /* tcp */); err == nil {
			return a.String()
		}
	}
	return n.Addrs()[0].String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hangLimit only turns a hang into a failure that names what it waited
// for; it is no speed target (those are benchmarks), and a loaded machine
// stays far below it.
const hangLimit = 2 * time.Minute

// nodeEvents signals whenever one of the nodes reports an event, for
// waitEvent.
func nodeEvents(t testing.TB, nodes ...*Node) <-chan struct{} {
	wake := make(chan struct{}, 1)
	for _, n := range nodes {
		evs, unsub := n.Subscribe()
		t.Cleanup(unsub)
		go func() {
			for range evs {
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
	}
	return wake
}

// waitEvent checks cond again each time the nodes behind wake report an
// event (and each second, in case the last event came before the state
// showed it), until it holds.
func waitEvent(t testing.TB, wake <-chan struct{}, what string, cond func() bool) {
	t.Helper()
	hang := time.NewTimer(hangLimit)
	defer hang.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for !cond() {
		select {
		case <-wake:
		case <-tick.C:
		case <-hang.C:
			t.Fatalf("nothing changed it in %s: waiting for %s", hangLimit, what)
		}
	}
}

func mustPublish(t testing.TB, n *Node, recs ...*directory.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range recs {
		if _, err := n.Publish(ctx, r); err != nil {
			t.Fatalf("publish %s: %v", r.Type, err)
		}
	}
}

// searchable reports whether every node finds an entry with id.
func searchable(nodes []*Node, text, id string) bool {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		found := false
		for _, r := range n.State().Search(directory.Query{Text: text}) {
			if r.Entry.ID == id {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sameDigest(nodes []*Node, want directory.Hash) bool {
	for _, n := range nodes {
		if n != nil && n.State().Digest() != want {
			return false
		}
	}
	return true
}

// recorder collects a node's events for assertions.
type recorder struct {
	mu     sync.Mutex
	events []Event
	stop   func()
	done   chan struct{}
}

func record(n *Node) *recorder {
	ch, stop := n.Subscribe()
	r := &recorder{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range ch {
			r.mu.Lock()
			r.events = append(r.events, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

func (r *recorder) count(match func(Event) bool) int {
	n := 0
	for _, ev := range r.snapshot() {
		if match(ev) {
			n++
		}
	}
	return n
}

// rotateApproved has steward 0's node s rotate to the next epoch and
// publishes steward 1's approval there: a rotation at the threshold of 2.
func rotateApproved(t testing.TB, nw *dirtest.Network, s *Node) *directory.Record {
	t.Helper()
	epoch, err := s.Rotate(t.Context(), directory.Hash{})
	if err != nil {
		t.Fatal(err)
	}
	approval, err := directory.NewApproval(epoch, nw.Stewards[1])
	if err != nil {
		t.Fatal(err)
	}
	mustPublish(t, s, approval)
	return epoch
}

// entryRec is entry id at seq with its name tagged so searches can tell
// versions apart.
func entryRec(t testing.TB, nw *dirtest.Network, org *directory.Identity, id string, seq uint64) *directory.Record {
	t.Helper()
	e := dirtest.SampleEntry(id, seq, nw.Now)
	e.Service.Name = fmt.Sprintf("Asesoría jurídica %s versión %d", id, seq)
	return nw.Sign(t, e, org)
}

// testTransport keeps test hosts small: TCP and QUIC only, a modest
// resource budget (the defaults scale to the machine).
var testTransport = transport.Config{TCP: true, QUIC: true, MaxMemory: 256 << 20, MaxFD: 1024}

// reference publishes records and remembers them, so a test can compute
// the digest every node must reach from a state of its own.
type reference struct {
	t    testing.TB
	nw   *dirtest.Network
	recs []*directory.Record
}

func (r *reference) publish(n *Node, recs ...*directory.Record) {
	r.t.Helper()
	mustPublish(r.t, n, recs...)
	r.recs = append(r.recs, recs...)
}

func (r *reference) digest() directory.Hash {
	st := r.nw.State()
	for _, rec := range r.recs {
		st.Apply(rec)
	}
	return st.Digest()
}

// rotationRecs is a rotation's epoch record and the page records n holds
// for it: what a reference state needs to reach the digest of nodes that
// received the whole rotation.
func rotationRecs(t testing.TB, n *Node, epochRec *directory.Record) []*directory.Record {
	t.Helper()
	b, err := epochRec.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	e := b.(*directory.Epoch)
	out := []*directory.Record{epochRec}
	for _, r := range n.State().Records() {
		if r.Type != directory.TypeEpochPage {
			continue
		}
		pb, err := r.DecodeBody()
		if err != nil {
			t.Fatal(err)
		}
		if pg := pb.(*directory.EpochPage); pg.Number == e.Number && pg.Rotation == e.Rotation {
			out = append(out, r)
		}
	}
	if len(out)-1 != len(e.PageHashes) {
		t.Fatalf("the rotating node holds %d of %d pages", len(out)-1, len(e.PageHashes))
	}
	return out
}
