package node

import (
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// What a peer on the topic sees of a publication: the sealed record and
// nothing that names who published it. The capturing host runs pubsub
// with LaxNoSign, which takes messages whether they carry an author and a
// signature or not, so it sees the fields exactly as they were sent. Its
// identify exchange with the node shows a neutral agent version and no
// FloodSub.
func TestGossipNamesNoPublisher(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	mustPublish(t, a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	waitFor(t, 15*time.Second, "the organization to see its admission", func() bool {
		return b.State().Digest() == a.State().Digest()
	})

	m := insiderHost(t, nw)
	ps, err := pubsub.NewGossipSub(t.Context(), m,
		pubsub.WithMessageSignaturePolicy(pubsub.LaxNoSign),
		pubsub.WithMessageIdFn(messageID))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(EntriesTopic(nw.Key))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	connectTo(t, m, a)
	connectTo(t, m, b)
	waitFor(t, 10*time.Second, "the capturing peer and the organization's node to see each other on the topic", func() bool {
		return slices.Contains(b.entriesTopic().ListPeers(), m.ID()) && slices.Contains(topic.ListPeers(), b.Host().ID())
	})

	// The organization publishes through its own node, which flood-publishes
	// to every topic peer: the capturing peer gets the publisher's own
	// message, the one that would name it if anything did.
	mustPublish(t, b, entryRec(t, nw, org, "asesoria", 1))
	got := make(chan *pubsub.Message, 1)
	go func() {
		msg, err := sub.Next(t.Context())
		if err == nil {
			got <- msg
		}
	}()
	var msg *pubsub.Message
	select {
	case msg = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the capturing peer received no publication")
	}
	if msg.From != nil || msg.Seqno != nil || msg.Signature != nil || msg.Key != nil {
		t.Errorf("the gossip message names its publisher: from=%x seqno=%x signature=%d bytes key=%d bytes",
			msg.From, msg.Seqno, len(msg.Signature), len(msg.Key))
	}
	if body := len(msg.Data) - directory.SealHeaderLen - 16; directory.PaddedSize(body-1) != body {
		t.Errorf("the sealed record on the wire is %d bytes, not a documented size bucket", len(msg.Data))
	}
	if _, err := directory.Open(msg.Data, nw.ID, nil); err == nil {
		t.Error("the gossip payload opened without any read key")
	}

	waitFor(t, 5*time.Second, "identify with the node to finish", func() bool {
		_, err := m.Peerstore().Get(a.Host().ID(), "AgentVersion")
		return err == nil
	})
	av, _ := m.Peerstore().Get(a.Host().ID(), "AgentVersion")
	if av != transport.NeutralAgentVersion {
		t.Errorf("identify reports agent version %q, want the neutral %q", av, transport.NeutralAgentVersion)
	}
	protos, err := m.Peerstore().GetProtocols(a.Host().ID())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(protos, pubsub.FloodSubID) {
		t.Errorf("the node offers %s", pubsub.FloodSubID)
	}
}
