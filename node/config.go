package node

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/host"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/transport"
)

// Config says which network a node joins, where it keeps its data and how
// it reaches its peers. DataDir, Network and Keystore are required.
type Config struct {
	// DataDir holds the datastore and the host key. It is created (0700)
	// if missing.
	DataDir string
	// Listen lists multiaddrs to listen on; empty means the transport
	// package's defaults. It overrides Transport.Listen.
	Listen []string
	// Bootstrap lists multiaddrs of peers to join through, each ending in
	// /p2p/<peer ID>. The node keeps reconnecting to them, and the
	// connection manager never prunes them.
	Bootstrap []string
	// Network is the network to join: the hash of its genesis charter.
	Network directory.NetworkID
	// Keystore holds the node's identity and the read keys it has. The
	// node copies the keys at New and never modifies the Keystore; when it
	// adopts a new read key it calls SaveKeys with a new Keystore holding
	// the same identity and every key, which the caller must persist and
	// should adopt as its own copy.
	Keystore *directory.Keystore
	// SaveKeys persists a keystore after the node added a read key. Nil
	// means the caller does not persist keys (tests); the node then relies
	// on re-deriving them from the stored epoch records at the next start.
	SaveKeys func(*directory.Keystore) error
	// Now is the directory's clock: expiry, issue dates, the rendezvous
	// day. Nil means time.Now. Timers and status times use the wall clock.
	Now func() time.Time
	// SyncInterval is how often the node runs anti-entropy sync with a few
	// connected peers. Zero means DefaultSyncInterval.
	SyncInterval time.Duration
	// SyncFanout is how many peers each periodic sync round picks. Zero
	// means DefaultSyncFanout.
	SyncFanout int
	// SyncTimeout bounds one sync session. Zero means DefaultSyncTimeout.
	SyncTimeout time.Duration
	// SyncMaxRecords caps the records one session pulls; a node further
	// behind catches up over several sessions. Zero means
	// DefaultSyncMaxRecords, or fewer under a receive-rate cap (what fits
	// half of SyncTimeout at the cap).
	SyncMaxRecords int
	// ExpireInterval is how often expired entries are dropped from the
	// state and the store. Zero means DefaultExpireInterval.
	ExpireInterval time.Duration
	// Logger receives the node's logs; nil means slog.Default().
	Logger *slog.Logger
	// Transport tunes the libp2p host (limits, transports). Its Listen
	// and Protected fields are filled from Listen and Bootstrap.
	Transport transport.Config
	// DHT configures the DHT layer.
	DHT DHTConfig

	// Host, if set, is used instead of building one from Listen and
	// Transport: for in-process networks (mocknet) in tests, benchmarks and
	// the demo. The node does not close a host it did not build, and does
	// not run admission on it (AdmitProtocol): it cannot hold back the
	// streams of a host whose resource manager it did not make, so the
	// caller answers for who connects (a mock network is closed).
	Host host.Host
	// Datastore, if set, is used instead of the on-disk store in DataDir:
	// for in-process networks, where durability is not what is measured.
	// It must make a Put durable on Sync. The node does not close it.
	Datastore datastore.Batching
	// DisableSync stops the node from starting sync sessions (it still
	// serves peers). Only for tests and measurements of the other paths.
	DisableSync bool
}

// DHTConfig configures the node's DHT layer (package node/dhtstore).
type DHTConfig struct {
	// Disabled runs the node without a DHT: gossip and sync only.
	Disabled bool
	// ClientMode uses the DHT without serving it (unreachable nodes).
	ClientMode bool
	// Hidden keeps the node out of sight of other nodes' searches: it
	// never advertises the network's rendezvous, so only peers it dials
	// (or that already know its address) connect to it. Readers run
	// hidden, so that no reader can learn another's address. A hidden
	// node should also be a DHT client: a DHT server appears in every
	// other server's answers.
	Hidden bool
	// AllowPrivateAddrs keeps loopback and LAN addresses in the DHT: for
	// the demo, tests on 127.0.0.1 and single-LAN networks. Leave it off on
	// the internet.
	AllowPrivateAddrs bool
	// FetchInterval is how often the node walks the DHT for records it
	// lacks (a fallback for when no sync peer is reachable). Zero means
	// DefaultDHTFetchInterval.
	FetchInterval time.Duration
	// RepublishInterval is passed to dhtstore; zero keeps its default.
	RepublishInterval time.Duration
}

// typicalSealedRecord is a generous size of a sealed directory entry with
// its signature and padding: the sample entries of the tests seal to
// ~0.7 KiB (TestReceiveCapBoundsCatchUp logs it), entries with long
// descriptions in two languages to a few KiB.
const typicalSealedRecord = 2 << 10

// Mode names the DHT role: server, client or off.
func (c DHTConfig) Mode() string {
	switch {
	case c.Disabled:
		return "off"
	case c.ClientMode:
		return "client"
	}
	return "server"
}

// Defaults.
const (
	DefaultSyncInterval     = 30 * time.Second
	DefaultSyncFanout       = 4
	DefaultSyncTimeout      = 30 * time.Second
	DefaultSyncMaxRecords   = 1024
	DefaultExpireInterval   = 10 * time.Minute
	DefaultDHTFetchInterval = 10 * time.Minute
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Network == (directory.NetworkID{}) {
		return cfg, errors.New("node: Config.Network is required")
	}
	if cfg.Keystore == nil || cfg.Keystore.Identity == nil {
		return cfg, errors.New("node: Config.Keystore with an identity is required")
	}
	if len(cfg.Keystore.Keys) == 0 {
		return cfg, errors.New("node: the keystore holds no read key; a node cannot open any record without one")
	}
	if cfg.DataDir == "" && (cfg.Host == nil || cfg.Datastore == nil) {
		return cfg, errors.New("node: Config.DataDir is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.SyncFanout <= 0 {
		cfg.SyncFanout = DefaultSyncFanout
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.SyncMaxRecords <= 0 {
		cfg.SyncMaxRecords = DefaultSyncMaxRecords
		rates, err := transport.RatesFor(cfg.Transport)
		if err != nil {
			return cfg, fmt.Errorf("node: %w", err)
		}
		if rates.Recv > 0 {
			// Under a receive cap a full session would outlast its
			// timeout. Sessions sized to half the timeout at the cap
			// finish, and leave room for gossip; the node runs them
			// back to back until it has caught up.
			fit := rates.Recv * int64(cfg.SyncTimeout/time.Second) / 2 / typicalSealedRecord
			cfg.SyncMaxRecords = int(min(max(fit, 16), DefaultSyncMaxRecords))
		}
	}
	if cfg.SyncMaxRecords > maxRecordsPerSession {
		return cfg, fmt.Errorf("node: SyncMaxRecords %d above the protocol limit %d", cfg.SyncMaxRecords, maxRecordsPerSession)
	}
	if cfg.ExpireInterval <= 0 {
		cfg.ExpireInterval = DefaultExpireInterval
	}
	if cfg.DHT.FetchInterval <= 0 {
		cfg.DHT.FetchInterval = DefaultDHTFetchInterval
	}
	return cfg, nil
}
