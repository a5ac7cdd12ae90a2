package node

import "time"

// LowDataSyncInterval is the periodic sync interval of the lowdata profile
// (the daemon applies it). Measured idle, a node's periodic sync sessions
// are most of its traffic; on a metered link, news a few minutes later is
// the better trade. Gossip still delivers new records at once.
const LowDataSyncInterval = 5 * time.Minute
