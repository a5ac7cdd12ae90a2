package daemon

import (
	"time"

	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/transport"
)

// syncInterval is the node's periodic sync interval: an explicit override
// (tests, CEIBA_SYNC_INTERVAL) wins, then the lowdata profile's, then the
// node's default.
func (c *Config) syncInterval(override time.Duration) time.Duration {
	if override > 0 || c.Profile != string(transport.ProfileLowData) {
		return override
	}
	return node.LowDataSyncInterval
}

// transportConfig turns config.toml's profile and [node] reachability
// settings into the host's transport configuration. Listen and Bootstrap
// travel through node.Config as before.
func (c *Config) transportConfig() transport.Config {
	return transport.Config{
		Profile:           transport.Profile(c.Profile),
		Relays:            c.Node.Relays,
		MDNS:              c.Node.MDNS,
		AllowPrivateDials: c.Node.AllowPrivateDials || c.Node.PrivateAddrs,
		WSSCert:           c.Node.WSSCert,
		WSSKey:            c.Node.WSSKey,
		ForceReachability: c.Node.Reachability,
		NoRelayService:    c.Node.OfferRelay != nil && !*c.Node.OfferRelay,
		SendRate:          rateSetting(c.Node.SendKiB),
		RecvRate:          rateSetting(c.Node.RecvKiB),
	}
}

// maxKiBPerSecond bounds the rate settings well above any link, so a
// typo cannot overflow the conversion to bytes.
const maxKiBPerSecond = 1 << 30

// rateSetting turns a KiB/s setting into transport's convention: absent
// (nil) takes the profile's cap, 0 lifts it (negative there).
func rateSetting(kib *int64) int64 {
	switch {
	case kib == nil:
		return 0
	case *kib == 0:
		return -1
	}
	return *kib << 10
}

// dhtConfig is the node's DHT role. A lowdata node uses the DHT without
// serving it: answering other nodes' lookups and storing their records
// would spend its data on them. It still reads and publishes through the
// servers (stewards' and vps nodes). A reader's node is a hidden client
// unless its operator opts in with dht = "server": a DHT server is listed
// in other servers' answers, and a rendezvous provider record names the
// node to anyone who asks, so either would hand its address to every
// other reader and to anyone who can reach one node.
func (c *Config) dhtConfig() node.DHTConfig {
	reader := c.Network.Role == "reader"
	mode := c.Node.DHT
	if mode == "" {
		mode = "server"
		if c.Profile == string(transport.ProfileLowData) || reader {
			mode = "client"
		}
	}
	return node.DHTConfig{
		Disabled:          mode == "off",
		ClientMode:        mode == "client",
		Hidden:            reader && mode != "server",
		AllowPrivateAddrs: c.Node.PrivateAddrs,
	}
}
