package sim

import (
	"context"
	"testing"
	"time"
)

// The simulator's own logic on a network small enough for make test: ten
// nodes converge on the founding records, an entry reaches every node and
// is searchable, the bare baseline reaches every node, and a revocation,
// whether one record carrying the quorum's signatures or an approval
// completing a proposal's quorum, takes the revoked key's entries out of
// every node's search.
func TestTenNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nw, err := New(ctx, Config{N: 10, Orgs: 1, Bare: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()

	r, err := nw.Entry(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	res, err := nw.Compare(ctx, 4, r, false, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Ceiba) != 10 || len(res.Bare) != 10 {
		t.Fatalf("arrivals: %d Ceiba, %d bare, want 10 each", len(res.Ceiba), len(res.Bare))
	}
	if res.Ceiba[0] > res.Ceiba[9] || res.Ceiba.Pct(1, 10) != res.Ceiba[9] || res.Ceiba.Pct(0.5, 10) != res.Ceiba[4] {
		t.Fatalf("percentiles of %v are off", res.Ceiba)
	}
	if err := nw.Searchable(Token(1)); err != nil {
		t.Fatal(err)
	}
	c, b := res.Pct(1)
	t.Logf("entry of %d bytes: all 10 nodes in %s (bare GossipSub %s)", res.Bytes, c, b)

	d, err := nw.PrepareRevocation(ctx, 2, 100)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := nw.Revocation(d)
	if err != nil {
		t.Fatal(err)
	}
	s, err := nw.Publish(ctx, 7, rv, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Revoked(d); err != nil {
		t.Fatal(err)
	}
	t.Logf("revocation enforced on all 10 nodes in %s", s.Pct(1, 10))

	// As stewards revoke: a proposal every node holds pending (checked
	// by PrepareApproval), then the approval completing the quorum.
	d, err = nw.PrepareRevocation(ctx, 2, 200)
	if err != nil {
		t.Fatal(err)
	}
	approval, err := nw.PrepareApproval(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(approval.Sigs) != 1 || approval.Sigs[0].Key != nw.Fix.Stewards[1].Public() {
		t.Fatalf("the last approval is signed by %d keys, want the second steward's alone", len(approval.Sigs))
	}
	if s, err = nw.Publish(ctx, 2, approval, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := nw.Revoked(d); err != nil {
		t.Fatal(err)
	}
	t.Logf("approval completing the quorum enforced on all 10 nodes in %s", s.Pct(1, 10))
}

func TestPct(t *testing.T) {
	s := Sample{1, 2, 3, 4}
	for _, c := range []struct {
		q    float64
		n    int
		want time.Duration
	}{{0.5, 4, 2}, {0.99, 4, 4}, {1, 4, 4}, {0.25, 4, 1}, {1, 5, -1}, {0.5, 5, 3}} {
		if got := s.Pct(c.q, c.n); got != c.want {
			t.Errorf("Pct(%v, %d) = %v, want %v", c.q, c.n, got, c.want)
		}
	}
}

func TestTopology(t *testing.T) {
	for _, c := range []struct {
		topo     Topology
		n, least int
	}{{Sparse, 100, 2}, {Dense, 100, 9}, {Dense, 10, 2}} {
		edges := topology(c.n, c.topo.chords(), newRand(3))
		deg := make([]int, c.n)
		seen := map[[2]int]bool{}
		for _, e := range edges {
			if e[0] >= e[1] || seen[e] {
				t.Fatalf("%s: edge %v repeated or not normalized", c.topo, e)
			}
			seen[e] = true
			deg[e[0]]++
			deg[e[1]]++
		}
		for i, d := range deg {
			if d < c.least {
				t.Fatalf("%s n=%d: node %d has %d links, want at least %d", c.topo, c.n, i, d, c.least)
			}
		}
	}
}

// In the Readers topology each reader is linked to ReaderLinks distinct
// members and to no other reader; the members are linked among themselves.
func TestReaderTopology(t *testing.T) {
	const members, n = 50, 1050
	edges := readerTopology(n, members, newRand(5))
	readerLinks := make([]map[int]bool, n)
	memberDeg := make([]int, members)
	for _, e := range edges {
		a, b := min(e[0], e[1]), max(e[0], e[1])
		switch {
		case a >= members:
			t.Fatalf("readers %d and %d are linked", a, b)
		case b >= members:
			if readerLinks[b] == nil {
				readerLinks[b] = map[int]bool{}
			}
			if readerLinks[b][a] {
				t.Fatalf("reader %d linked twice to member %d", b, a)
			}
			readerLinks[b][a] = true
		default:
			memberDeg[a]++
			memberDeg[b]++
		}
	}
	for r := members; r < n; r++ {
		if len(readerLinks[r]) != ReaderLinks {
			t.Fatalf("reader %d has %d member links, want %d", r, len(readerLinks[r]), ReaderLinks)
		}
	}
	for m, d := range memberDeg {
		if d < 2 {
			t.Fatalf("member %d has %d links to other members", m, d)
		}
	}
}
