// Package daemon runs a Ceiba node for one person or organization: it owns
// the home directory (config, encrypted keystore, API token), starts the
// node, serves the local HTTP API on loopback, carries out invites and
// steward actions, and keeps the keystore in step with new read keys.
//
// It never decides whether a record is valid (package directory does) and
// never talks to the network except through package node.
package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/ceiba-network/ceiba/directory"
)

// Home is a node's directory on disk.
//
//	config.toml      settings (commented; safe to edit)
//	keys.age         identity and read keys, encrypted with the passphrase
//	api.token        the local API's write token (0600)
//	data/            the datastore and the libp2p host key
//	revocation.cert  a signed self-revocation, for when the key is lost,
//	                 encrypted with the passphrase: whoever seizes the
//	                 device cannot revoke its key without it
//	invites.cbor     pending invites this node issued
//
// and after `ceiba upgrade` from protocol version 1 (upgrade.go):
//
//	upgrade.age         what the upgrade kept, encrypted with the passphrase
//	keys.v1.age         the version-1 keystore (same identity, old read keys)
//	revocation.v1.cert  the version-1 revocation certificate
//	data/store.v1/      the version-1 store, unchanged
type Home struct{ Dir string }

func (h Home) path(name string) string { return filepath.Join(h.Dir, name) }

// ConfigPath, KeysPath, ... name the files of a home.
func (h Home) ConfigPath() string     { return h.path("config.toml") }
func (h Home) KeysPath() string       { return h.path("keys.age") }
func (h Home) TokenPath() string      { return h.path("api.token") }
func (h Home) DataDir() string        { return h.path("data") }
func (h Home) RevocationPath() string { return h.path("revocation.cert") }
func (h Home) InvitesPath() string    { return h.path("invites.cbor") }

// tightenSecrets makes the home 0700 and its secret files 0600 where
// other users of the machine could read them: a home restored by hand
// ("mkdir" under the usual umask, files copied from a backup or a FAT USB
// stick) is 0755 with 0644 files, and api.token lets any local process
// publish in the organization's name, export the directory and wipe the
// node. Each change is logged. A secret file that cannot be tightened is
// an error, as for data/host.key; a home directory that cannot be (not
// owned by the daemon's user) is only logged, its files being closed.
func (h Home) tightenSecrets(log *slog.Logger) error {
	if runtime.GOOS == "windows" {
		return nil // no Unix modes to tighten
	}
	for _, p := range []string{h.KeysPath(), h.TokenPath(), h.KeysV1Path(), h.UpgradePath(), h.RevocationPath(), h.RevocationV1Path()} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o077 == 0 {
			continue // absent, or closed already
		}
		if err := os.Chmod(p, 0o600); err != nil {
			return fmt.Errorf("%s is readable by other users (mode %v) and cannot be fixed: %w", p, fi.Mode().Perm(), err)
		}
		log.Warn("a secret file of the home was readable by other users; made it 0600", "file", p, "was", fi.Mode().Perm().String())
	}
	if fi, err := os.Stat(h.Dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(h.Dir, 0o700); err != nil {
			log.Warn("the home is open to other users and cannot be made 0700; its secret files are 0600", "home", h.Dir, "mode", fi.Mode().Perm().String(), "err", err)
		} else {
			log.Warn("the home was open to other users; made it 0700", "home", h.Dir, "was", fi.Mode().Perm().String())
		}
	}
	return nil
}

// Profiles tune limits for where a node runs.
var Profiles = []string{"laptop", "vps", "lowdata"}

// Config is config.toml.
type Config struct {
	Profile string        `toml:"profile"`
	Name    string        `toml:"name"`
	Network NetworkConfig `toml:"network"`
	Node    NodeConfig    `toml:"node"`
	API     APIConfig     `toml:"api"`
	Webapp  WebappConfig  `toml:"webapp,omitempty"`
}

// NetworkConfig names the network this node belongs to.
type NetworkConfig struct {
	ID string `toml:"id"`
	// Role is what this node joined as (steward, member or reader). It
	// decides defaults that must hold from the node's first start, before
	// the directory shows its admission: a reader is hidden.
	Role string `toml:"role,omitempty"`
}

// NodeConfig is the peer-to-peer side.
type NodeConfig struct {
	Listen    []string `toml:"listen"`
	Bootstrap []string `toml:"bootstrap"`
	// PrivateAddrs keeps loopback and LAN addresses in the DHT, for a
	// network that lives on one machine or one LAN.
	PrivateAddrs bool `toml:"private_addresses"`

	// Reachability and LAN settings; see transport.go in this package.
	Relays            []string `toml:"relays,omitempty"`
	MDNS              bool     `toml:"mdns,omitempty"`
	AllowPrivateDials bool     `toml:"allow_private_dials,omitempty"`
	WSSCert           string   `toml:"wss_cert,omitempty"`
	WSSKey            string   `toml:"wss_key,omitempty"`
	// Reachability "public" or "private" skips AutoNAT's probing.
	Reachability string `toml:"reachability,omitempty"`

	// DHT is "server", "client" or "off"; empty takes the default (client
	// for readers and the lowdata profile, server otherwise). A reader
	// that sets "server" also announces itself. See transport.go.
	DHT string `toml:"dht,omitempty"`
	// SendKiB and RecvKiB cap the node's traffic in KiB per second;
	// absent takes the profile's caps (lowdata has some), 0 lifts them.
	SendKiB *int64 `toml:"send_kib_per_second,omitempty"`
	RecvKiB *int64 `toml:"recv_kib_per_second,omitempty"`
	// OfferRelay = false stops the relay a vps node, or a publicly
	// reachable steward's node, offers to peers behind NAT.
	OfferRelay *bool `toml:"offer_relay,omitempty"`
}

// APIConfig is the local HTTP API.
type APIConfig struct {
	Listen string `toml:"listen"`
	// Metrics serves Prometheus metrics at /metrics on the local API.
	Metrics bool `toml:"metrics,omitempty"`
}

// NetworkID parses the configured network ID; ok is false before the node
// has created or joined a network.
func (c *Config) NetworkID() (directory.NetworkID, bool, error) {
	var id directory.NetworkID
	if c.Network.ID == "" {
		return id, false, nil
	}
	b, err := hex.DecodeString(c.Network.ID)
	if err != nil || len(b) != len(id) {
		return id, false, fmt.Errorf("config: network.id must be %d hex characters", 2*len(id))
	}
	copy(id[:], b)
	return id, true, nil
}

// DefaultConfig returns the settings `ceiba init` writes for a profile.
func DefaultConfig(profile, name string, apiPort, p2pPort int) Config {
	host := "0.0.0.0"
	return Config{
		Profile: profile,
		Name:    name,
		Node: NodeConfig{Listen: []string{
			fmt.Sprintf("/ip4/%s/tcp/%d", host, p2pPort),
			fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", host, p2pPort),
			// WebTransport rides on QUIC: with a fixed port both share
			// one UDP socket (libp2p demultiplexes them), so it asks for
			// no extra firewall opening.
			fmt.Sprintf("/ip4/%s/udp/%d/quic-v1/webtransport", host, p2pPort),
			// WebRTC is how a browser without WebTransport (Safari,
			// some Android browsers) reaches the node; it shares the
			// same UDP port.
			fmt.Sprintf("/ip4/%s/udp/%d/webrtc-direct", host, p2pPort),
		}},
		API: APIConfig{Listen: fmt.Sprintf("127.0.0.1:%d", apiPort)},
	}
}

const configHeader = `# Ceiba node configuration. Edit it, then restart "ceiba daemon".
#
# profile: laptop (default), vps (a server with a public address; offers a
# relay) or lowdata (a metered connection: fewer peers, less background
# traffic).
# name: how this node's organization is called when it asks to join.
#
# [network] id is set by "ceiba network create" or "ceiba invite accept";
# do not edit it by hand.
#
# [node] listen: libp2p addresses to listen on; port 0 picks a free port.
# "ceiba init" writes TCP, QUIC (/udp/N/quic-v1), WebTransport
# (/udp/N/quic-v1/webtransport: HTTP/3 over QUIC, which a browser can dial)
# and WebRTC (/udp/N/webrtc-direct: what browsers without WebTransport, such
# as Safari, dial); QUIC, WebTransport and WebRTC share one UDP port unless
# it is 0.
# [node] bootstrap: peers to connect to at start (multiaddrs ending in /p2p/ID);
# invites fill this in.
# [node] private_addresses: true only for a network on one machine or one LAN
# (a community centre's Wi-Fi); it lets the DHT use loopback and LAN addresses.
# [node] relays: relays (multiaddrs ending in /p2p/ID) a node behind NAT reserves
# a slot on, so peers can reach it; the charter's relays are added to these.
# [node] mdns = true finds peers on the local network (announces this node there).
# [node] allow_private_dials = true lets a vps node dial LAN and loopback addresses.
# [node] wss_cert, wss_key: PEM files for secure WebSocket listen addresses (/tls/ws).
# [node] reachability = "public" or "private" states what AutoNAT would find out
# (a server with a known public address; a node known to be behind NAT).
# [node] dht = "server", "client" or "off": whether this node answers other
# nodes' DHT lookups and stores their records (server), only uses the DHT
# (client), or keeps away from it (off: gossip and sync only). Absent: client
# for lowdata, server otherwise.
# [node] recv_kib_per_second, send_kib_per_second cap this node's traffic in
# KiB per second. Absent: the profile's caps (lowdata: 64 in, 32 out); 0: none.
# [node] offer_relay = false: do not relay for peers behind NAT (a vps node,
# and a steward's node that is publicly reachable, do by default).
#
# [api] listen: the local API and web UI. It must stay on 127.0.0.1 (or [::1]): anyone who
# can reach it can read the directory.
# [api] metrics = true serves Prometheus metrics at /metrics on that address.
#
# [webapp] serves the reader's web app for phones (docs/OPERATIONS.md):
# dir = a built app (make webapp's webapp/dist, or the release's webapp
# archive unpacked; the Debian package's is /usr/share/ceiba/webapp),
# listen = its own address (e.g. "0.0.0.0:8443"), never the API's; the app
# is at /app/. tls_cert, tls_key: PEM files for HTTPS, which phones need;
# without them, put a TLS proxy in front.

`

// LoadConfig reads config.toml, refusing unknown keys so a typo is an error
// rather than a silently ignored setting.
func (h Home) LoadConfig() (*Config, error) {
	var c Config
	md, err := toml.DecodeFile(h.ConfigPath(), &c)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no Ceiba home at %s: run \"ceiba init\" first", h.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", h.ConfigPath(), err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config %s: unknown setting %q", h.ConfigPath(), und[0].String())
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", h.ConfigPath(), err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	known := false
	for _, p := range Profiles {
		known = known || p == c.Profile
	}
	if !known {
		return fmt.Errorf("profile %q is not one of %s", c.Profile, strings.Join(Profiles, ", "))
	}
	if _, _, err := c.NetworkID(); err != nil {
		return err
	}
	if r := c.Node.Reachability; r != "" && r != "public" && r != "private" {
		return fmt.Errorf("node.reachability %q must be \"public\", \"private\" or absent", r)
	}
	switch c.Node.DHT {
	case "", "server", "client", "off":
	default:
		return fmt.Errorf("node.dht %q must be \"server\", \"client\", \"off\" or absent", c.Node.DHT)
	}
	for name, v := range map[string]*int64{"send_kib_per_second": c.Node.SendKiB, "recv_kib_per_second": c.Node.RecvKiB} {
		if v != nil && (*v < 0 || *v > maxKiBPerSecond) {
			return fmt.Errorf("node.%s = %d must be between 0 (no cap) and %d", name, *v, maxKiBPerSecond)
		}
	}
	// SplitHostPort, not a cut at the first colon, which refused [::1]:port.
	host, _, err := net.SplitHostPort(c.API.Listen)
	if err != nil {
		return fmt.Errorf("api.listen %q is not a host:port address: %w", c.API.Listen, err)
	}
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return fmt.Errorf("api.listen %q must be on the loopback address 127.0.0.1 or [::1]: anyone who reaches the API reads the directory", c.API.Listen)
	}
	return c.Webapp.validate(c.API.Listen)
}

// SaveConfig writes config.toml atomically, with its explanatory header.
func (h Home) SaveConfig(c *Config) error {
	var sb strings.Builder
	sb.WriteString(configHeader)
	if err := toml.NewEncoder(&sb).Encode(c); err != nil {
		return err
	}
	return directory.WriteFileAtomic(h.ConfigPath(), []byte(sb.String()), 0o600)
}

// Token returns the API write token.
func (h Home) Token() (string, error) {
	b, err := os.ReadFile(h.TokenPath())
	if err != nil {
		return "", fmt.Errorf("read API token: %w (is %s a Ceiba home?)", err, h.Dir)
	}
	return strings.TrimSpace(string(b)), nil
}

// InitOptions are the choices of `ceiba init`.
type InitOptions struct {
	Profile    string
	Name       string
	Passphrase string
	APIPort    int // 0 lets the system pick (tests); the CLI defaults to 7447
	P2PPort    int // 0 picks a free port at every start; the CLI defaults to 4747
	WorkFactor int // scrypt log2(N); 0 is the default
	// Local listens on 127.0.0.1 only and lets the DHT use loopback
	// addresses: for trying Ceiba on one machine, demos and tests.
	Local bool
}

// Init creates a new home: keys, config, token, data directory. It refuses
// to touch a directory that already holds keys.
func Init(h Home, o InitOptions) (*directory.Identity, error) {
	if o.Profile == "" {
		o.Profile = "laptop"
	}
	cfg := DefaultConfig(o.Profile, o.Name, o.APIPort, o.P2PPort)
	if o.Local {
		for i, a := range cfg.Node.Listen {
			cfg.Node.Listen[i] = strings.Replace(a, "/ip4/0.0.0.0/", "/ip4/127.0.0.1/", 1)
		}
		cfg.Node.PrivateAddrs = true
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := directory.CheckNewPassphrase(o.Passphrase); err != nil {
		return nil, err
	}
	if _, err := os.Stat(h.KeysPath()); err == nil {
		return nil, fmt.Errorf("%s already holds keys; use another --home, or \"ceiba wipe\" first", h.Dir)
	}
	if err := os.MkdirAll(h.DataDir(), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(h.Dir, 0o700); err != nil {
		return nil, err
	}
	id, err := directory.NewIdentity()
	if err != nil {
		return nil, err
	}
	ks := &directory.Keystore{Identity: id, Keys: directory.Keyring{}}
	if err := directory.SaveKeystore(h.KeysPath(), ks, o.Passphrase, o.WorkFactor); err != nil {
		return nil, err
	}
	tok := make([]byte, 32)
	rand.Read(tok)
	if err := directory.WriteFileAtomic(h.TokenPath(), []byte(hex.EncodeToString(tok)+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := h.SaveConfig(&cfg); err != nil {
		return nil, err
	}
	return id, nil
}
