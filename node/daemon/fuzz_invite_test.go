package daemon

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// Fuzz targets for what an invite brings in from outside: the code a
// person pastes (parseCode) and the messages of the invite protocol
// (readMsg), including a request redeemed by a running steward node.
// Seed corpora are in testdata/fuzz/<target>. Run one with
//
//	go test -run '^$' -fuzz '^FuzzParseCode$' -fuzztime 30s ./node/daemon/

// sampleCode is a well-formed member invite code.
func sampleCode() *inviteCode {
	id, err := peer.Decode("12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo")
	if err != nil {
		panic(err)
	}
	return &inviteCode{directory.InviteCode{Peer: []byte(id), Token: bytes.Repeat([]byte{7}, 16),
		Addrs: [][]byte{multiaddr.StringCast("/ip4/127.0.0.1/tcp/4001").Bytes()}}}
}

// FuzzParseCode: any text is refused with a user error or parsed into a
// code that names a node and reads back the same after printing.
func FuzzParseCode(f *testing.F) {
	f.Add(sampleCode().String())
	f.Add("ceiba-invite:")
	f.Add("  ceiba-invite:\n" + sampleCode().String()[len(directory.InviteCodePrefix):] + "  ")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCode(s)
		if err != nil {
			if _, ok := err.(*userError); !ok {
				t.Fatalf("refusal is %T, not a user error: %v", err, err)
			}
			return
		}
		if len(c.Addrs) == 0 {
			t.Fatal("a parsed code names no node")
		}
		again, err := parseCode(c.String())
		if err != nil {
			t.Fatalf("a parsed code does not parse after printing: %v", err)
		}
		if !reflect.DeepEqual(normalize(c), normalize(again)) {
			t.Fatalf("a code changed through print and parse:\n%+v\n%+v", c, again)
		}
	})
}

// normalize maps empty and nil byte slices to nil, which CBOR does not
// distinguish.
func normalize(c *inviteCode) inviteCode {
	out := *c
	for _, b := range []*[]byte{&out.Token, &out.Peer} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return out
}

// FuzzInviteMessage: a frame of the invite protocol is refused, or decodes
// into a request or response that reads back the same after writing; and
// a decoded request handed to a steward's node (that issued no invite
// with that token) is refused with a reason, never accepted or panicking.
func FuzzInviteMessage(f *testing.F) {
	var buf bytes.Buffer
	writeMsg(&buf, inviteRequest{Token: bytes.Repeat([]byte{1}, 16), Key: directory.PublicKey{9}, KEM: make([]byte, directory.KEMPublicKeySize), Name: "Colectivo"})
	f.Add(buf.Bytes())
	buf.Reset()
	writeMsg(&buf, inviteResponse{Error: "this invite has already been used"})
	f.Add(buf.Bytes())
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	d := fuzzSteward(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var req inviteRequest
		if err := readMsg(bytes.NewReader(data), &req, maxInviteRequest); err == nil {
			var out bytes.Buffer
			if err := writeMsg(&out, req); err != nil {
				t.Fatal(err)
			}
			var again inviteRequest
			if err := readMsg(&out, &again, maxInviteRequest); err != nil || !reflect.DeepEqual(normReq(req), normReq(again)) {
				t.Fatalf("a request changed through write and read: %v", err)
			}
			before := d.Node().State().Digest()
			resp := d.redeemInvite(req, d.Node().Host().ID(), fuzzRedeemer)
			if resp.Error == "" || resp.Welcome != nil {
				t.Fatalf("a request with a token never issued was redeemed: %+v", resp)
			}
			if d.Node().State().Digest() != before {
				t.Fatal("a refused invite request changed the directory")
			}
		}
		var resp inviteResponse
		if err := readMsg(bytes.NewReader(data), &resp, maxInviteResponse); err == nil {
			var out bytes.Buffer
			if err := writeMsg(&out, resp); err != nil {
				t.Fatal(err)
			}
			var again inviteResponse
			if err := readMsg(&out, &again, maxInviteResponse); err != nil || again.Error != resp.Error || !bytes.Equal(again.Welcome, resp.Welcome) {
				t.Fatalf("a response changed through write and read: %v", err)
			}
		}
	})
}

// fuzzRedeemer stands for the peer at the other end of a fuzzed request.
var fuzzRedeemer = peer.ID("fuzzed redeemer")

func normReq(r inviteRequest) inviteRequest {
	if len(r.Token) == 0 {
		r.Token = nil
	}
	if len(r.KEM) == 0 {
		r.KEM = nil
	}
	return r
}

// fuzzSteward starts a steward daemon with a network for the whole fuzz
// target (one per fuzzing process), closed when the target ends.
func fuzzSteward(f *testing.F) *Daemon {
	d := startTestDaemon(f, "steward")
	if _, err := d.CreateNetwork(context.Background(), api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		f.Fatal(err)
	}
	return d
}
