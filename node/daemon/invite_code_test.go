package daemon

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// codeBytes is the binary content of a printed code.
func codeBytes(t *testing.T, code string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(code, directory.InviteCodePrefix))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Finding 4 of issue 20: a steward join code carried the genesis (network
// and steward names in plain text) and the first epoch; every code carried
// the network ID. A code now holds the inviter's peer ID, its addresses
// and a token, nothing else; and a co-steward still joins with it.
func TestInviteCodeRevealsNoNetwork(t *testing.T) {
	ctx := context.Background()
	const netName, aName, bName = "Red Secreta de Prueba", "Ana Steward", "Beto Steward"
	ana := startTestDaemon(t, aName)
	beto := startTestDaemon(t, bName)
	betoDoc := beto.PublicKeyDoc()
	draft, err := ana.CreateNetwork(ctx, api.NetworkRequest{Name: netName, Threshold: 2, Stewards: []api.PublicKeyDoc{betoDoc}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := beto.SignDraft(draft.Draft)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ana.CreateNetwork(ctx, api.NetworkRequest{Draft: signed.Draft})
	if err != nil {
		t.Fatal(err)
	}
	join := res.JoinCodes[directory.Fingerprint(beto.me().Public())]
	if join == "" {
		t.Fatalf("no join code for the co-steward: %+v", res.JoinCodes)
	}
	member, err := ana.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	st := ana.Node().State()
	net, charter := st.Network(), st.CharterID()
	secrets := map[string][]byte{
		"network ID":          net[:],
		"network ID (hex)":    []byte(hex.EncodeToString(net[:])),
		"charter ID":          charter[:],
		"network name":        []byte(netName),
		"steward name (Ana)":  []byte(aName),
		"steward name (Beto)": []byte(bName),
		"Ana's key":           func() []byte { k := ana.me().Public(); return k[:] }(),
		"Beto's key":          func() []byte { k := beto.me().Public(); return k[:] }(),
		"Beto's KEM key":      beto.me().KEMPublic()[:64],
		"key tag":             func() []byte { _, k, _ := ana.Node().Keyring().Current(); tag := k.Tag(); return tag[:] }(),
	}
	for kind, code := range map[string]string{"steward join code": join, "member invite": member.Code} {
		raw := codeBytes(t, code)
		var fields map[uint64]cbor.RawMessage
		if err := cbor.Unmarshal(raw, &fields); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for k := range fields {
			if k < 1 || k > 3 {
				t.Errorf("%s carries field %d besides peer, addresses and token", kind, k)
			}
		}
		for what, secret := range secrets {
			if bytes.Contains(raw, secret) || strings.Contains(code, string(secret)) {
				t.Errorf("%s reveals the %s", kind, what)
			}
		}
		if len(raw) > 160 {
			t.Errorf("%s is %d bytes; a code needs only peer, a few addresses and a token", kind, len(raw))
		}
	}

	// What the code no longer carries arrives after redemption, sealed to
	// the co-steward's key.
	s, err := beto.AcceptInvite(ctx, api.AcceptRequest{Code: join})
	if err != nil {
		t.Fatalf("the co-steward redeeming its join code: %v", err)
	}
	if s.Network != net.String() || s.NetworkName != netName || !strings.Contains(s.Role, "steward") {
		t.Fatalf("after the join code: network %s %q, role %q", s.Network, s.NetworkName, s.Role)
	}
	// Used, the join code is worth nothing.
	other := startTestDaemon(t, "other")
	if _, err := other.AcceptInvite(ctx, api.AcceptRequest{Code: join}); err == nil {
		t.Fatal("a used steward join code was redeemed again")
	}
}

// request is what redeemRemote sends, signed by id over the transcript of
// tok between inviter and redeemer.
func request(t *testing.T, id *directory.Identity, tok []byte, inviter, redeemer peer.ID, name string) inviteRequest {
	t.Helper()
	tr := directory.InviteTranscript{TokenHash: directory.InviteTokenHash(tok), Inviter: []byte(inviter), Redeemer: []byte(redeemer), Key: id.Public(), KEM: id.KEMPublic()}
	sig, err := directory.SignInviteTranscript(id, tr)
	if err != nil {
		t.Fatal(err)
	}
	return inviteRequest{Token: tok, Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: name, Sig: sig}
}

// Finding 4 of issue 20: whoever presents a token must prove, on that
// connection, the key it asks to have admitted; a request that does not
// is refused before the token is looked at, so the code stays good.
func TestInviteTranscriptCheckedBeforeTokenSpent(t *testing.T) {
	steward, code := stewardWithInvite(t)
	inviter := steward.Node().Host().ID()
	redeemer := peer.ID("the redeemer's connection")
	org, thief := mustIdentity(t), mustIdentity(t)
	before := steward.Node().State().Digest()

	bad := map[string]inviteRequest{}
	r := request(t, org, code.Token, inviter, peer.ID("another connection"), "Colectivo")
	bad["signed for another connection"] = r
	r = request(t, org, code.Token, peer.ID("another inviter"), redeemer, "Colectivo")
	bad["signed for another inviter"] = r
	r = request(t, org, []byte("another token 16"), inviter, redeemer, "Colectivo")
	r.Token = code.Token
	bad["signed for another token"] = r
	r = request(t, thief, code.Token, inviter, redeemer, "Colectivo")
	r.Key, r.KEM, r.KEMSig = org.Public(), org.KEMPublic(), org.KEMBinding()
	bad["signed by another key"] = r
	r = request(t, org, code.Token, inviter, redeemer, "Colectivo")
	r.Sig = nil
	bad["not signed"] = r
	for what, req := range bad {
		resp := steward.redeemInvite(req, inviter, redeemer)
		if resp.Error == "" || resp.Welcome != nil || !strings.Contains(resp.Error, "not signed by its key") {
			t.Fatalf("a request %s: %+v", what, resp)
		}
	}
	if steward.Node().State().Digest() != before {
		t.Fatal("a refused request changed the steward's directory")
	}
	resp := steward.redeemInvite(request(t, org, code.Token, inviter, redeemer, "Colectivo"), inviter, redeemer)
	if resp.Error != "" {
		t.Fatalf("the code was spent by refused requests: %s", resp.Error)
	}
	tr := directory.InviteTranscript{TokenHash: directory.InviteTokenHash(code.Token), Inviter: []byte(inviter), Redeemer: []byte(redeemer), Key: org.Public(), KEM: org.KEMPublic()}
	w, keys, err := directory.OpenInviteWelcome(org, tr, resp.Welcome)
	if err != nil || w.Network != steward.Node().State().Network() || w.Role != "member" || len(keys) == 0 {
		t.Fatalf("the welcome: %+v, %d keys, %v", w, len(keys), err)
	}
	if _, _, err := directory.OpenInviteWelcome(thief, directory.InviteTranscript{TokenHash: tr.TokenHash, Inviter: tr.Inviter, Redeemer: tr.Redeemer, Key: thief.Public(), KEM: thief.KEMPublic()}, resp.Welcome); err == nil {
		t.Fatal("another key opened the welcome")
	}
}

// Finding 4 of issue 20: a used or expired code is worth nothing: the
// inviter answers it with a refusal and no network, no keys.
func TestUsedOrExpiredCodeRedeemsNothing(t *testing.T) {
	steward, code := stewardWithInvite(t)
	inviter := steward.Node().Host().ID()
	redeemer := peer.ID("redeemer")
	if resp := steward.redeemInvite(request(t, mustIdentity(t), code.Token, inviter, redeemer, "Primera"), inviter, redeemer); resp.Error != "" {
		t.Fatal(resp.Error)
	}
	resp := steward.redeemInvite(request(t, mustIdentity(t), code.Token, inviter, redeemer, "Segunda"), inviter, redeemer)
	if resp.Welcome != nil || !strings.Contains(resp.Error, "already been used") {
		t.Fatalf("a used code: %+v", resp)
	}

	inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := parseCode(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	steward.invites.mu.Lock()
	steward.invites.Pending[tokenID(directory.InviteTokenHash(expired.Token))].Expires = time.Now().Add(-time.Second).Unix()
	steward.invites.mu.Unlock()
	before := steward.Node().State().Digest()
	resp = steward.redeemInvite(request(t, mustIdentity(t), expired.Token, inviter, redeemer, "Tardía"), inviter, redeemer)
	if resp.Welcome != nil || !strings.Contains(resp.Error, "expired") {
		t.Fatalf("an expired code: %+v", resp)
	}
	if steward.Node().State().Digest() != before {
		t.Fatal("an expired code changed the steward's directory")
	}
}

// Finding 4 of issue 20: the token was marked used before the admission
// was published, so a failed publish burned the code. It is spent only
// once the admission is durable.
func TestFailedPublishLeavesCodeUsable(t *testing.T) {
	ctx := context.Background()
	steward, code := stewardWithInvite(t)
	n := steward.Node()
	inviter, redeemer := n.Host().ID(), peer.ID("redeemer")
	org := mustIdentity(t)
	// A node shutting down refuses to publish (node.ErrClosed): the
	// admission is not made, and the code must survive it.
	n.Close()
	resp := steward.redeemInvite(request(t, org, code.Token, inviter, redeemer, "Colectivo"), inviter, redeemer)
	if resp.Welcome != nil || !strings.Contains(resp.Error, "could not publish the admission") {
		t.Fatalf("an admission that cannot be published: %+v", resp)
	}
	steward.mu.Lock()
	steward.node = nil
	steward.mu.Unlock()
	if err := steward.startNode(ctx); err != nil {
		t.Fatal(err)
	}
	if steward.Node().Host().ID() != inviter {
		t.Fatal("the restarted node has another peer ID")
	}
	resp = steward.redeemInvite(request(t, org, code.Token, inviter, redeemer, "Colectivo"), inviter, redeemer)
	if resp.Error != "" {
		t.Fatalf("the code after a failed publish: %s", resp.Error)
	}
	if _, ok := steward.Node().State().Member(org.Public()); !ok {
		t.Fatal("the second redemption did not admit the organization")
	}
}

func mustIdentity(t *testing.T) *directory.Identity {
	t.Helper()
	id, err := directory.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Issue 16: a phone's browser without WebTransport dials WebRTC, and a
// WebRTC address's certificate hash does not rotate, so a code carries
// one even when the node has more addresses than a code holds (it is
// listed last here, where the cut to maxCodeAddrs would drop it); the
// rotating WebTransport addresses and loopback ones stay out.
func TestInviteCodeKeepsAWebRTCAddress(t *testing.T) {
	const hash = "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE6g"
	var all []multiaddr.Multiaddr
	for i := range maxCodeAddrs {
		all = append(all,
			multiaddr.StringCast(fmt.Sprintf("/ip4/203.0.113.%d/tcp/4747", i+1)),
			multiaddr.StringCast(fmt.Sprintf("/ip4/203.0.113.%d/udp/4747/quic-v1/webtransport/certhash/%s", i+1, hash)))
	}
	rtc := multiaddr.StringCast("/ip4/203.0.113.1/udp/4747/webrtc-direct/certhash/" + hash)
	all = append(all, multiaddr.StringCast("/ip4/127.0.0.1/udp/4747/webrtc-direct/certhash/"+hash), rtc)
	got := codeAddrs(all)
	if len(got) != maxCodeAddrs {
		t.Fatalf("the code carries %d addresses, want %d", len(got), maxCodeAddrs)
	}
	var names []string
	for _, b := range got {
		names = append(names, multiaddr.Cast(b).String())
	}
	if !slices.Contains(names, rtc.String()) {
		t.Errorf("the code carries no WebRTC address: %v", names)
	}
	for _, n := range names {
		if strings.Contains(n, "/webtransport") || strings.Contains(n, "/127.0.0.1/") {
			t.Errorf("the code carries %s", n)
		}
	}
}
