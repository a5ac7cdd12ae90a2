package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Result is one publication timed on Ceiba and, the same size from the
// same node, on the bare router.
type Result struct {
	Ceiba, Bare Sample
	N           int
	Bytes       int // sealed size, and so the bare message's size
	// CeibaCPU and BareCPU are the CPU time the whole process spent
	// from each publish until the last node had the message: all nodes'
	// work for it, plus whatever background work (heartbeats, sync
	// rounds) fell in the same window.
	CeibaCPU, BareCPU time.Duration
}

// Pct returns Ceiba's and the bare router's time to reach a fraction q of
// the nodes.
func (r Result) Pct(q float64) (ceiba, bare time.Duration) {
	return r.Ceiba.Pct(q, r.N), r.Bare.Pct(q, r.N)
}

// Compare publishes r on origin, then a random message of r's sealed size
// on the bare topic from the same node, or the other way round when
// bareFirst, so that neither always runs on a network still busy with the
// other. Each waits for every node before the next starts.
func (nw *Network) Compare(ctx context.Context, origin int, r *directory.Record, bareFirst bool, timeout time.Duration) (Result, error) {
	res := Result{N: len(nw.Nodes), Bytes: nw.SealedSize(r)}
	ceiba := func() (err error) {
		c0 := cpuTime()
		res.Ceiba, err = nw.Publish(ctx, origin, r, timeout)
		// What the nodes put off past forwarding (their search indexes'
		// changes, State.FlushIndex) is Ceiba's work too: done here, and
		// counted, rather than left to land in the bare run that follows.
		nw.flushIndexes()
		res.CeibaCPU = cpuTime() - c0
		if err != nil {
			err = fmt.Errorf("ceiba: %w", err)
		}
		return err
	}
	bare := func() (err error) {
		data := RandomBytes(res.Bytes)
		c0 := cpuTime()
		res.Bare, err = nw.PublishBare(ctx, origin, data, timeout)
		res.BareCPU = cpuTime() - c0
		if err != nil {
			err = fmt.Errorf("bare GossipSub: %w", err)
		}
		return err
	}
	order := []func() error{ceiba, bare}
	if bareFirst {
		slices.Reverse(order)
	}
	for _, f := range order {
		if err := f(); err != nil {
			return res, err
		}
		// Let the last forwards and IDONTWANTs drain before the next run.
		if err := sleep(ctx, 50*time.Millisecond+4*nw.Cfg.Latency); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Entry returns a new entry of organization org numbered i, named after
// Token(i).
func (nw *Network) Entry(org, i int) (*directory.Record, error) {
	return nw.Fix.Entry(nw.Orgs[org], fmt.Sprintf("servicio-%d", i), 1, Token(i))
}

// Searchable checks that every node finds the entry named after token.
func (nw *Network) Searchable(token string) error {
	for _, p := range nw.Nodes {
		if len(p.Node.State().Search(directory.Query{Text: token})) == 0 {
			return fmt.Errorf("sim: node %d does not find %s", p.Index, token)
		}
	}
	return nil
}

// Doomed is an organization admitted only to be revoked, with its entries
// on every node.
type Doomed struct {
	Org     *directory.Identity
	Tokens  []string
	Entries []*directory.Record
}

// PrepareRevocation admits a fresh organization and publishes entries of
// it from random nodes, each waited for everywhere. It is the untimed part
// of a revocation run.
func (nw *Network) PrepareRevocation(ctx context.Context, entries int, first int) (*Doomed, error) {
	org, err := directory.NewIdentity()
	if err != nil {
		return nil, err
	}
	m, err := nw.Fix.Admit(org, fmt.Sprintf("Colectivo condenado %d", first))
	if err != nil {
		return nil, err
	}
	if _, err := nw.Publish(ctx, nw.RandomNode(), m, time.Minute); err != nil {
		return nil, err
	}
	d := &Doomed{Org: org}
	for i := range entries {
		tok := Token(first + i)
		r, err := nw.Fix.Entry(org, fmt.Sprintf("condenado-%d", first+i), 1, tok)
		if err != nil {
			return nil, err
		}
		if _, err := nw.Publish(ctx, nw.RandomNode(), r, time.Minute); err != nil {
			return nil, err
		}
		d.Tokens = append(d.Tokens, tok)
		d.Entries = append(d.Entries, r)
	}
	return d, nil
}

// Revocation returns the stewards' revocation of d's organization,
// carrying a quorum's signatures at once.
func (nw *Network) Revocation(d *Doomed) (*directory.Record, error) {
	return nw.Fix.Revoke(d.Org.Public())
}

// PrepareApproval publishes, from random nodes, the first steward's
// proposal to revoke d's organization and every approval but the last,
// each waited for everywhere (nodes hold the proposal pending), and
// returns the last approval: the one record whose arrival revokes the key
// when stewards revoke as the CLI has them do. It is the untimed part of a
// revocation run; with a quorum of one it returns the proposal.
func (nw *Network) PrepareApproval(ctx context.Context, d *Doomed) (*directory.Record, error) {
	proposal, approvals, err := nw.Fix.RevokeByApprovals(d.Org.Public())
	if err != nil {
		return nil, err
	}
	if len(approvals) == 0 {
		return proposal, nil
	}
	for _, r := range append([]*directory.Record{proposal}, approvals[:len(approvals)-1]...) {
		if _, err := nw.Publish(ctx, nw.RandomNode(), r, time.Minute); err != nil {
			return nil, err
		}
	}
	for _, p := range nw.Nodes {
		if p.Node.State().IsRevoked(d.Org.Public()) {
			return nil, fmt.Errorf("sim: node %d revoked %s before the quorum approved", p.Index, directory.Fingerprint(d.Org.Public()))
		}
	}
	return approvals[len(approvals)-1], nil
}

// Revoked checks what a revocation must have done on every node: the key
// is revoked, its records are refused, its entries are gone from search.
func (nw *Network) Revoked(d *Doomed) error {
	for _, p := range nw.Nodes {
		st := p.Node.State()
		if !st.IsRevoked(d.Org.Public()) {
			return fmt.Errorf("sim: node %d does not hold the revocation", p.Index)
		}
		if n := len(st.Entries(d.Org.Public())); n > 0 {
			return fmt.Errorf("sim: node %d still holds %d entries of the revoked key", p.Index, n)
		}
		for _, tok := range d.Tokens {
			if len(st.Search(directory.Query{Text: tok})) > 0 {
				return fmt.Errorf("sim: node %d still finds %s", p.Index, tok)
			}
		}
	}
	// A record the key signs after its revocation must be refused. Publish
	// applies before it announces, so a refusal goes nowhere.
	late, err := nw.Fix.Entry(d.Org, "tarde", 1, "zqlatek")
	if err != nil {
		return err
	}
	if _, err := nw.Nodes[0].Node.Publish(context.Background(), late); !errors.Is(err, directory.ErrRevoked) {
		return fmt.Errorf("sim: node 0 did not refuse a record of the revoked key as revoked: %v", err)
	}
	return nil
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
