package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// p2pCode is the multiaddr protocol code of /p2p/<peer ID>, as a varint.
var p2pCode = binary.AppendUvarint(nil, 0x01a5)

// DialAddrs are the code's addresses, each with /p2p/<peer> appended, in
// binary multiaddr form: what the JavaScript side dials, without parsing
// peer IDs itself.
func DialAddrs(c *directory.InviteCode) [][]byte {
	out := make([][]byte, 0, len(c.Addrs))
	for _, a := range c.Addrs {
		b := bytes.Clone(a)
		b = append(b, p2pCode...)
		b = binary.AppendUvarint(b, uint64(len(c.Peer)))
		out = append(out, append(b, c.Peer...))
	}
	return out
}

// Invitation is one redemption of an invite code in progress: the request
// went out over one connection, and only its answer opens the welcome.
type Invitation struct {
	id *directory.Identity
	t  directory.InviteTranscript
}

// Redeem builds the framed request that redeems code for id over the
// connection from redeemer (this device's libp2p peer ID, binary) to the
// code's node, under name (empty for a reader).
func Redeem(id *directory.Identity, code *directory.InviteCode, name string, redeemer []byte) ([]byte, *Invitation, error) {
	req, t, err := directory.NewInviteRequest(id, code, name, code.Peer, redeemer)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	if err := directory.WriteInviteMessage(&buf, req); err != nil {
		return nil, nil, err
	}
	return buf.Bytes(), &Invitation{id: id, t: t}, nil
}

// Welcome reads the inviting node's framed answer, opens the welcome sealed
// to this device, and starts the reader's view with its keys and records.
// The inviting node's refusal comes back as an error in its own words.
func (inv *Invitation) Welcome(frame []byte, now func() time.Time) (*Reader, string, error) {
	var resp directory.InviteResponse
	if err := directory.ReadInviteMessage(bytes.NewReader(frame), &resp, directory.MaxInviteResponse); err != nil {
		return nil, "", fmt.Errorf("the inviting node's answer is not readable: %w", err)
	}
	if resp.Error != "" {
		return nil, "", fmt.Errorf("the inviting node refused: %s", resp.Error)
	}
	w, keys, err := directory.OpenInviteWelcome(inv.id, inv.t, resp.Welcome)
	if err != nil {
		return nil, "", err
	}
	r := NewReader(w.Network, inv.id, keys, now)
	for _, b := range w.Records {
		rec, err := directory.DecodeRecord(b)
		if err != nil {
			return nil, "", fmt.Errorf("the welcome carries a record that does not decode: %w", err)
		}
		r.mu.Lock()
		_, err = r.state.Apply(rec)
		if err == nil {
			r.unlock()
		}
		r.mu.Unlock()
		if err != nil && !directory.MayPass(err) {
			return nil, "", fmt.Errorf("the welcome carries a record this reader refuses: %w", err)
		}
	}
	return r, w.Role, nil
}
