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
	}
}
