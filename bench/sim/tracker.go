package sim

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// tracker records when each node first saw a message: a Ceiba record (by
// record hash) or a bare GossipSub message (by the SHA-256 of its data,
// which is also its GossipSub message ID). Only messages a measurement
// registered are kept, so the 10,000-record runs cost nothing here.
type tracker struct {
	n int
	m sync.Map // directory.Hash → *arrivals
}

type arrivals struct {
	mu      sync.Mutex
	at      []time.Time
	skipped []bool
	left    int
	done    chan struct{}
}

func newTracker(n int) *tracker { return &tracker{n: n} }

// expect registers h; the arrivals are done once every node but those
// in skip saw it.
func (t *tracker) expect(h directory.Hash, skip ...int) *arrivals {
	a := &arrivals{at: make([]time.Time, t.n), skipped: make([]bool, t.n), left: t.n, done: make(chan struct{})}
	for _, i := range skip {
		if !a.skipped[i] {
			a.skipped[i] = true
			a.left--
		}
	}
	t.m.Store(h, a)
	return a
}

func (t *tracker) forget(h directory.Hash) { t.m.Delete(h) }

func (t *tracker) mark(h directory.Hash, node int, at time.Time) {
	v, ok := t.m.Load(h)
	if !ok {
		return
	}
	v.(*arrivals).mark(node, at)
}

func (a *arrivals) mark(node int, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.at[node].IsZero() || a.skipped[node] {
		return
	}
	a.at[node] = at
	if a.left--; a.left == 0 {
		close(a.done)
	}
}

func (a *arrivals) has(node int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.at[node].IsZero()
}

// since returns the delay of each node that saw the message after start,
// sorted, and how many nodes never saw it; skipped nodes are in neither.
func (a *arrivals) since(start time.Time) (Sample, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var s Sample
	missing := 0
	for i, t := range a.at {
		if a.skipped[i] {
			continue
		}
		if t.IsZero() {
			missing++
			continue
		}
		s = append(s, max(0, t.Sub(start)))
	}
	slices.Sort(s)
	return s, missing
}

// Sample is the delay at which each node had a message, ascending.
type Sample []time.Duration

// Pct is the time by which a fraction q of the n nodes had the message:
// the ceil(q·n)-th arrival. With missing nodes it may be unknown (-1).
func (s Sample) Pct(q float64, n int) time.Duration {
	k := max(int(math.Ceil(q*float64(n)-1e-9))-1, 0)
	if k >= len(s) {
		return -1
	}
	return s[k]
}
