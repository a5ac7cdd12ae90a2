package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// Two readers of one organization, set up as the README says (the
// organization invites each). An infiltrator can get a reader invite, so
// neither reader may learn where the other is: after both joined and found
// the organization's entry, neither holds a connection to the other nor
// any address of the other's peer ID, through rendezvous, the DHT or
// gossip. Both still reach the network through its members.
func TestReadersNeverLearnEachOther(t *testing.T) {
	svc := &directory.Service{Name: "Albergue temporal", Status: "active", Categories: []string{"shelter"},
		Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "phone", Value: "+34 600 000 000"}}}
	steward, org, readerA := readerNetwork(t, "Red", "Colectivo", "albergue", svc, "albergue")

	readerB := startTestDaemon(t, "reader-b")
	inv, err := org.CreateInvite(api.InviteRequest{Role: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readerB.AcceptInvite(context.Background(), api.AcceptRequest{Code: inv.Code}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := readerB.Search(directory.Query{Text: "albergue"})
		if err == nil && len(res) == 1 && res[0].Verified {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the second reader never found the entry: %v %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	a, b := readerA.Node().Host(), readerB.Node().Host()
	// A reader looks for more peers at start and each minute while it has
	// fewer than three on the topic (node/dht.go), and the DHT refreshes
	// its table: give those rounds time to hand out what they would.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if what := knows(a, b.ID()); what != "" {
			t.Fatalf("reader A holds %s of reader B", what)
		}
		if what := knows(b, a.ID()); what != "" {
			t.Fatalf("reader B holds %s of reader A", what)
		}
	}
	for _, r := range []*Daemon{readerA, readerB} {
		peers := r.Node().Host().Network().Peers()
		if !slices.Contains(peers, org.Node().Host().ID()) && !slices.Contains(peers, steward.Node().Host().ID()) {
			t.Errorf("a reader holds no connection to the network's members: %v", peers)
		}
	}
}

// knows says what h holds of peer p: a connection, an address, or nothing.
func knows(h host.Host, p peer.ID) string {
	if h.Network().Connectedness(p) == network.Connected {
		return "a connection"
	}
	if len(h.Peerstore().Addrs(p)) > 0 {
		return "an address"
	}
	return ""
}
