package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

// Issue 19, finding 3, against real daemons: a steward, an organization and
// a reader run as separate `ceiba daemon` processes, set up through the
// CLI. The reader's device is in the attacker's hands: its keystore and
// passphrase give the attacker the reader's signing key and read key. From
// a host of its own, over TCP, the attacker publishes 10,000 records of
// every kind that key material lets it sign. Every daemon's record count
// and store stay within the documented quotas, and the organization's next
// entry is found on every node.
func TestJunkFloodAgainstDaemons(t *testing.T) {
	if testing.Short() {
		t.Skip("three daemons and 10,000 signed records")
	}
	type daemon struct{ home, api string }
	start := func() daemon {
		home, port := initHome(t)
		startDaemon(t, home, port)
		return daemon{home, port}
	}
	run := func(d daemon, args ...string) string {
		t.Helper()
		return mustRun(t, d.home, args...)
	}
	status := func(d daemon) api.Status {
		t.Helper()
		return daemonStatus(t, d.home)
	}
	invite := func(from, to daemon, role string) {
		t.Helper()
		var inv api.Invite
		if err := json.Unmarshal([]byte(run(from, "--json", "invite", "create", "--role", role, "--expires", "1h")), &inv); err != nil {
			t.Fatal(err)
		}
		run(to, "invite", "accept", inv.Code, "--name", "Colectivo "+role)
	}
	finds := func(d daemon, id string) bool {
		r := ceiba(t, testEnv, "--home", d.home, "--json", "search")
		return r.code == 0 && strings.Contains(r.stdout, `"`+id+`"`)
	}

	steward, org, reader := start(), start(), start()
	run(steward, "network", "create", "--name", "Red de prueba")
	invite(steward, org, "member")
	waitUntil(t, 30*time.Second, "the organization's admission", func() bool { return status(org).Role == "member" })
	invite(org, reader, "reader")
	waitUntil(t, 30*time.Second, "the reader's admission", func() bool { return status(reader).Role == "reader" })
	entry := filepath.Join(t.TempDir(), "entrada.yaml")
	if err := os.WriteFile(entry, []byte(run(org, "entry", "template")), 0o600); err != nil {
		t.Fatal(err)
	}
	run(org, "entry", "publish", entry, "--id", "antes")
	daemons := []daemon{steward, org, reader}
	waitUntil(t, 30*time.Second, "the first entry everywhere", func() bool {
		return !slices.ContainsFunc(daemons, func(d daemon) bool { return !finds(d, "antes") })
	})
	before := make([]int, len(daemons))
	beforeDisk := make([]int64, len(daemons))
	for i, d := range daemons {
		before[i] = status(d).Counts.Records
		beforeDisk[i] = treeSize(t, d.home)
	}

	// The seized reader device.
	ks, err := directory.LoadKeystore(filepath.Join(reader.home, "keys.age"), strings.TrimPrefix(testEnv[0], "CEIBA_PASSPHRASE="))
	if err != nil {
		t.Fatal(err)
	}
	_, key, ok := ks.Keys.Current()
	if !ok {
		t.Fatal("the reader's keystore holds no read key")
	}
	orgStatus := status(org)
	raw, err := hex.DecodeString(orgStatus.Network)
	if err != nil {
		t.Fatal(err)
	}
	netID := directory.NetworkID(raw)
	h, err := libp2p.New(libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// The stolen key passes admission at the connection (an admitted,
	// unrevoked reader's), as it would for the attacker.
	node.ProveAdmission(h, netID, ks.Identity)
	// The network's gossip settings (PROTOCOL.md §7): no author, no
	// pubsub signature, message IDs by content.
	ps, err := pubsub.NewGossipSub(t.Context(), h, pubsub.WithFloodPublish(true), pubsub.WithNoAuthor(),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { h := sha256.Sum256(m.Data); return string(h[:]) }))
	if err != nil {
		t.Fatal(err)
	}
	// Both topics of the stolen key, each record on the one its type
	// belongs on (PROTOCOL.md §7).
	topic, err := ps.Join(node.GovernanceTopic(key))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ps.Join(node.EntriesTopic(key))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []*pubsub.Topic{topic, entries} {
		if _, err := tp.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	var orgInfo *peer.AddrInfo
	for _, a := range orgStatus.Addrs {
		if strings.Contains(a, "/tcp/") {
			m, err := ma.NewMultiaddr(a)
			if err == nil {
				if orgInfo, err = peer.AddrInfoFromP2pAddr(m); err == nil {
					break
				}
			}
		}
	}
	if orgInfo == nil {
		t.Fatalf("no TCP address in %v", orgStatus.Addrs)
	}
	if err := h.Connect(t.Context(), *orgInfo); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the attacker on the topics", func() bool {
		return slices.Contains(topic.ListPeers(), orgInfo.ID) && slices.Contains(entries.ListPeers(), orgInfo.ID)
	})

	const total = 10000
	var fresh *directory.Identity
	for i := range total {
		r := dirtest.JunkRecord(t, netID, i, ks.Identity, &fresh, time.Now())
		tp := topic
		if r.Type == directory.TypeEntry {
			tp = entries
		}
		if err := tp.Publish(t.Context(), directory.Seal(r, key)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // let the validators work through it

	run(org, "entry", "publish", entry, "--id", "despues")
	published := time.Now()
	waitUntil(t, 30*time.Second, "the organization's next entry everywhere", func() bool {
		return !slices.ContainsFunc(daemons, func(d daemon) bool { return !finds(d, "despues") })
	})
	took := time.Since(published)
	quota := directory.MaxPendingEntries + directory.MaxPendingGrants + directory.MaxWaitingProposals
	for i, d := range daemons {
		recs := status(d).Counts.Records - before[i]
		disk := treeSize(t, d.home) - beforeDisk[i]
		t.Logf("daemon %d: %d more records, home grew %d KiB", i, recs, disk>>10)
		if recs > quota+1 {
			t.Errorf("daemon %d took %d of %d junk records; quota %d", i, recs, total, quota)
		}
		if limit := int64(quota)*2<<10 + 32<<20; disk > limit {
			t.Errorf("daemon %d's home grew %d KiB, more than %d KiB", i, disk>>10, limit>>10)
		}
	}
	t.Logf("%d junk records sent; the next entry was found on all %d daemons %s after it was published (CLI polling included)", total, len(daemons), took.Round(time.Millisecond))
}

// treeSize is the bytes the files under dir take.
func treeSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
