// Package api is the local HTTP API's wire format and its client: the
// types the daemon serves as JSON and the CLI reads. It holds no logic of
// its own, so the CLI stays thin and the web UI reads the same shapes.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// TokenHeader carries the write token.
const TokenHeader = "X-Ceiba-Token"

// StoreRepair says what the node did with a damaged store at start.
type StoreRepair struct {
	At        time.Time `json:"at"`
	Damage    string    `json:"damage"`    // the damaged file and the reason
	KeptAt    string    `json:"kept_at"`   // the damaged copy, for forensics
	Recovered int       `json:"recovered"` // records read back from it; peers sent the rest
}

// Status is GET /v1/status.
type Status struct {
	Fingerprint  string   `json:"fingerprint"`
	Role         string   `json:"role"` // steward, member, reader, pending or none
	Joined       bool     `json:"joined"`
	Network      string   `json:"network,omitempty"`
	NetworkName  string   `json:"network_name,omitempty"`
	PeerID       string   `json:"peer_id,omitempty"`
	Addrs        []string `json:"addrs,omitempty"`
	Peers        int      `json:"peers"`
	Reachability string   `json:"reachability,omitempty"`
	Epoch        uint64   `json:"epoch"`
	KeyEpoch     uint64   `json:"key_epoch"` // newest read key this node holds
	// KeyMismatches lists epochs whose package for this node held another
	// key than the epoch commits to: its signers equivocated.
	KeyMismatches []uint64 `json:"key_mismatches,omitempty"`
	// StoreRepair is set when the node found its store damaged at start
	// and rebuilt it (docs/OPERATIONS.md, "A damaged store").
	StoreRepair *StoreRepair `json:"store_repair,omitempty"`
	// Rotation is how many of the current epoch's pages (its key packages,
	// PROTOCOL.md §4) this node holds: a rotation is in progress here
	// until it holds all of them.
	Rotation      *directory.Rotation `json:"rotation,omitempty"`
	LastSync      time.Time           `json:"last_sync,omitzero"`
	LastSyncPeers int                 `json:"last_sync_peers"`
	FreshAsOf     time.Time           `json:"fresh_as_of,omitzero"`
	Stale         bool                `json:"stale"`
	// HeartbeatStale: no steward's signed heartbeat is valid now, so news
	// from the stewards has stopped reaching this node even if peers
	// answer (an eclipse by insiders, or the stewards' nodes are down).
	// It makes Stale true. LastHeartbeat is when the newest heartbeat held
	// was issued, HeartbeatExpires when the last one expires.
	HeartbeatStale bool `json:"heartbeat_stale"`
	// BehindStewards: a valid steward heartbeat issued more than
	// directory.HeartbeatGrace ago reports a charter version
	// (BehindCharter), key epoch (BehindEpoch) or members' entries
	// (BehindMembers: how many members) this copy still lacks: peers pass
	// on the stewards' heartbeats but hold back what they report. It
	// makes Stale true.
	BehindStewards   bool            `json:"behind_stewards"`
	BehindCharter    uint64          `json:"behind_charter,omitempty"`
	BehindEpoch      uint64          `json:"behind_epoch,omitempty"`
	BehindMembers    int             `json:"behind_members,omitempty"`
	LastHeartbeat    time.Time       `json:"last_heartbeat,omitzero"`
	HeartbeatExpires time.Time       `json:"heartbeat_expires,omitzero"`
	Counts           directory.Stats `json:"counts"`

	// Reachability (above) is public, relay, unreachable or unknown;
	// ReachabilityWhy explains it and ReachabilityFix says what to do, in
	// plain words (empty when nothing needs doing).
	ReachabilityWhy string `json:"reachability_why,omitempty"`
	ReachabilityFix string `json:"reachability_fix,omitempty"`
	// ReachabilityReason is a stable code for the case of the verdict
	// (node.ReachReasons lists them), for interfaces that say it in the
	// person's language; ReachabilityN is the number its message counts
	// (relay addresses when relayed, configured relays when none has
	// granted a slot yet).
	ReachabilityReason string `json:"reachability_reason,omitempty"`
	ReachabilityN      int    `json:"reachability_n,omitempty"`
	// OffersRelay: this node relays for NATed peers now (a vps node, or a
	// steward found publicly reachable).
	OffersRelay bool `json:"offers_relay,omitempty"`

	// Traffic is what the node spent since it started, and its limits.
	Traffic *Traffic `json:"traffic,omitempty"`
	// DHTStore is what the node holds in the DHT for the network; absent
	// without a DHT.
	DHTStore *DHTStore `json:"dht_store,omitempty"`
	// HeldBack lists the organizations whose entry versions this node
	// held back under the charter's update rate since it started, most
	// first: how stewards see a member churning past its limit.
	HeldBack []HeldBack `json:"held_back,omitempty"`
}

// HeldBack is one organization's entry versions held back under the
// charter's update rate.
type HeldBack struct {
	Author string `json:"author"` // fingerprint
	Name   string `json:"name,omitempty"`
	Held   uint64 `json:"held"`
}

// DHTStore is the disk a node's DHT store uses, within its quotas.
type DHTStore struct {
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Pending counts records held from signers this node does not (yet)
	// know as admitted, in their small shared pool.
	Pending int `json:"pending"`
	// Refused counts the puts the storage policy refused since start.
	Refused int64 `json:"refused"`
	// Unserved counts the value requests answered with nothing since
	// start: the asker had drawn its byte budget.
	Unserved int64 `json:"unserved"`
	// Providers counts the provider records (the rendezvous) held for
	// others, and ProvidersRefused those refused for the bounds.
	Providers        int   `json:"providers"`
	ProvidersRefused int64 `json:"providers_refused"`
}

// Traffic is a node's data use: what a person on a metered link checks.
type Traffic struct {
	Profile  string `json:"profile"`
	DHT      string `json:"dht"` // server, client or off
	BytesIn  int64  `json:"bytes_in"`
	BytesOut int64  `json:"bytes_out"`
	// RecvCap and SendCap are bytes per second; 0 means no cap.
	RecvCap int64 `json:"recv_cap"`
	SendCap int64 `json:"send_cap"`
	// ThrottledIn and ThrottledOut are seconds streams waited under the
	// caps, summed over streams: how much the caps slowed the node.
	ThrottledIn  float64 `json:"throttled_in_seconds"`
	ThrottledOut float64 `json:"throttled_out_seconds"`
}

// Entry is one directory entry as the API shows it.
type Entry struct {
	Key          string             `json:"key"`
	ID           string             `json:"id"`
	Seq          uint64             `json:"seq"`
	Org          string             `json:"org,omitempty"`
	Publisher    string             `json:"publisher"` // fingerprint
	PublisherKey string             `json:"publisher_key"`
	Issued       time.Time          `json:"issued"`
	Expires      time.Time          `json:"expires"`
	Deleted      bool               `json:"deleted,omitempty"`
	Service      *directory.Service `json:"service,omitempty"`
	Hash         string             `json:"hash"`
	// Verification in plain terms: the signature checked out and the
	// publisher is an admitted member whose key is not revoked.
	Verified bool    `json:"verified"`
	Revoked  bool    `json:"revoked"`
	Expired  bool    `json:"expired"`
	Stale    bool    `json:"stale"`
	Score    float64 `json:"score,omitempty"`
}

// PublishRequest is POST /v1/entries.
type PublishRequest struct {
	ID      string             `json:"id"`
	Service *directory.Service `json:"service"`
	// Days until the entry expires; 0 means 90 days.
	ExpiresInDays int `json:"expires_in_days,omitempty"`
}

// NetworkRequest is POST /v1/network: create a network, or complete a
// multi-steward draft.
type NetworkRequest struct {
	Name      string         `json:"name,omitempty"`
	Threshold int            `json:"threshold,omitempty"`
	Stewards  []PublicKeyDoc `json:"stewards,omitempty"` // co-stewards besides this node
	Draft     []byte         `json:"draft,omitempty"`    // a fully approved draft
}

// NetworkResult is what creating a network returns.
type NetworkResult struct {
	Network string   `json:"network,omitempty"`
	Draft   []byte   `json:"draft,omitempty"` // set when co-stewards must still sign
	Missing []string `json:"missing,omitempty"`
	// JoinCodes lets each co-steward join once the network exists.
	JoinCodes map[string]string `json:"join_codes,omitempty"`
}

// PublicKeyDoc is a shareable public key file (ceiba key export).
type PublicKeyDoc struct {
	Name        string `json:"name,omitempty"`
	Key         string `json:"key"`
	KEM         []byte `json:"kem"`
	KEMSig      []byte `json:"kem_sig"` // the key's signature on its KEM key
	Fingerprint string `json:"fingerprint"`
}

// InviteRequest is POST /v1/invites.
type InviteRequest struct {
	Role    string        `json:"role"` // member or reader
	Expires time.Duration `json:"expires"`
}

// Invite is a created invite.
type Invite struct {
	Code    string    `json:"code"`
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
}

// AcceptRequest is POST /v1/invites/accept.
type AcceptRequest struct {
	Code string `json:"code"`
	Name string `json:"name,omitempty"`
}

// ProposeRequest is POST /v1/proposals.
type ProposeRequest struct {
	Kind      string         `json:"kind"` // admit, revoke, charter, epoch
	Key       string         `json:"key,omitempty"`
	Member    *PublicKeyDoc  `json:"member,omitempty"`
	Reason    string         `json:"reason,omitempty"`
	Threshold int            `json:"threshold,omitempty"`
	Add       []PublicKeyDoc `json:"add,omitempty"`
	Remove    []string       `json:"remove,omitempty"`
	// The charter's per-author limits (PROTOCOL.md §4); 0 keeps the
	// current value.
	MaxAuthorUpdatesPerHour uint32 `json:"max_author_updates_per_hour,omitempty"`
	MaxAuthorEntries        uint32 `json:"max_author_entries,omitempty"`
	MaxAuthorBytes          uint64 `json:"max_author_bytes,omitempty"`
}

// Proposal is a pending or effective steward proposal.
type Proposal struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Summary   string   `json:"summary"`
	Approvals []string `json:"approvals"`
	Threshold int      `json:"threshold"`
	Effective bool     `json:"effective"`
	Mine      bool     `json:"approved_by_me"`
	// Uncounted names (by fingerprint) the approvers of a revocation whose
	// signatures stopped counting because a revocation citing an earlier
	// charter version revoked them: the revocation does not take effect
	// until enough other stewards approve it (PROTOCOL.md §6 step 2).
	Uncounted []string `json:"uncounted,omitempty"`
}

// Peer is a connected peer.
type Peer struct {
	ID    string   `json:"id"`
	Addrs []string `json:"addrs"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Client talks to a daemon's local API.
type Client struct {
	Base  string // http://127.0.0.1:7447
	Token string
	HTTP  *http.Client
}

// ErrNoDaemon means nothing answers at the API address.
var ErrNoDaemon = errors.New("no Ceiba daemon is running for this home: start it with \"ceiba daemon\"")

// NeedsToken says whether the daemon requires the API token for a request:
// everything that changes the node, and the export, which hands out the
// whole directory. The daemon guards its routes by it, and the client
// sends the token on those requests only, so
// a local process that binds the API port while the daemon is down learns
// nothing from a status or a search.
func NeedsToken(method, path string) bool {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		return path == "/v1/export"
	}
	return true
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	contentType := "application/json"
	switch v := in.(type) {
	case nil:
	case []byte:
		// Bundles and certificates travel as they are.
		body, contentType = bytes.NewReader(v), "application/octet-stream"
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.Base, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.Token != "" && NeedsToken(method, path) {
		req.Header.Set(TokenHeader, c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Minute}
	}
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		var ue *url.Error
		if errors.As(err, &op) || (errors.As(err, &ue) && strings.Contains(err.Error(), "connection refused")) {
			return ErrNoDaemon
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("daemon answered %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}
