package daemon

import (
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// heartbeatCheck is how often a steward's daemon looks whether its
// heartbeat is due: often enough that a node that just became a steward,
// or came back from sleep, beats within a minute.
const heartbeatCheck = time.Minute

// heartbeatTiming is the interval between a steward's heartbeats and how
// long each is valid: three intervals, so one or two lost beats do not
// make the network look stale, within the protocol's bounds.
func (d *Daemon) heartbeatTiming() (interval, validity time.Duration) {
	interval = d.opts.HeartbeatInterval
	if interval <= 0 {
		interval = directory.DefaultHeartbeatInterval
	}
	validity = min(max(3*interval, directory.MinHeartbeatValidity), directory.MaxHeartbeatValidity)
	return interval, validity
}

// heartbeats publishes this node's heartbeat while its key is an unrevoked
// steward of the current charter: at once, then every interval. Every node
// shows its copy as stale once the newest heartbeat it holds has expired
// (Daemon.stale), which is how an eclipse by peers that answer but
// withhold news shows.
//
// It also looks when governance changes, so a node that starts before its
// genesis arrives (a new network), or that has just been made a steward,
// beats at once rather than a minute later.
func (d *Daemon) heartbeats(n *node.Node) {
	interval, validity := d.heartbeatTiming()
	tick := time.NewTicker(min(interval, heartbeatCheck))
	defer tick.Stop()
	events, cancel := n.Subscribe()
	defer cancel()
	for due := true; ; {
		if due {
			d.beatIfDue(n, interval, validity)
		}
		select {
		case <-d.ctx.Done():
			return
		case <-tick.C:
			due = true
		case ev, ok := <-events:
			if !ok {
				return
			}
			due = ev.Kind == node.EventLagged || ev.Kind == node.EventRecord && ev.Changed &&
				ev.Type != directory.TypeEntry && ev.Type != directory.TypeReader
		}
	}
}

func (d *Daemon) beatIfDue(n *node.Node, interval, validity time.Duration) {
	st := n.State()
	if !d.isSteward(st) {
		return
	}
	me := d.me().Public()
	for _, hb := range st.Heartbeats() {
		if hb.Steward == me && time.Since(hb.Issued) < interval {
			return
		}
	}
	r, err := directory.NewHeartbeat(st, d.me(), validity)
	if err == nil {
		_, err = n.Publish(d.ctx, r)
	}
	if err != nil {
		d.log.Warn("steward heartbeat not published", "err", err)
	}
}
