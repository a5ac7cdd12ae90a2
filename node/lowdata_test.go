package node

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// heavyEntry is version seq of entry id with every free-text field full of
// three-byte characters: about 57 KB, near the default record limit.
func heavyEntry(t testing.TB, nw *dirtest.Network, org *directory.Identity, id string, seq uint64) *directory.Record {
	t.Helper()
	var areas []directory.Area
	for i := range 32 {
		areas = append(areas, directory.Area{Text: fmt.Sprintf("%02d %s", i, strings.Repeat("€", 190))})
	}
	var contacts []directory.Contact
	for i := range 16 {
		contacts = append(contacts, directory.Contact{Kind: "web", Value: fmt.Sprintf("%02d %s", i, strings.Repeat("€", 290))})
	}
	e := dirtest.SampleEntry(id, seq, nw.Now)
	e.Service.Description = strings.Repeat("€", 4000)
	e.Service.Eligibility = strings.Repeat("€", 2000)
	e.Service.ApplicationProcess = strings.Repeat("€", 2000)
	e.Service.Areas, e.Service.Contacts = areas, contacts
	r := nw.Sign(t, e, org)
	if n := len(r.Encode()); n < 40<<10 || n > directory.DefaultMaxRecordBytes {
		t.Fatalf("heavy entry is %d bytes", n)
	}
	return r
}

// Issue 21, finding 4: a member churns one ~57 KB entry at one version a
// second from its own host over TCP, into both peers of a node with the
// lowdata profile's caps (64 KiB/s in, 32 KiB/s out). Revocations the
// stewards publish meanwhile reach the lowdata node within a few seconds
// each, not later and later (3.1, 7.1, 13.1 s before the per-author rate:
// the churn, forwarded by both peers, was twice the cap).
func TestLowDataRevocationUnderChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("about 30 s of churn")
	}
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	doomed := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	s := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgA := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgA.Bootstrap = []string{addr(s)}
	a := startNode(t, cfgA)
	cfgL := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfgL.Bootstrap = []string{addr(s), addr(a)}
	cfgL.Transport.Profile = transport.ProfileLowData
	cfgL.Transport.RecvRate, cfgL.Transport.SendRate = transport.LowDataRecvRate, transport.LowDataSendRate
	cfgL.SyncInterval = LowDataSyncInterval // news comes by gossip, as on a real lowdata node
	l := startNode(t, cfgL)
	nodes := []*Node{s, a, l}
	// The lowdata node syncs only every 5 minutes: what is published
	// before it is in the topic's mesh would reach it only then.
	topicUp(t, 2, l)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), heavyEntry(t, nw, org, "churn", 1))
	for i, d := range doomed {
		ref.publish(s, nw.Admit(t, d, fmt.Sprintf("Colectivo %d", i)))
	}
	waitFor(t, 60*time.Second, "the network", func() bool { return sameDigest(nodes, ref.digest()) })

	_, topic := gossipAttacker(t, nw, s)
	_, topicA := gossipAttacker(t, nw, a)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for seq := uint64(2); ; seq++ {
			sealed := directory.Seal(heavyEntry(t, nw, org, "churn", seq), 1, nw.Key)
			topic.Publish(t.Context(), sealed)
			topicA.Publish(t.Context(), sealed)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	var delays []time.Duration
	for i, d := range doomed {
		time.Sleep(time.Duration(3+2*i) * time.Second)
		rv := nw.RevokeBy(t, d.Public())
		start := time.Now()
		mustPublish(t, s, rv)
		waitFor(t, 60*time.Second, "the revocation on the lowdata node", func() bool { return l.State().IsRevoked(d.Public()) })
		delays = append(delays, time.Since(start))
	}
	t.Logf("revocation delays to the lowdata node under churn: %v (throttled %s)", delays, l.Throttled().Recv)
	for i, dl := range delays {
		if dl > 5*time.Second {
			t.Errorf("revocation %d took %s to reach the lowdata node under churn; want under 5 s", i+1, dl)
		}
	}
}
