// GossipSub in the web app (PROTOCOL.md §7, topics): while the page is open
// and connected to its node, the phone listens on the topics a Go node
// holding the same keys is on, so a new record reaches it within about a
// second instead of at the next sync. The core names the topics
// (ceibaCore.topics, directory.TopicName) and judges and applies every
// message (ceibaCore.gossip), as it does a synced record; this file only
// configures GossipSub to speak as the Go node does and moves the bytes.
//
// The phone publishes nothing and, connected to one node only, forwards
// nothing: a message's one peer is the node it came from, to which
// GossipSub never sends a message back. It is a leaf.
import { gossipsub, StrictNoSign, TopicValidatorResult } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';

// The Go node's GossipSub protocols (node/limited.go gossipProtocolIDs)
// that js-libp2p speaks; no FloodSub, which Ceiba nodes do not speak.
const PROTOCOLS = ['/meshsub/1.2.0', '/meshsub/1.1.0', '/meshsub/1.0.0'];
// directory.MaxSealedBytes + 16 KiB: the Go node's limit on one RPC
// (pubsub.WithMaxMessageSize in node/gossip.go).
const MAX_RPC = 278_585 + (16 << 10);

// messageID is the Go node's (node/gossip.go messageID): the SHA-256 of the
// message's data, so the same sealed bytes from any author are one message
// and IHAVE, IWANT and IDONTWANT name messages as the node does.
async function messageID(msg) {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', msg.data));
}

// gossipServices are the libp2p services to put in createLibp2p's
// services: GossipSub, and identify, through which the node learns that
// the phone speaks GossipSub (a Go node opens its GossipSub stream to a
// peer only once identify said so) and the phone that the node does.
// Identify runs on the admitted connection only (the node holds every
// stream until the admission is done) and says little: the phone's
// protocols, no listening address, and USER_AGENT instead of the
// browser's own user agent, which js-libp2p would send by default
// (gossipNodeInfo).
export function gossipServices() {
  return { identify: identify(), pubsub: gossipService() };
}

// USER_AGENT is what identify tells the node this peer runs: the same for
// every phone, as a Go node reports only "github.com/libp2p/go-libp2p".
const USER_AGENT = 'js-libp2p';
export const gossipNodeInfo = { userAgent: USER_AGENT };

function gossipService() {
  return gossipsub({
    protocols: PROTOCOLS,
    fallbackToFloodsub: false,
    // No author, sequence number or signature (node/gossip.go: the
    // record's own signature, inside the seal, says who wrote it). The
    // node sends only such messages, and refuses any other.
    globalSignaturePolicy: StrictNoSign,
    msgIdFn: messageID,
    // Peer exchange off, as on the node, whose PRUNEs name no other peer;
    // and were one to name some, this phone dials none of them (a score
    // no peer reaches): it talks to the node it joined through only.
    doPX: false,
    scoreThresholds: { acceptPXThreshold: Number.MAX_SAFE_INTEGER },
    // A leaf: it never publishes, and forwards only what it validated,
    // to no one but the node (which sent it).
    floodPublish: false,
    canRelayMessage: false,
    emitSelf: false,
    maxInboundDataLength: MAX_RPC,
    // A validator takes the core as long as opening a rotation's key
    // takes: the node should not be scored down for that.
    gossipsubIWantFollowupMs: 10_000,
  });
}

// Gossip keeps the phone's subscriptions equal to the core's topics and
// hands every message to the core. onRecord(result, topic) is called for
// every message the core accepted, onBehind(result, topic) for every one
// it kept until its key or the governance it needs arrives, or after which
// the view knows a rotation it lacks pages and the key of, and when the
// node joins topics the phone cannot name: a rotation reaches readers
// partly or wholly by sync (a node forwards a page no further once it has
// opened the new key with it), so the page asks its node then.
export class Gossip {
  constructor(pubsub, core, onRecord, onBehind) {
    this.pubsub = pubsub;
    this.core = core;
    this.onRecord = onRecord;
    this.onBehind = onBehind;
    this.topics = new Set();
    // The node joins a new key's topics when it opens the key. Whether a
    // rotation's records reach the phone by gossip depends on the order
    // they reached the node (it forwards a page sealed under the older key
    // only until it opens the new key), so a node announcing a topic the
    // phone cannot name is the sign it missed one: it asks by sync.
    this.onSubscription = (evt) => {
      if (evt.detail.subscriptions.some((s) => s.subscribe && !this.topics.has(s.topic))) this.onBehind({});
    };
    pubsub.addEventListener('subscription-change', this.onSubscription);
  }

  // follow subscribes to the topics the core names now and leaves the
  // others (a rotation moves the network to new topics). It returns
  // whether anything changed.
  follow() {
    const answer = this.core.topics();
    if (answer.error) throw new Error(answer.error);
    const want = new Set(JSON.parse(answer.topics ?? 'null')?.map((t) => t.name) ?? []);
    let changed = false;
    for (const name of this.topics) {
      if (want.has(name)) continue;
      this.pubsub.unsubscribe(name);
      this.pubsub.topicValidators.delete(name);
      this.topics.delete(name);
      changed = true;
    }
    for (const name of want) {
      if (this.topics.has(name)) continue;
      this.pubsub.topicValidators.set(name, (peer, msg) => this.validate(name, msg));
      this.pubsub.subscribe(name);
      this.topics.add(name);
      changed = true;
    }
    return changed;
  }

  // validate is every topic's validator: the core opens, checks and
  // applies the record, and its verdict is the answer. A message the core
  // rejects costs its sender its score with this phone, as on a node.
  validate(topic, msg) {
    const r = this.core.gossip(topic, msg.data);
    if (r.error) return TopicValidatorResult.Ignore;
    if (r.waiting || r.awaitsPages) this.onBehind(r, topic);
    if (r.verdict === 'accept') {
      this.onRecord(r, topic);
      return TopicValidatorResult.Accept;
    }
    return r.verdict === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore;
  }

  stop() {
    this.pubsub.removeEventListener('subscription-change', this.onSubscription);
    for (const name of this.topics) this.pubsub.topicValidators.delete(name);
    this.topics.clear();
  }
}
