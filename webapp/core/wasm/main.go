//go:build js && wasm

// Command wasm is the web app's Ceiba core: package core compiled to
// WebAssembly, with a small API on globalThis.ceibaCore. Byte arrays cross
// as Uint8Array, structured answers as JSON strings; every call returns an
// object whose "error" names what was wrong, and a call that fails changes
// nothing.
//
//	ceibaCore.newIdentity(passphrase)                 // {keystore, fingerprint}: a new reader key
//	ceibaCore.unlock(keystore, passphrase)            // {fingerprint, nodes}: the key and node addresses kept on this phone
//	ceibaCore.parseInvite(code)                       // {addrs: [Uint8Array]}: multiaddrs to dial
//	ceibaCore.redeem(code, name, myPeerID)            // {request}: the frame to send on /ceiba/invite/2.0.0
//	ceibaCore.welcome(answer)                         // {network, role}: the view starts
//	ceibaCore.open(networkHex)                        // {}: the view of a network joined before
//	ceibaCore.receive(sealed)                         // {hash, type, changed} or {waiting, reason}
//	ceibaCore.topics()                                // {topics: "[{name, kind, epoch}]"}: the GossipSub topics to listen on
//	ceibaCore.gossip(topic, data)                     // {verdict, type, changed, reason, waiting, awaitsPages}: verdict is "accept", "ignore" or "reject"
//	ceibaCore.admitMAC(side, O, A, nO, nA)            // {mac}: side is "O" or "A" (PROTOCOL.md §7)
//	ceibaCore.admitProof(side, O, A, nO, nA)          // {proof}: this reader's key || signature
//	ceibaCore.admitCheck(mac, proof, side, O, A, nO, nA, bootstrap) // {role, fingerprint}
//	ceibaCore.syncStart(me, peer)                     // {id, hello}: a sync session as initiator
//	ceibaCore.syncAck(id, body) / syncBuckets(id, body) / syncLists(id, [bodies]) / syncRecord(id, body)
//	ceibaCore.syncEnd(id)                             // {pulled}
//	ceibaCore.search(JSON.stringify({text: "asilo"})) // {results: "[...]"}
//	ceibaCore.status()                                // {status: "{...}"}
//	ceibaCore.keystore(passphrase, [nodeAddr, ...])   // {keystore}: with the keys gained and the node addresses to sync with
//	ceibaCore.export()                                // {records: [Uint8Array]}: sealed, to keep for a reload
package main

import (
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"syscall/js"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/webapp/core"
)

// One page holds one reader: its unlocked identity and read keys, its
// view once a network is open, and the redemption in progress.
var (
	id         *directory.Identity
	keys       directory.Keyring
	reader     *core.Reader
	invitation *core.Invitation
)

func main() {
	api := map[string]any{
		"newIdentity": js.FuncOf(newIdentity),
		"unlock":      js.FuncOf(unlock),
		"parseInvite": js.FuncOf(parseInvite),
		"redeem":      js.FuncOf(redeem),
		"welcome":     js.FuncOf(welcome),
		"open":        js.FuncOf(open),
		"receive":     js.FuncOf(receive),
		"topics":      js.FuncOf(topics),
		"gossip":      js.FuncOf(gossip),
		"admitMAC":    js.FuncOf(admitMAC),
		"admitProof":  js.FuncOf(admitProof),
		"admitCheck":  js.FuncOf(admitCheck),
		"syncStart":   js.FuncOf(syncStart),
		"syncAck": js.FuncOf(syncStep(func(s *core.SyncSession, b []byte) (map[string]any, error) {
			done, err := s.Ack(b)
			return map[string]any{"done": done}, err
		})),
		"syncBuckets": js.FuncOf(syncStep(func(s *core.SyncSession, b []byte) (map[string]any, error) {
			w, err := s.Buckets(b)
			return map[string]any{"want": bytesValue(w)}, err
		})),
		"syncRecord": js.FuncOf(syncStep(func(s *core.SyncSession, b []byte) (map[string]any, error) { return map[string]any{}, s.Record(b) })),
		"syncLists":  js.FuncOf(syncLists),
		"syncEnd":    js.FuncOf(syncEnd),
		"search":     js.FuncOf(search),
		"status":     js.FuncOf(status),
		"keystore":   js.FuncOf(keystore),
		"export":     js.FuncOf(export),
	}
	js.Global().Set("ceibaCore", js.ValueOf(api))
	if ready := js.Global().Get("ceibaCoreReady"); ready.Type() == js.TypeFunction {
		ready.Invoke()
	}
	select {} // the API lives as long as the page
}

func fail(err error) any { return map[string]any{"error": err.Error()} }

func bytesArg(v js.Value, what string) ([]byte, error) {
	if v.Type() != js.TypeObject || !v.InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, fmt.Errorf("%s must be a Uint8Array", what)
	}
	b := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(b, v)
	return b, nil
}

func bytesValue(b []byte) js.Value {
	u := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(u, b)
	return u
}

func stringArg(args []js.Value, i int, what string) (string, error) {
	if len(args) <= i || args[i].Type() != js.TypeString {
		return "", fmt.Errorf("%s must be a string", what)
	}
	return args[i].String(), nil
}

// newIdentity makes the phone's reader key: it never leaves the phone, and
// only its passphrase-encrypted keystore is handed out to be stored.
func newIdentity(_ js.Value, args []js.Value) any {
	pass, err := stringArg(args, 0, "the passphrase")
	if err != nil {
		return fail(err)
	}
	if err := directory.CheckNewPassphrase(pass); err != nil {
		return fail(err)
	}
	nid, err := directory.NewIdentity()
	if err != nil {
		return fail(err)
	}
	ks := &directory.Keystore{Identity: nid, Keys: directory.Keyring{}}
	data, err := ks.Encrypt(pass, 0)
	if err != nil {
		return fail(err)
	}
	id, keys, reader = nid, directory.Keyring{}, nil
	return map[string]any{"keystore": bytesValue(data), "fingerprint": nid.Fingerprint()}
}

func unlock(_ js.Value, args []js.Value) any {
	if len(args) < 1 {
		return fail(errors.New("the keystore is missing"))
	}
	data, err := bytesArg(args[0], "the keystore")
	if err != nil {
		return fail(err)
	}
	pass, err := stringArg(args, 1, "the passphrase")
	if err != nil {
		return fail(err)
	}
	ks, err := directory.DecryptKeystore(data, pass)
	if err != nil {
		return fail(err)
	}
	id, keys, reader = ks.Identity, ks.Keys, nil
	nodes := []any{}
	for _, a := range ks.Nodes {
		nodes = append(nodes, a)
	}
	return map[string]any{"fingerprint": id.Fingerprint(), "nodes": nodes}
}

var errLocked = errors.New("no key is unlocked: call newIdentity or unlock first")

func parseInvite(_ js.Value, args []js.Value) any {
	s, err := stringArg(args, 0, "the invite code")
	if err != nil {
		return fail(err)
	}
	c, err := directory.ParseInviteCode(s)
	if err != nil {
		return fail(err)
	}
	var addrs []any
	for _, a := range core.DialAddrs(c) {
		addrs = append(addrs, bytesValue(a))
	}
	return map[string]any{"addrs": addrs}
}

func redeem(_ js.Value, args []js.Value) any {
	if id == nil {
		return fail(errLocked)
	}
	s, err := stringArg(args, 0, "the invite code")
	if err != nil {
		return fail(err)
	}
	c, err := directory.ParseInviteCode(s)
	if err != nil {
		return fail(err)
	}
	name, err := stringArg(args, 1, "the name")
	if err != nil {
		return fail(err)
	}
	if len(args) < 3 {
		return fail(errors.New("this device's peer ID is missing"))
	}
	me, err := bytesArg(args[2], "this device's peer ID")
	if err != nil {
		return fail(err)
	}
	frame, inv, err := core.Redeem(id, c, name, me)
	if err != nil {
		return fail(err)
	}
	invitation = inv
	return map[string]any{"request": bytesValue(frame)}
}

func welcome(_ js.Value, args []js.Value) any {
	if invitation == nil {
		return fail(errors.New("no redemption is in progress: call redeem first"))
	}
	if len(args) < 1 {
		return fail(errors.New("the answer is missing"))
	}
	frame, err := bytesArg(args[0], "the answer")
	if err != nil {
		return fail(err)
	}
	r, role, err := invitation.Welcome(frame, nil)
	if err != nil {
		return fail(err)
	}
	invitation, reader = nil, r
	return map[string]any{"network": r.Status().Network, "role": role}
}

func open(_ js.Value, args []js.Value) any {
	if id == nil {
		return fail(errLocked)
	}
	netHex, err := stringArg(args, 0, "the network ID")
	if err != nil {
		return fail(err)
	}
	raw, err := hex.DecodeString(netHex)
	var net directory.NetworkID
	if err != nil || len(raw) != len(net) {
		return fail(fmt.Errorf("the network ID must be %d hex digits", 2*len(net)))
	}
	copy(net[:], raw)
	reader = core.NewReader(net, id, keys, nil)
	return map[string]any{}
}

var errNotOpen = errors.New("no network is open: call open first")

func receive(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	if len(args) < 1 {
		return fail(errors.New("the sealed record is missing"))
	}
	sealed, err := bytesArg(args[0], "the sealed record")
	if err != nil {
		return fail(err)
	}
	a, err := reader.Receive(sealed)
	if errors.Is(err, directory.ErrNoKey) || directory.MayPass(err) {
		return map[string]any{"waiting": true, "reason": err.Error()}
	}
	if err != nil {
		return fail(err)
	}
	return map[string]any{"hash": hex.EncodeToString(a.Hash[:]), "type": a.Type.String(), "changed": a.Changed}
}

// topics names the GossipSub topics a node holding this view's keys is
// on (core.Reader.Topics): the page subscribes to exactly these.
func topics(js.Value, []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	out, _ := json.Marshal(reader.Topics())
	return map[string]any{"topics": string(out)}
}

// gossip judges and applies one GossipSub message that came on topic
// (core.Reader.Gossip): its verdict is the validator's answer.
func gossip(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	topic, err := stringArg(args, 0, "the topic")
	if err != nil {
		return fail(err)
	}
	if len(args) < 2 {
		return fail(errors.New("the message is missing"))
	}
	data, err := bytesArg(args[1], "the message")
	if err != nil {
		return fail(err)
	}
	a, v, err := reader.Gossip(topic, data)
	out := map[string]any{"verdict": string(v), "type": a.Type.String(), "changed": a.Changed}
	if err != nil {
		out["reason"] = err.Error()
		out["waiting"] = core.Waits(err)
	}
	if v != core.Reject && (err == nil || core.Waits(err)) {
		out["awaitsPages"] = reader.AwaitsPages()
	}
	return out
}

func search(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	qs, err := stringArg(args, 0, "the query")
	if err != nil {
		return fail(err)
	}
	var q directory.Query
	if err := json.Unmarshal([]byte(qs), &q); err != nil {
		return fail(fmt.Errorf("the query is not valid JSON: %w", err))
	}
	out, err := json.Marshal(reader.Search(q))
	if err != nil {
		return fail(err)
	}
	return map[string]any{"results": string(out)}
}

func status(js.Value, []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	out, _ := json.Marshal(reader.Status())
	return map[string]any{"status": string(out)}
}

// keystore re-encrypts the identity and every key held, so the read keys
// gained from rotations survive a reload, with the addresses of the nodes
// to sync with again (an array of strings, optional): kept inside the
// encryption, not beside it.
func keystore(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	pass, err := stringArg(args, 0, "the passphrase")
	if err != nil {
		return fail(err)
	}
	var nodes []string
	if len(args) > 1 && !args[1].IsUndefined() && !args[1].IsNull() {
		if !args[1].InstanceOf(js.Global().Get("Array")) {
			return fail(errors.New("the node addresses must be an array of strings"))
		}
		for i := range args[1].Length() {
			v := args[1].Index(i)
			if v.Type() != js.TypeString {
				return fail(errors.New("the node addresses must be an array of strings"))
			}
			nodes = append(nodes, v.String())
		}
	}
	ks := &directory.Keystore{Identity: id, Keys: reader.Keys(), Nodes: nodes}
	data, err := ks.Encrypt(pass, 0)
	if err != nil {
		return fail(err)
	}
	return map[string]any{"keystore": bytesValue(data)}
}

// export hands the view's records, sealed, to the page to keep (Export).
func export(js.Value, []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	var out []any
	for _, s := range reader.Export() {
		out = append(out, bytesValue(s))
	}
	return map[string]any{"records": out}
}

// admitArgs reads side, opener, accepter, nO and nA from args[at:].
func admitArgs(args []js.Value, at int) (side byte, parts [4][]byte, err error) {
	s, err := stringArg(args, at, "the side")
	if err != nil || (s != "O" && s != "A") {
		return 0, parts, errors.New(`the side must be "O" or "A"`)
	}
	names := [4]string{"the opener's peer ID", "the accepter's peer ID", "the opener's nonce", "the accepter's nonce"}
	for i, name := range names {
		if len(args) <= at+1+i {
			return 0, parts, fmt.Errorf("%s is missing", name)
		}
		if parts[i], err = bytesArg(args[at+1+i], name); err != nil {
			return 0, parts, err
		}
	}
	if len(parts[2]) != directory.AdmitNonceSize || len(parts[3]) != directory.AdmitNonceSize {
		return 0, parts, fmt.Errorf("nonces are %d bytes", directory.AdmitNonceSize)
	}
	return s[0], parts, nil
}

func admitMAC(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	side, p, err := admitArgs(args, 0)
	if err != nil {
		return fail(err)
	}
	return map[string]any{"mac": bytesValue(directory.AdmitMAC(directory.SyncProofKey(reader.Network()), side, p[0], p[1], p[2], p[3]))}
}

func admitProof(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	side, p, err := admitArgs(args, 0)
	if err != nil {
		return fail(err)
	}
	return map[string]any{"proof": bytesValue(directory.AdmitProof(id, reader.Network(), side, p[0], p[1], p[2], p[3]))}
}

// admitCheck checks the other side's network proof (mac; omitted with
// null when it was checked before) and key proof, and judges the key.
func admitCheck(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	if len(args) < 8 {
		return fail(errors.New("admitCheck takes mac, proof, side, opener, accepter, nO, nA and bootstrap"))
	}
	side, p, err := admitArgs(args, 2)
	if err != nil {
		return fail(err)
	}
	net := reader.Network()
	if !args[0].IsNull() {
		mac, err := bytesArg(args[0], "the network proof")
		if err != nil {
			return fail(err)
		}
		if !hmac.Equal(mac, directory.AdmitMAC(directory.SyncProofKey(net), side, p[0], p[1], p[2], p[3])) {
			return fail(errors.New("its network proof is wrong (another network, or none)"))
		}
	}
	proof, err := bytesArg(args[1], "the key proof")
	if err != nil {
		return fail(err)
	}
	k, ok := directory.CheckAdmitProof(net, proof, side, p[0], p[1], p[2], p[3])
	if !ok {
		return fail(errors.New("the signature does not verify (forged, or replayed from another connection)"))
	}
	role, err := reader.Judge(k, args[7].Truthy())
	if err != nil {
		return fail(err)
	}
	return map[string]any{"role": role, "fingerprint": directory.Fingerprint(k)}
}

// Sync sessions in progress, by id.
var (
	syncs    = map[int]*core.SyncSession{}
	nextSync = 1
)

const maxSyncSessions = 16

func syncStart(_ js.Value, args []js.Value) any {
	if reader == nil {
		return fail(errNotOpen)
	}
	if len(args) < 2 {
		return fail(errors.New("syncStart takes this device's and the peer's peer IDs"))
	}
	me, err := bytesArg(args[0], "this device's peer ID")
	if err != nil {
		return fail(err)
	}
	peer, err := bytesArg(args[1], "the peer's peer ID")
	if err != nil {
		return fail(err)
	}
	if len(syncs) >= maxSyncSessions {
		return fail(errors.New("too many sync sessions at once"))
	}
	s, hello := reader.StartSync(me, peer, time.Now())
	id := nextSync
	nextSync++
	syncs[id] = s
	return map[string]any{"id": id, "hello": bytesValue(hello)}
}

func session(args []js.Value) (*core.SyncSession, error) {
	if len(args) < 1 || args[0].Type() != js.TypeNumber {
		return nil, errors.New("the sync session id is missing")
	}
	s, ok := syncs[args[0].Int()]
	if !ok {
		return nil, errors.New("no such sync session")
	}
	return s, nil
}

// syncStep wraps a step that takes one frame body; a step that fails ends
// the session.
func syncStep(step func(*core.SyncSession, []byte) (map[string]any, error)) func(js.Value, []js.Value) any {
	return func(_ js.Value, args []js.Value) any {
		s, err := session(args)
		if err != nil {
			return fail(err)
		}
		if len(args) < 2 {
			return fail(errors.New("the frame body is missing"))
		}
		body, err := bytesArg(args[1], "the frame body")
		if err != nil {
			return fail(err)
		}
		out, err := step(s, body)
		if err != nil {
			delete(syncs, args[0].Int())
			return fail(err)
		}
		return out
	}
}

func syncLists(_ js.Value, args []js.Value) any {
	s, err := session(args)
	if err != nil {
		return fail(err)
	}
	if len(args) < 2 || !args[1].InstanceOf(js.Global().Get("Array")) {
		return fail(errors.New("the lists must be an array of Uint8Array"))
	}
	var lists [][]byte
	for i := range args[1].Length() {
		b, err := bytesArg(args[1].Index(i), "a list")
		if err != nil {
			return fail(err)
		}
		lists = append(lists, b)
	}
	req, n, err := s.Lists(lists)
	if err != nil {
		delete(syncs, args[0].Int())
		return fail(err)
	}
	return map[string]any{"request": bytesValue(req), "count": n}
}

func syncEnd(_ js.Value, args []js.Value) any {
	s, err := session(args)
	if err != nil {
		return fail(err)
	}
	delete(syncs, args[0].Int())
	return map[string]any{"pulled": s.Pulled}
}
