package node

import (
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Issue 19, finding 3, as an attacker runs it: an admitted reader's device
// (it holds the read key and its own signing key) joins the topic from a
// host of its own over real TCP and publishes 10,000 records of every kind
// it can sign: entries, reader grants and self-revocations under fresh
// keys, entries under its own key, memberships and epochs citing a charter
// not linked yet, approvals of those. Every node's pool and store stay
// within the documented quotas, and an organization's entry published
// afterwards still reaches every node.
func TestJunkFloodStaysWithinQuotas(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 signed records")
	}
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgA := testConfig(t, nw, org, t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	cfgB := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	nodes := []*Node{s, a, b}
	dirs := []string{s.cfg.DataDir, cfgA.DataDir, cfgB.DataDir}
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Vouch(t, org, reader), entryRec(t, nw, org, "asesoria", 1))
	waitFor(t, 15*time.Second, "the network", func() bool { return sameDigest(nodes, ref.digest()) })
	base, baseDisk := make([]int, len(nodes)), make([]int64, len(nodes))
	for i, n := range nodes {
		base[i] = n.State().Stats().Records
		baseDisk[i] = dirSize(t, dirs[i])
	}

	// The reader's own host: plain GossipSub, no validator, real TCP.
	_, topic := gossipAttacker(t, nw, a)

	const total = 10000
	sent := 0
	send := func(r *directory.Record) {
		if err := topic.Publish(t.Context(), directory.Seal(r, 1, nw.Key)); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	var fresh *directory.Identity
	for i := range total {
		send(dirtest.JunkRecord(t, nw.ID, i, reader, &fresh, nw.Now))
	}
	// Let the validators work through the flood, then publish.
	time.Sleep(3 * time.Second)
	later := entryRec(t, nw, org, "albergue", 1)
	start := time.Now()
	ref.publish(a, later)
	waitFor(t, 30*time.Second, "the organization's entry on every node", func() bool {
		return !slices.ContainsFunc(nodes, func(n *Node) bool { return !n.State().Has(later.Hash()) })
	})
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("the organization's entry took %s to reach every node under the flood", took)
	}

	quota := directory.MaxPendingEntries + directory.MaxPendingGrants + directory.MaxWaitingProposals
	for i, n := range nodes {
		st := n.State().Stats()
		n.mu.Lock()
		stored := len(n.stored)
		n.mu.Unlock()
		disk := dirSize(t, dirs[i]) - baseDisk[i]
		t.Logf("node %d: %d records pooled (%d before the flood), %d stored, %d parked, store grew %d KiB", i, st.Records, base[i], stored, n.parked.len(), disk>>10)
		// At most the quota's records, each under 2 KiB sealed, plus the
		// store's own logs and compactions.
		if limit := int64(quota)*2<<10 + 16<<20; disk > limit {
			t.Errorf("node %d's store grew %d KiB under the flood, more than %d KiB", i, disk>>10, limit>>10)
		}
		if st.Records-base[i] > quota+1 || stored-base[i] > quota+1 {
			t.Errorf("node %d keeps %d pooled and %d stored records after %d junk records: quota %d", i, st.Records-base[i], stored-base[i], total, quota)
		}
		if n.parked.len() > parkedMaxRecords {
			t.Errorf("node %d parks %d records", i, n.parked.len())
		}
	}
	t.Logf("%d junk records sent; the organization's next entry reached all %d nodes in %s", sent, len(nodes), took.Round(time.Millisecond))
}

// dirSize is the bytes the files under dir take.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
