package daemon

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

// userError is a mistake of the caller: the API answers it with 400 and
// the message as is.
type userError struct{ msg string }

func (e *userError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...)}
}

// me is this home's identity. It never changes, unlike d.ks, which the node
// replaces as it adopts read keys; so it is kept apart and read unlocked.
func (d *Daemon) me() *directory.Identity { return d.id }

// joined returns the running node or a clear error.
func (d *Daemon) joined() (*node.Node, error) {
	n := d.Node()
	if n == nil {
		return nil, userErrorf("this node has not joined a network yet: run \"ceiba network create\" or \"ceiba invite accept CODE\"")
	}
	return n, nil
}

// role says what this node's key is in the network: "steward",
// "member", "steward+member", "reader", "revoked" or "none".
func (d *Daemon) role(st *directory.State) string {
	me := d.me().Public()
	if st.IsRevoked(me) {
		return "revoked"
	}
	var roles []string
	if d.isSteward(st) {
		roles = append(roles, "steward")
	}
	if d.isMember(st) {
		roles = append(roles, "member")
	}
	if len(roles) == 0 && st.IsReader(me) {
		roles = append(roles, "reader")
	}
	if len(roles) == 0 {
		return "none"
	}
	return strings.Join(roles, "+")
}

func (d *Daemon) isSteward(st *directory.State) bool {
	c := st.Charter()
	return c != nil && slices.Contains(c.StewardKeys(), d.me().Public()) && !st.IsRevoked(d.me().Public())
}

func (d *Daemon) isMember(st *directory.State) bool {
	_, ok := st.Member(d.me().Public())
	return ok
}

// Status reports the node's health for `ceiba status` and the web UI.
func (d *Daemon) Status() api.Status {
	s := api.Status{Fingerprint: d.me().Fingerprint(), Role: "none"}
	n := d.Node()
	if n == nil {
		return s
	}
	st := n.State()
	ns := n.Status()
	net := st.Network()
	s.Joined = true
	s.Network = hex.EncodeToString(net[:])
	if c := st.Charter(); c != nil {
		s.NetworkName = c.Name
	}
	s.Role = d.role(st)
	s.PeerID = n.Host().ID().String()
	for _, a := range n.Addrs() {
		s.Addrs = append(s.Addrs, a.String())
	}
	s.Peers = ns.Peers
	s.LastSync = ns.LastSync
	s.LastSyncPeers = ns.LastSyncPeers
	s.FreshAsOf = ns.FreshAsOf
	s.Epoch = st.CurrentEpoch()
	s.KeyEpoch = ns.KeyEpoch
	s.KeyMismatches = ns.KeyMismatches
	if r := ns.StoreRepair; r != nil {
		s.StoreRepair = &api.StoreRepair{At: r.When, Damage: r.Damage, KeptAt: r.MovedTo, Recovered: r.Recovered}
	}
	if rot, ok := st.CurrentRotation(); ok {
		s.Rotation = &rot
	}
	s.Counts = st.Stats()
	s.Stale = d.stale(n, ns.FreshAsOf)
	hb := n.HeartbeatFreshness()
	s.HeartbeatStale, s.LastHeartbeat, s.HeartbeatExpires = hb.Stale, hb.Newest, hb.Expires
	s.BehindStewards, s.BehindCharter, s.BehindEpoch, s.BehindMembers = hb.Behind, hb.BehindCharter, hb.BehindEpoch, hb.BehindMembers
	reachabilityOf(n, &s)
	s.OffersRelay = n.OffersRelay()
	bw, caps, th := n.Bandwidth(), n.RateCaps(), n.Throttled()
	s.Traffic = &api.Traffic{
		Profile: d.cfg.Profile, DHT: d.cfg.dhtConfig().Mode(),
		BytesIn: bw.TotalIn, BytesOut: bw.TotalOut,
		RecvCap: caps.Recv, SendCap: caps.Send,
		ThrottledIn: th.Recv.Seconds(), ThrottledOut: th.Send.Seconds(),
	}
	for _, h := range ns.HeldBack {
		s.HeldBack = append(s.HeldBack, api.HeldBack{Author: directory.Fingerprint(h.Author), Name: h.Name, Held: h.Held})
	}
	if d.cfg.dhtConfig().Mode() != "off" {
		u := ns.DHTStore
		s.DHTStore = &api.DHTStore{Records: u.Records, Bytes: u.Bytes, Pending: u.Pending, Refused: u.Refused,
			Unserved: u.Unserved, Providers: u.Providers, ProvidersRefused: u.ProvidersRefused}
	}
	return s
}

// stale says whether this node's copy may be out of date: no successful
// sync within the charter's stale bound, no valid steward heartbeat, or a
// heartbeat reporting governance this copy lacks (peers that answer but
// withhold what is new: docs/SECURITY.md).
func (d *Daemon) stale(n *node.Node, fresh time.Time) bool {
	hb := n.HeartbeatFreshness()
	return syncStale(n.State(), fresh) || hb.Stale || hb.Behind
}

func syncStale(st *directory.State, fresh time.Time) bool {
	bound := directory.Policy{}.StaleBound()
	if c := st.Charter(); c != nil {
		bound = c.Policy.StaleBound()
	}
	return fresh.IsZero() || time.Since(fresh) > bound
}

// CreateNetwork starts a new network with this node's key as a steward.
// With co-stewards it first returns a draft every steward must sign; called
// again with the complete draft, it starts the network.
func (d *Daemon) CreateNetwork(ctx context.Context, req api.NetworkRequest) (api.NetworkResult, error) {
	if d.Node() != nil {
		return api.NetworkResult{}, userErrorf("this node already belongs to a network")
	}
	me := d.me()
	var genesis *directory.Record
	if len(req.Draft) > 0 {
		r, err := directory.DecodeRecord(req.Draft)
		if err != nil {
			return api.NetworkResult{}, userErrorf("the draft is not a valid charter: %v", err)
		}
		genesis = r
	} else {
		if strings.TrimSpace(req.Name) == "" {
			return api.NetworkResult{}, userErrorf("give the network a name with --name")
		}
		stewards := []directory.Steward{{Key: me.Public(), KEM: me.KEMPublic(), KEMSig: me.KEMBinding(), Name: d.cfg.Name}}
		for _, doc := range req.Stewards {
			k, err := parseKeyDoc(doc)
			if err != nil {
				return api.NetworkResult{}, err
			}
			if slices.ContainsFunc(stewards, func(s directory.Steward) bool { return s.Key == k.Key }) {
				return api.NetworkResult{}, userErrorf("steward %s is listed twice", directory.Fingerprint(k.Key))
			}
			stewards = append(stewards, directory.Steward{Key: k.Key, KEM: k.KEM, KEMSig: k.KEMSig, Name: doc.Name})
		}
		threshold := req.Threshold
		if threshold == 0 {
			threshold = len(stewards)/2 + 1
		}
		c, err := directory.NewGenesis(req.Name, stewards, threshold, directory.Policy{}, time.Now())
		if err != nil {
			return api.NetworkResult{}, userErrorf("%v", err)
		}
		genesis, err = directory.NewRecord(directory.GenesisIDOf(c), c, me)
		if err != nil {
			return api.NetworkResult{}, err
		}
	}
	if genesis.Type != directory.TypeCharter {
		return api.NetworkResult{}, userErrorf("the draft is a %s, not a charter", genesis.Type)
	}
	body, _ := genesis.DecodeBody()
	charter := body.(*directory.Charter)
	if charter.Version != 1 {
		return api.NetworkResult{}, userErrorf("the draft is charter version %d, not a new network", charter.Version)
	}
	if !slices.Contains(charter.StewardKeys(), me.Public()) {
		return api.NetworkResult{}, userErrorf("this node's key is not a steward of the draft")
	}
	netID := genesis.Network
	missing := missingSigners(genesis, charter)
	if len(missing) > 0 {
		return api.NetworkResult{Network: netID.String(), Draft: genesis.Encode(), Missing: missing}, nil
	}

	// The genesis is complete: make the first read key and seal it to every
	// steward, so each can open the network when it joins.
	key := directory.NewReadKey()
	var recipients []directory.Recipient
	for _, s := range charter.Stewards {
		recipients = append(recipients, directory.Recipient{Key: s.Key, KEM: s.KEM})
	}
	eb, pages, err := directory.NewEpoch(netID, 1, 1, directory.Hash{}, key, recipients, time.Now(), charter.Policy.MaxRecordSize())
	if err != nil {
		return api.NetworkResult{}, err
	}
	if err := d.join(ctx, netID, "steward", directory.Keyring{1: key}, nil); err != nil {
		return api.NetworkResult{}, err
	}
	n := d.Node()
	if _, err := n.Publish(ctx, genesis); err != nil {
		return api.NetworkResult{}, fmt.Errorf("publish %s: %w", genesis.Type, err)
	}
	if _, err := n.PublishRotation(ctx, eb, pages); err != nil {
		return api.NetworkResult{}, fmt.Errorf("publish the first epoch: %w", err)
	}
	res := api.NetworkResult{Network: netID.String(), JoinCodes: map[string]string{}}
	for _, s := range charter.Stewards {
		if s.Key == me.Public() {
			continue
		}
		code, err := d.stewardJoinCode(n, s.Key)
		if err != nil {
			return api.NetworkResult{}, err
		}
		res.JoinCodes[directory.Fingerprint(s.Key)] = code
	}
	d.log.Info("network created", "network", netID.String()[:16], "stewards", len(charter.Stewards), "threshold", charter.Threshold)
	return res, nil
}

// SignDraft adds this node's signature to a genesis draft, offline.
func (d *Daemon) SignDraft(draft []byte) (api.NetworkResult, error) {
	r, err := directory.DecodeRecord(draft)
	if err != nil {
		return api.NetworkResult{}, userErrorf("the draft is not a valid charter: %v", err)
	}
	body, _ := r.DecodeBody()
	c, ok := body.(*directory.Charter)
	if !ok || c.Version != 1 {
		return api.NetworkResult{}, userErrorf("the draft is not a new network's charter")
	}
	if !slices.Contains(c.StewardKeys(), d.me().Public()) {
		return api.NetworkResult{}, userErrorf("this node's key (%s) is not among the draft's stewards", d.me().Fingerprint())
	}
	r.AddSignature(d.me())
	return api.NetworkResult{Network: r.Network.String(), Draft: r.Encode(), Missing: missingSigners(r, c)}, nil
}

func missingSigners(r *directory.Record, c *directory.Charter) []string {
	var missing []string
	for _, s := range c.Stewards {
		if !slices.ContainsFunc(r.Sigs, func(sg directory.Signature) bool { return sg.Key == s.Key }) {
			missing = append(missing, directory.Fingerprint(s.Key))
		}
	}
	return missing
}

// join records the network in the config, stores the keys, writes the
// revocation certificate and starts the node.
func (d *Daemon) join(ctx context.Context, netID directory.NetworkID, role string, keys directory.Keyring, bootstrap []string) error {
	d.mu.Lock()
	for n, k := range keys {
		d.ks.Keys[n] = k
	}
	ks := d.ks
	cfg := *d.cfg
	cfg.Network.ID = hex.EncodeToString(netID[:])
	cfg.Network.Role = role
	cfg.Node.Bootstrap = append(slices.Clone(cfg.Node.Bootstrap), bootstrap...)
	d.mu.Unlock()
	if err := d.saveKeys(ks); err != nil {
		return fmt.Errorf("save keys: %w", err)
	}
	cert, err := directory.NewRecord(netID, &directory.Revocation{Key: d.me().Public(), Reason: "key lost or compromised", Issued: time.Now().Unix()}, d.me())
	if err != nil {
		return err
	}
	// In the clear, the certificate let whoever seized the device revoke
	// its key (and the organization's standing) without the passphrase.
	sealedCert, err := directory.EncryptWithPassphrase(cert.Encode(), d.opts.Passphrase, d.opts.WorkFactor)
	if err != nil {
		return fmt.Errorf("encrypt the revocation certificate: %w", err)
	}
	if err := directory.WriteFileAtomic(d.home.RevocationPath(), sealedCert, 0o600); err != nil {
		return err
	}
	if err := d.home.SaveConfig(&cfg); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg = &cfg
	d.mu.Unlock()
	return d.startNode(ctx)
}

// Publish signs and publishes an entry of this organization, creating it
// or replacing the current version.
func (d *Daemon) Publish(ctx context.Context, req api.PublishRequest) (api.Entry, error) {
	n, err := d.joined()
	if err != nil {
		return api.Entry{}, err
	}
	st := n.State()
	if !d.isMember(st) {
		return api.Entry{}, userErrorf("only an admitted member organization can publish; this node is %s", d.role(st))
	}
	if err := directory.CheckService(req.Service); err != nil {
		return api.Entry{}, userErrorf("entry is not valid: %v", err)
	}
	days := req.ExpiresInDays
	if days == 0 {
		days = 90
	}
	if days < 1 || days > 180 {
		return api.Entry{}, userErrorf("expires_in_days must be between 1 and 180")
	}
	now := time.Now()
	e := &directory.Entry{ID: req.ID, Seq: 1, Issued: now.Unix(), Expires: now.Add(time.Duration(days) * 24 * time.Hour).Unix(), Service: req.Service}
	if cur, ok := st.Lookup(entryKey(d.me().Public(), req.ID)); ok {
		// A version that expired sooner than the one it replaces would
		// let that one come back once it expired (see
		// directory.SupersedingExpiry).
		e.Seq = cur.Entry.Seq + 1
		e.Expires = directory.SupersedingExpiry(cur.Entry, now, e.Expires, d.policy(st))
	}
	return d.publishEntry(ctx, n, e)
}

// Remove publishes a tombstone for one of this organization's entries.
func (d *Daemon) Remove(ctx context.Context, id string) (api.Entry, error) {
	n, err := d.joined()
	if err != nil {
		return api.Entry{}, err
	}
	st := n.State()
	cur, ok := st.Lookup(entryKey(d.me().Public(), id))
	if !ok || cur.Entry.Deleted {
		return api.Entry{}, userErrorf("this organization has no entry %q (see \"ceiba entry ls\")", id)
	}
	// The tombstone must outlive every version it supersedes, not just
	// the current one, or an older one comes back from a peer that kept
	// it once the tombstone expires (found in review, session 40).
	return d.publishEntry(ctx, n, directory.Tombstone(cur.Entry, time.Now(), d.policy(st)))
}

// policy is the current charter's; a joined node has one.
func (d *Daemon) policy(st *directory.State) directory.Policy {
	if c := st.Charter(); c != nil {
		return c.Policy
	}
	return directory.Policy{}
}

func (d *Daemon) publishEntry(ctx context.Context, n *node.Node, e *directory.Entry) (api.Entry, error) {
	r, err := directory.NewRecord(n.State().Network(), e, d.me())
	if err != nil {
		return api.Entry{}, userErrorf("%v", err)
	}
	if _, err := n.Publish(ctx, r); err != nil {
		return api.Entry{}, err
	}
	st := n.State()
	l, _ := st.Lookup(entryKey(d.me().Public(), e.ID))
	return d.entryView(st, l, 0, d.stale(n, n.FreshAsOf())), nil
}

func entryKey(pub directory.PublicKey, id string) string { return "entry/" + pub.Hex() + "/" + id }

func (d *Daemon) nextSeq(st *directory.State, id string) uint64 {
	if l, ok := st.Lookup(entryKey(d.me().Public(), id)); ok {
		return l.Entry.Seq + 1
	}
	return 1
}

// entryView shows one listing; stale is the node's freshness verdict,
// computed once per request rather than once per entry.
func (d *Daemon) entryView(st *directory.State, l directory.Listing, score float64, stale bool) api.Entry {
	e := api.Entry{
		Key: l.Key, ID: l.Entry.ID, Seq: l.Entry.Seq, Org: l.Org,
		Publisher: directory.Fingerprint(l.Publisher), PublisherKey: l.Publisher.Hex(),
		Issued: time.Unix(l.Entry.Issued, 0).UTC(), Expires: time.Unix(l.Entry.Expires, 0).UTC(),
		Deleted: l.Entry.Deleted, Service: l.Entry.Service, Hash: l.Hash.String(), Score: score,
	}
	_, member := st.Member(l.Publisher)
	e.Revoked = st.IsRevoked(l.Publisher)
	e.Verified = member && !e.Revoked
	e.Expired = !time.Now().Before(e.Expires)
	e.Stale = stale
	return e
}

// Search runs a query over the local replica; it works offline.
func (d *Daemon) Search(q directory.Query) ([]api.Entry, error) {
	n, err := d.joined()
	if err != nil {
		return nil, err
	}
	st := n.State()
	stale := d.stale(n, n.FreshAsOf())
	out := []api.Entry{}
	for _, r := range st.Search(q) {
		if l, ok := st.ListingOf(r); ok {
			out = append(out, d.entryView(st, l, r.Score, stale))
		}
	}
	return out, nil
}

// Show returns one entry by key, or by ID when the ID is unique.
func (d *Daemon) Show(ref string) (api.Entry, error) {
	n, err := d.joined()
	if err != nil {
		return api.Entry{}, err
	}
	st := n.State()
	stale := d.stale(n, n.FreshAsOf())
	if l, ok := st.Lookup(ref); ok {
		return d.entryView(st, l, 0, stale), nil
	}
	found := st.FindEntries(directory.PublicKey{}, func(id string, h directory.Hash) bool {
		return id == ref || len(ref) >= 8 && strings.HasPrefix(h.String(), ref)
	})
	switch len(found) {
	case 0:
		return api.Entry{}, userErrorf("no entry %q in the local copy (try \"ceiba search\")", ref)
	case 1:
		return d.entryView(st, found[0], 0, stale), nil
	}
	return api.Entry{}, userErrorf("%d entries are called %q; use the key from \"ceiba search --json\"", len(found), ref)
}

// Mine lists this organization's entries, including deleted ones.
func (d *Daemon) Mine() ([]api.Entry, error) {
	n, err := d.joined()
	if err != nil {
		return nil, err
	}
	st := n.State()
	stale := d.stale(n, n.FreshAsOf())
	out := []api.Entry{}
	for _, l := range st.Entries(d.me().Public()) {
		out = append(out, d.entryView(st, l, 0, stale))
	}
	return out, nil
}

// resolveKey finds the public key a person means: a full hex key, or a
// fingerprint of a steward, member or reader this node knows.
func resolveKey(st *directory.State, ref string) (directory.PublicKey, error) {
	if k, err := directory.ParsePublicKeyHex(ref); err == nil {
		return k, nil
	}
	fp, err := directory.NormalizeFingerprint(ref)
	if err != nil {
		return directory.PublicKey{}, userErrorf("%q is neither a key nor a fingerprint: %v", ref, err)
	}
	var known []directory.PublicKey
	if c := st.Charter(); c != nil {
		known = append(known, c.StewardKeys()...)
	}
	for _, m := range st.Members() {
		known = append(known, m.Key)
	}
	for k := range st.Readers() {
		known = append(known, k)
	}
	for _, p := range st.Proposals() {
		if m, ok := p.Body.(*directory.Membership); ok {
			known = append(known, m.Org)
		}
	}
	for _, k := range known {
		if directory.Fingerprint(k) == fp {
			return k, nil
		}
	}
	return directory.PublicKey{}, userErrorf("no steward, member or reader with fingerprint %s is known to this node", fp)
}

func parseKeyDoc(doc api.PublicKeyDoc) (directory.Recipient, error) {
	k, err := directory.ParsePublicKeyHex(doc.Key)
	if err != nil {
		return directory.Recipient{}, userErrorf("public key file: %v", err)
	}
	if len(doc.KEM) != directory.KEMPublicKeySize {
		return directory.Recipient{}, userErrorf("public key file for %s has no valid encryption key", directory.Fingerprint(k))
	}
	if doc.Fingerprint != "" && doc.Fingerprint != directory.Fingerprint(k) {
		return directory.Recipient{}, userErrorf("public key file: fingerprint %s does not match its key", doc.Fingerprint)
	}
	if !directory.VerifyKEMBinding(k, doc.KEM, doc.KEMSig) {
		return directory.Recipient{}, userErrorf("public key file for %s: its encryption key is not signed by its key (export it again with this version of ceiba)", directory.Fingerprint(k))
	}
	return directory.Recipient{Key: k, KEM: doc.KEM, KEMSig: doc.KEMSig}, nil
}

// PublicKeyDoc is this node's shareable public key file.
func (d *Daemon) PublicKeyDoc() api.PublicKeyDoc {
	return PublicKeyDocOf(d.me(), d.cfg.Name)
}

// PublicKeyDocOf builds a public key file for an identity.
func PublicKeyDocOf(id *directory.Identity, name string) api.PublicKeyDoc {
	return api.PublicKeyDoc{Name: name, Key: id.Public().Hex(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Fingerprint: id.Fingerprint()}
}

// Propose creates a steward proposal signed by this steward.
func (d *Daemon) Propose(ctx context.Context, req api.ProposeRequest) (api.Proposal, error) {
	n, err := d.joined()
	if err != nil {
		return api.Proposal{}, err
	}
	st := n.State()
	c := st.Charter()
	if c == nil {
		return api.Proposal{}, userErrorf("the charter has not reached this node yet; wait for sync")
	}
	me := d.me()
	if !d.isSteward(st) {
		return api.Proposal{}, userErrorf("only a steward can propose; this node is %s", d.role(st))
	}
	now := time.Now()
	var body directory.Body
	switch req.Kind {
	case "admit":
		if req.Member == nil {
			return api.Proposal{}, userErrorf("admit needs the organization's public key file (--keyfile)")
		}
		rc, err := parseKeyDoc(*req.Member)
		if err != nil {
			return api.Proposal{}, err
		}
		name := strings.TrimSpace(req.Member.Name)
		if name == "" {
			return api.Proposal{}, userErrorf("admit needs the organization's name (--name)")
		}
		body = &directory.Membership{Charter: c.Version, Org: rc.Key, KEM: rc.KEM, KEMSig: rc.KEMSig, Name: name, Issued: now.Unix()}
	case "revoke":
		k, err := resolveKey(st, req.Key)
		if err != nil {
			return api.Proposal{}, err
		}
		if st.IsRevoked(k) {
			return api.Proposal{}, userErrorf("%s is already revoked", directory.Fingerprint(k))
		}
		body = &directory.Revocation{Key: k, Charter: c.Version, Reason: req.Reason, Issued: now.Unix()}
	case "charter":
		stewards := slices.Clone(c.Stewards)
		for _, ref := range req.Remove {
			k, err := resolveKey(st, ref)
			if err != nil {
				return api.Proposal{}, err
			}
			stewards = slices.DeleteFunc(stewards, func(s directory.Steward) bool { return s.Key == k })
		}
		for _, doc := range req.Add {
			rc, err := parseKeyDoc(doc)
			if err != nil {
				return api.Proposal{}, err
			}
			stewards = append(stewards, directory.Steward{Key: rc.Key, KEM: rc.KEM, KEMSig: rc.KEMSig, Name: doc.Name})
		}
		threshold := req.Threshold
		if threshold == 0 {
			threshold = int(c.Threshold)
		}
		policy := c.Policy
		if req.MaxAuthorUpdatesPerHour != 0 {
			policy.MaxAuthorUpdatesPerHour = req.MaxAuthorUpdatesPerHour
		}
		if req.MaxAuthorEntries != 0 {
			policy.MaxAuthorEntries = req.MaxAuthorEntries
		}
		if req.MaxAuthorBytes != 0 {
			policy.MaxAuthorBytes = req.MaxAuthorBytes
		}
		amended, err := directory.Amend(c, st.CharterID(), stewards, threshold, policy, now)
		if err != nil {
			return api.Proposal{}, userErrorf("%v", err)
		}
		body = amended
	case "epoch":
		return d.rotate(ctx, n, directory.Hash{})
	default:
		return api.Proposal{}, userErrorf("unknown proposal %q: use admit, revoke or charter", req.Kind)
	}
	r, err := directory.NewRecord(st.Network(), body, me)
	if err != nil {
		return api.Proposal{}, userErrorf("%v", err)
	}
	if _, err := n.Publish(ctx, r); err != nil {
		return api.Proposal{}, err
	}
	p, _ := st.Proposal(r.ProposalID())
	return d.proposalView(p), nil
}

// Approve adds this steward's approval to a pending proposal.
func (d *Daemon) Approve(ctx context.Context, ref string) (api.Proposal, error) {
	n, err := d.joined()
	if err != nil {
		return api.Proposal{}, err
	}
	st := n.State()
	p, err := findProposal(st, ref)
	if err != nil {
		return api.Proposal{}, err
	}
	if slices.Contains(p.Approvers, d.me().Public()) {
		return api.Proposal{}, userErrorf("you already approved %s", p.ID.Short())
	}
	r, err := directory.NewApproval(&directory.Record{Version: directory.FormatVersion, Type: p.Type, Network: st.Network(), Body: p.Raw}, d.me())
	if err != nil {
		return api.Proposal{}, err
	}
	if _, err := n.Publish(ctx, r); err != nil {
		return api.Proposal{}, err
	}
	p, _ = st.Proposal(p.ID)
	return d.proposalView(p), nil
}

// minProposalRef is how many hex characters of a proposal ID an approval
// must name: 128 bits. With a few, someone who can get a proposal into
// the network grinds one whose ID starts like the one a steward means to
// approve (24 bits took seconds), and the steward signs the wrong thing.
const minProposalRef = 32

func findProposal(st *directory.State, ref string) (directory.Proposal, error) {
	ref = strings.ToLower(strings.TrimSpace(ref))
	if strings.Trim(ref, "0123456789abcdef") != "" {
		return directory.Proposal{}, userErrorf("a proposal ID is hexadecimal; %q is not (see \"ceiba steward proposals\")", ref)
	}
	if len(ref) < minProposalRef || len(ref) > 2*len(directory.Hash{}) {
		return directory.Proposal{}, userErrorf("give the whole proposal ID, or at least its first %d characters (this was %d; see \"ceiba steward proposals\")", minProposalRef, len(ref))
	}
	var found []directory.Proposal
	for _, p := range st.Proposals() {
		if strings.HasPrefix(p.ID.String(), ref) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return directory.Proposal{}, userErrorf("no proposal %s is known to this node (see \"ceiba steward proposals\")", ref)
	case 1:
		return found[0], nil
	}
	return directory.Proposal{}, userErrorf("%d proposals start with %s; give more characters", len(found), ref)
}

// Proposals lists proposals, pending first.
func (d *Daemon) Proposals() ([]api.Proposal, error) {
	n, err := d.joined()
	if err != nil {
		return nil, err
	}
	out := []api.Proposal{}
	for _, p := range n.State().Proposals() {
		out = append(out, d.proposalView(p))
	}
	return out, nil
}

func (d *Daemon) proposalView(p directory.Proposal) api.Proposal {
	v := api.Proposal{ID: p.ID.String(), Threshold: p.Threshold, Effective: p.Effective, Approvals: []string{}}
	for _, k := range p.Approvers {
		v.Approvals = append(v.Approvals, directory.Fingerprint(k))
		v.Mine = v.Mine || k == d.me().Public()
	}
	for _, k := range p.Uncounted {
		v.Uncounted = append(v.Uncounted, directory.Fingerprint(k))
	}
	switch b := p.Body.(type) {
	case *directory.Charter:
		v.Kind = "charter"
		v.Summary = fmt.Sprintf("charter version %d: %d stewards, %d needed to approve", b.Version, len(b.Stewards), b.Threshold)
	case *directory.Membership:
		v.Kind = "admit"
		v.Summary = fmt.Sprintf("admit %q (%s)", b.Name, directory.Fingerprint(b.Org))
	case *directory.Revocation:
		v.Kind = "revoke"
		v.Summary = fmt.Sprintf("revoke %s", directory.Fingerprint(b.Key))
		if b.Reason != "" {
			v.Summary += ": " + b.Reason
		}
	case *directory.Epoch:
		v.Kind = "epoch"
		// The number of recipients is hidden by padding (PROTOCOL.md §5).
		v.Summary = fmt.Sprintf("read key epoch %d, sealed in %d pages", b.Number, len(b.PageHashes))
	}
	return v
}

// RevokeSelf publishes this key's own revocation.
func (d *Daemon) RevokeSelf(ctx context.Context) error {
	n, err := d.joined()
	if err != nil {
		return err
	}
	r, err := directory.NewRecord(n.State().Network(), &directory.Revocation{Key: d.me().Public(), Reason: "revoked by its holder", Issued: time.Now().Unix()}, d.me())
	if err != nil {
		return err
	}
	_, err = n.Publish(ctx, r)
	return err
}

// SubmitCertificate publishes a revocation certificate written at join
// time, for a key whose holder lost it.
func (d *Daemon) SubmitCertificate(ctx context.Context, cert []byte) error {
	n, err := d.joined()
	if err != nil {
		return err
	}
	if directory.PassphraseEncrypted(cert) {
		return userErrorf("this revocation certificate is still encrypted: submit it with \"ceiba revoke --cert FILE\", which asks for its passphrase")
	}
	r, err := directory.DecodeRecord(cert)
	if err != nil {
		return userErrorf("not a revocation certificate: %v", err)
	}
	body, _ := r.DecodeBody()
	rv, ok := body.(*directory.Revocation)
	if !ok || len(r.Sigs) != 1 || r.Sigs[0].Key != rv.Key {
		return userErrorf("not a revocation certificate: it must be a key's revocation of itself")
	}
	if r.Network != n.State().Network() {
		return userErrorf("this certificate is for another network")
	}
	_, err = n.Publish(ctx, r)
	return err
}

// Rotate makes a new read key and seals it to every remaining member,
// reader and steward.
func (d *Daemon) Rotate(ctx context.Context) (api.Proposal, error) {
	n, err := d.joined()
	if err != nil {
		return api.Proposal{}, err
	}
	return d.rotate(ctx, n, directory.Hash{})
}

func (d *Daemon) rotate(ctx context.Context, n *node.Node, after directory.Hash) (api.Proposal, error) {
	st := n.State()
	if !d.isSteward(st) {
		return api.Proposal{}, userErrorf("only a steward can rotate the read key; this node is %s", d.role(st))
	}
	r, err := n.Rotate(ctx, after)
	if err != nil {
		return api.Proposal{}, err
	}
	p, _ := st.Proposal(r.ProposalID())
	return d.proposalView(p), nil
}
