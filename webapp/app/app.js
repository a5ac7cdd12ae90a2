// The reader's web app (issue 16): a phone joins a Ceiba network as its own
// peer. The person pastes an invite code and chooses a passphrase; the
// reader key is made inside the core (WebAssembly, webapp/core) and never
// leaves it; js-libp2p over WebTransport (or WebRTC, in a browser without
// WebTransport) carries the invite, the admission and a sync with the
// inviting node; the core opens and checks every record
// and searches. Once joined, the phone keeps the keystore and the records,
// both sealed, in IndexedDB (store.js), and a service worker keeps the
// app's files (sw.js): after a reload, with no node reachable, the
// passphrase opens the directory again and search works offline. While
// the page is open and connected it listens on the network's GossipSub
// topics (src/gossip.js), so a record published anywhere reaches it within
// about a second, and it syncs again with the node it joined through
// (every RESYNC_MS, and when the network comes back) for what gossip
// missed; the node's addresses are kept inside the encrypted keystore, so
// a reload syncs too, over WebRTC when the WebTransport address it joined
// over has gone stale. A node that proves the network and then
// refuses this reader's key has revoked it: the app says so and stops
// asking. The panic button erases all of it.
import { createLibp2p } from 'libp2p';
import { webTransport } from '@libp2p/webtransport';
import { webRTCDirect } from '@libp2p/webrtc';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { redeemInvite } from '../src/invite.js';
import { Admission } from '../src/admit.js';
import { syncWith } from '../src/sync.js';
import { gossipServices, gossipNodeInfo, Gossip } from '../src/gossip.js';
import { compareBytes } from '../src/bytes.js';
import { messages, pickLanguage } from './i18n.js';
import { load, save, eraseAll } from './store.js';
import { watchUpdates } from './update.js';
import { scanCamera } from './qr.js';

const $ = (id) => document.getElementById(id);
let lang = pickLanguage(askedLanguage(), navigator.languages ?? [navigator.language]);
let core;
let node;
// session is what syncing again needs, in memory only while the page is
// open: the passphrase (to keep a keystore with keys gained later), the
// node's addresses (nodeAddrs) and peer ID, and the keystore last kept.
let session = null;
let conn = null; // an admitted connection to the session's node
let gossip = null; // the subscriptions on conn's node (src/gossip.js)
let revoked = false;
// How often an open app asks its node for what is new, for what gossip
// missed (a message lost while the phone was reconnecting, or sent before
// it subscribed). A session that finds nothing new is a hello and an
// answer (PROTOCOL.md §7). ?resync=SECONDS changes it, for tests that
// show a record came by gossip and not by sync (5 s to a day).
const RESYNC_MS = resyncInterval(new URLSearchParams(location.search).get('resync'));
// How soon a lost connection is made again, doubling up to RESYNC_MS (and
// at most a minute), so the phone stays on the topics.
const RECONNECT_MS = 2_000;
const SYNC_BATCH = 1024; // records per sync session (webapp/core syncMaxRecords)

function resyncInterval(asked) {
  const s = Number(asked);
  return asked && s >= 5 && s <= 86_400 ? s * 1000 : 15_000;
}

// What the page counts, for whoever helps the person (and for tests):
// records applied from gossip, records from gossip that wait for their key
// or governance, and records pulled by sync since the page loaded, as data
// attributes of the page (data-gossip-records, data-waiting-records,
// data-synced-records).
const counts = { gossip: 0, waiting: 0, synced: 0 };
function count(kind, n) {
  counts[kind] += n;
  document.documentElement.dataset[`${kind}Records`] = String(counts[kind]);
}

// The language comes from the URL (?lang=en) or the browser, never from
// storage: the app keeps nothing on the phone.
function askedLanguage() {
  return new URLSearchParams(location.search).get('lang');
}

function t(key, ...args) {
  const m = messages[lang][key] ?? messages.en[key];
  return typeof m === 'function' ? m(...args) : m;
}

function render() {
  document.documentElement.lang = lang;
  $('lang').value = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  $('q').placeholder = t('searchPlaceholder');
  $('node').placeholder = kinds[0] === 'webtransport' ? '/ip4/…/udp/…/quic-v1/webtransport/certhash/…' : '/ip4/…/udp/…/webrtc-direct/certhash/…';
  if (lastError) showError(lastError);
  if (!$('directory').hidden) { showSummary(); showResults(); showNet(); }
}

// A failure the person can act on: kind names the message, detail is the
// core's or the network's own words, shown small for whoever helps them.
class Failure extends Error {
  constructor(kind, detail) { super(detail); this.kind = kind; }
}

let lastError = null;
function showError(f) {
  lastError = f;
  $('error').hidden = false;
  $('errorText').textContent = t(f.kind);
  $('errorDetail').textContent = f.message;
}

function clearError() {
  lastError = null;
  $('error').hidden = true;
}

function progress(key) { $('progress').textContent = key ? t(key) : ''; }

function check(answer, kind) {
  if (answer.error) throw new Failure(kind, answer.error);
  return answer;
}

async function loadCore() {
  const ready = new Promise((resolve) => { globalThis.ceibaCoreReady = resolve; });
  const go = new globalThis.Go();
  const { instance } = await WebAssembly.instantiateStreaming(fetch('core.wasm'), go.importObject);
  go.run(instance);
  await ready;
  return globalThis.ceibaCore;
}

// The ways a browser reaches a node, in the order this one tries them:
// WebTransport where the browser has it, and WebRTC (webrtc-direct), the
// only way for those that lack it (Safari, some Android browsers). Both
// pin the node's self-signed certificate by the hash in its address.
const kinds = typeof globalThis.WebTransport === 'function' ? ['webtransport', 'webrtc-direct'] : ['webrtc-direct'];

// kindOf names the way a browser dials a, or null if it cannot.
function kindOf(a) {
  const names = a.getComponents().map((c) => c.name);
  if (!names.includes('certhash')) return null;
  return names.includes('webtransport') ? 'webtransport' : names.includes('webrtc-direct') ? 'webrtc-direct' : null;
}

// dialKinds are the ways to try for addrs, in order: only those this
// browser has and addrs offer.
function dialKinds(addrs) {
  const offered = kinds.filter((k) => addrs.some((a) => kindOf(a) === k));
  if (offered.length === 0) {
    throw new Failure('unreachable', 'neither the code nor the node address has a WebTransport or WebRTC address this browser can dial');
  }
  return offered;
}

// One way at a time: the libp2p node has that transport only, so of the
// addresses it is given it dials only those of that kind.
function transportsFor(kind) {
  return kind === 'webtransport' ? [webTransport()] : [webRTCDirect()];
}

// dialAddrs are the addresses to try besides the code's: the node address
// the person was given for browsers (a WebTransport or WebRTC address with
// its certificate hashes; invite codes leave WebTransport ones out, since
// their hashes rotate). A node address naming another peer than the
// code's is refused: it is not the node that made the code.
function dialAddrs(codeAddrs, typed) {
  const peer = codeAddrs[0]?.getComponents().find((c) => c.name === 'p2p')?.value;
  const out = [];
  if (typed) {
    let a;
    try { a = multiaddr(typed); } catch (e) { throw new Failure('badNode', e.message); }
    if (!kindOf(a)) {
      throw new Failure('badNode', `${typed}: not a WebTransport or WebRTC address with a certificate hash`);
    }
    const p2p = a.getComponents().find((c) => c.name === 'p2p')?.value;
    if (p2p && p2p !== peer) throw new Failure('otherNode', `the address names ${p2p}, the code ${peer}`);
    out.push(p2p ? a : a.encapsulate(`/p2p/${peer}`));
  }
  return out;
}

// nodeAddrs are the addresses of the node peer to keep, as strings ending
// in /p2p/<peer>: used (the one the code was redeemed over) first, then
// every other one of addrs a browser can dial, once each. One is not
// enough: a WebTransport address stops working when the node's
// certificate rotates (about every two weeks), and a phone that kept only
// that one could never reach its node again, though the code gave it a
// WebRTC address, whose hash does not rotate.
const MAX_NODES = 16; // directory.MaxKeystoreNodes
function nodeAddrs(used, addrs, peer) {
  const out = [];
  for (const a of [used, ...addrs]) {
    if (!kindOf(a)) continue;
    const p2p = a.getComponents().find((c) => c.name === 'p2p')?.value;
    if (p2p && p2p !== peer) continue;
    const s = multiaddr(a.getComponents().filter((c) => c.name !== 'p2p')).encapsulate(`/p2p/${peer}`).toString();
    if (!out.includes(s)) out.push(s);
  }
  return out.slice(0, MAX_NODES);
}

const libp2pOptions = {
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  // Browsers refuse private addresses by default; a community centre's
  // node on its LAN (or a test on loopback) is one the person was given.
  connectionGater: { denyDialMultiaddr: () => false },
};

// openerNode makes a libp2p node whose peer ID sorts before peer's, so
// that this phone opens the admission (PROTOCOL.md §7) and hears the
// node's judgement of its key as a refusal on the admission stream, not
// as a connection cut later for no stated reason. A fresh peer ID each
// time also keeps a node's refusal of an earlier one from blocking it.
// Ed25519 keys are cheap to make; a node whose peer ID sorts before
// nearly every other (after the bounded search) gets a node that accepts
// the admission instead, and a refusal then shows as a lost connection.
async function openerNode(peer, kind) {
  const them = peerIdFromString(peer).toMultihash().bytes;
  let privateKey;
  for (let i = 0; i < 4096; i++) {
    const k = await generateKeyPair('Ed25519');
    if (compareBytes(peerIdFromPrivateKey(k).toMultihash().bytes, them) < 0) {
      privateKey = k;
      break;
    }
  }
  return createLibp2p({ ...libp2pOptions, transports: transportsFor(kind), services: gossipServices(), nodeInfo: gossipNodeInfo, ...(privateKey && { privateKey }) });
}

async function join(code, pass, typed) {
  core ??= await loadCore();
  progress('makingKey');
  check(core.newIdentity(pass), 'badPassphrase');
  const { addrs } = check(core.parseInvite(code), 'badCode');
  const codeAddrs = addrs.map((a) => multiaddr(a));
  const extra = dialAddrs(codeAddrs, typed);
  const ways = dialKinds([...extra, ...codeAddrs]);
  await stopNode();
  progress('redeeming');
  let welcome;
  for (const [i, kind] of ways.entries()) {
    const guest = await createLibp2p({ ...libp2pOptions, transports: transportsFor(kind) });
    try {
      welcome = await redeemInvite(guest, core, code, '', extra);
      break;
    } catch (e) {
      // A node out of reach one way (a WebTransport address whose
      // certificate has rotated since it was handed out) may be reached
      // the other way; any other failure is the answer.
      const f = classify(e);
      if (f.kind !== 'unreachable' || i === ways.length - 1) throw f;
    } finally {
      await guest.stop().catch(() => {});
    }
  }
  if (kept && welcome.network !== kept.network) {
    // This phone keeps one network: the new one is not kept, and the
    // kept one is left as it was.
    throw new Failure('otherNetwork', `the code's network is ${welcome.network}, this phone's ${kept.network}`);
  }
  // The address the code was redeemed over is the first to sync over; the
  // code's others and the typed one are kept for when it fails.
  const peer = welcome.peer.toString();
  session = { pass, nodes: nodeAddrs(welcome.addr, welcome.addrs, peer), peer, keystore: null, keys: 0 };
  revoked = false;
  progress('syncing');
  try {
    await syncOnce();
    netState = { online: true, at: new Date() };
  } catch (e) {
    if (e.keyRefused) throw new Failure('revoked', e.message);
    // The welcome is in: the view holds what it carried, and can be
    // searched, and is kept.
    showError(new Failure('syncFailed', e.message));
    await keep();
  }
}

async function stopNode() {
  conn = null;
  gossip?.stop();
  gossip = null;
  const n = node;
  node = undefined;
  await n?.stop().catch(() => {});
}

// connect returns an admitted connection to the session's node: the one
// held, or a new one from a fresh peer ID over the first kept address that
// reaches it. The first kept address is tried first: the one that reached
// the node last (putFirst), so that a phone whose WebTransport address has
// gone stale does not wait for it to fail every time; then the others in
// the order of this browser's ways (WebTransport first). A node that
// refuses this reader's key has answered: the same node behind another
// address would say the same, so the refusal is thrown, not taken for an
// address out of reach.
async function connect() {
  if (conn?.status === 'open') return conn;
  await stopNode();
  const addrs = session.nodes.map((s) => multiaddr(s));
  const byKind = kinds.flatMap((k) => addrs.filter((a) => kindOf(a) === k));
  const order = byKind.includes(addrs[0]) ? [addrs[0], ...byKind.filter((a) => a !== addrs[0])] : byKind;
  if (order.length === 0) throw new Error('none of the kept addresses of the node is one this browser can dial');
  const failed = [];
  for (const a of order) {
    try {
      node = await openerNode(session.peer, kindOf(a));
      const admission = new Admission(node, core, new Set([session.peer]));
      await admission.start();
      const c = await node.dial(a, { signal: AbortSignal.timeout(30_000) });
      await admission.admitted(c.remotePeer);
      putFirst(a.toString());
      conn = c;
      listen(node, c);
      return c;
    } catch (e) {
      await stopNode();
      if (e.keyRefused) {
        putFirst(a.toString());
        throw e;
      }
      failed.push(`${a}: ${e.message ?? e}`);
    }
  }
  throw new Error(failed.join('; '));
}

// putFirst moves the kept address addr, which reached the node, to the
// front for next time. The keystore kept holds the old order: dropping it
// has the next keep (syncOnce's, after this session) make it again.
function putFirst(addr) {
  if (session.nodes[0] === addr) return;
  session.nodes = [addr, ...session.nodes.filter((s) => s !== addr)];
  session.keystore = null;
}

// listen subscribes, on the admitted connection c of n, to the topics the
// core names, and makes the connection again when the node drops it. Once
// the admission is done, identify tells each side that the other speaks
// GossipSub, and each opens its stream; the phone's subscriptions go out
// on its own.
function listen(n, c) {
  gossip = new Gossip(n.services.pubsub, core, gossiped, gossipBehind);
  gossip.follow();
  n.addEventListener('connection:close', (evt) => {
    if (evt.detail !== c || conn !== c) return; // stopNode dropped it
    conn = null;
    gossip?.stop();
    gossip = null;
    reconnectSoon();
  });
  reconnectDelay = RECONNECT_MS;
}

let reconnectTimer = null;
let reconnectDelay = RECONNECT_MS;
// reconnectSoon syncs again (which connects and subscribes) a little
// later; a failure doubles the wait.
function reconnectSoon() {
  if (reconnectTimer || !session || revoked) return;
  reconnectTimer = setTimeout(async () => {
    reconnectTimer = null;
    await resync();
    if (!conn && !revoked) {
      reconnectDelay = Math.min(reconnectDelay * 2, RESYNC_MS, 60_000);
      reconnectSoon();
    }
  }, reconnectDelay);
}

// gossiped is called for every record the core accepted from gossip: it
// is counted, kept (soon: many may come at once) and shown. A record that
// changed the keys moves the phone to the new key's topics; one that
// revokes this phone's key stops it.
function gossiped(r) {
  count('gossip', 1);
  if (r.type !== 'entry') {
    setTimeout(() => {
      gossip?.follow();
      if (!revoked && JSON.parse(core.status().status).revoked) {
        showRevoked('the directory holds the revocation of this reader key');
        // Kept at once, not a second later: a reload must not find the
        // view without it (and dial the node again).
        keep().catch((e) => showError(e instanceof Failure ? e : new Failure('saveFailed', e.message ?? String(e))));
      }
    }, 0);
  }
  netState = { online: true, at: new Date() };
  showSoon ??= setTimeout(() => {
    showSoon = null;
    if (!session) return; // erased meanwhile
    showSummary();
    showResults();
    showNet();
  }, 100);
  keepSoon ??= setTimeout(() => {
    keepSoon = null;
    if (!session) return;
    keep().catch((e) => showError(e instanceof Failure ? e : new Failure('saveFailed', e.message ?? String(e))));
  }, 1_000);
}
let showSoon = null;
let keepSoon = null;

// gossipBehind is called for every record from gossip that the core
// keeps until its key or governance arrives, or after which the view
// lacks a rotation's pages and key (the pages the node opened the new key
// with, which it does not forward): the page syncs soon, as a node asks
// its peers for what it misses. Records kept are counted as waiting.
// While the view still lacks a rotation's pages afterwards (the node may
// not have had them all yet), it asks again, waiting twice as long each
// time, up to about two minutes, as a node does (node/pagefetch.go).
function gossipBehind(r) {
  if (r.waiting) count('waiting', 1);
  behindDelay = BEHIND_MS;
  askSoon();
}
const BEHIND_MS = 500;
let behindDelay = BEHIND_MS;
let syncSoon = null;
function askSoon() {
  syncSoon ??= setTimeout(async () => {
    await syncing; // a session that began before may have missed it
    await resync();
    syncSoon = null;
    if (session && !revoked && JSON.parse(core.status().status).awaits_pages && behindDelay < 128 * BEHIND_MS) {
      behindDelay *= 2;
      askSoon();
    }
  }, behindDelay);
}

// syncOnce pulls what the node holds and this phone lacks, and keeps the
// view again when anything came. A refusal of this reader's key is
// believed only when a second peer ID is refused too: one refusal may be
// a connection lost at the wrong moment.
async function syncOnce() {
  let pulled = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      // A session brings at most SYNC_BATCH records (the node's limit);
      // a full one means more wait, so ask again at once (a bounded
      // number of times: records waiting for a key are asked for again).
      for (let n = SYNC_BATCH, round = 0; n >= SYNC_BATCH && round < 32; round++) {
        const c = await connect();
        n = await syncWith(node, c, core);
        pulled += n;
        count('synced', n);
      }
      break;
    } catch (e) {
      await stopNode();
      if (!e.keyRefused || attempt > 0) throw e;
    }
  }
  if (pulled > 0 || !session.keystore) await keep();
  return pulled;
}

let syncing = null;
// resync runs one sync unless one runs already, and shows whether the
// node was reached. It never throws: the kept view stays searchable.
function resync() {
  if (!session || revoked || syncing) return syncing;
  if (core && JSON.parse(core.status().status).revoked) {
    // The kept view holds this key's revocation (it came by gossip
    // before the node cut the phone): no node would admit it, and
    // dialing one would only show it this phone again.
    showRevoked('the directory holds the revocation of this reader key');
    return null;
  }
  syncing = (async () => {
    try {
      const pulled = await syncOnce();
      netState = { online: true, at: new Date() };
      if (pulled > 0) { showSummary(); showResults(); }
      gossip?.follow(); // a rotation that came by sync names new topics
    } catch (e) {
      if (e.keyRefused) showRevoked(e.message);
      else if (!e.retryAfter) netState = { online: false, detail: e.message ?? String(e) };
    } finally {
      syncing = null;
      showNet();
    }
    if (!revoked && JSON.parse(core.status().status).revoked) {
      showRevoked('the directory holds the revocation of this reader key');
    }
  })();
  return syncing;
}

// showRevoked: the network's nodes no longer admit this phone's key. It
// stops asking; what it kept stays searchable.
function showRevoked(detail) {
  revoked = true;
  stopNode();
  netState = null; // "up to date" no longer holds; the error says why
  showNet();
  showError(new Failure('revoked', detail));
}

let netState = null;
function showNet() {
  const el = $('net');
  if (!netState) { el.hidden = true; return; }
  el.hidden = false;
  el.className = netState.online ? 'hint' : 'hint offline';
  el.textContent = netState.online
    ? t('synced', netState.at.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' }))
    : t('offline');
  el.title = netState.detail ?? '';
}

// keep stores the view for the next visit: the keystore with every key
// gained and the node's addresses, encrypted with the passphrase (made
// again only when a key was gained or the addresses' order changed: it
// takes the core a second or more), and the records sealed.
async function keep() {
  const { network, keys } = JSON.parse(core.status().status);
  if (!session.keystore || keys !== session.keys) {
    session.keystore = check(core.keystore(session.pass, session.nodes), 'saveFailed').keystore;
    session.keys = keys;
  }
  const { records } = check(core.export(), 'saveFailed');
  try {
    await save({ network, keystore: session.keystore, records: records ?? [] });
  } catch (e) {
    throw new Failure('saveFailed', e.message ?? String(e));
  }
  $('saved').hidden = false;
}

// reopen unlocks the kept keystore and rebuilds the view from the kept
// records, with no network; the caller syncs afterwards. A keystore kept
// before the app kept every address holds one, the one it joined over.
async function reopen(kept, pass) {
  core ??= await loadCore();
  progress('opening');
  const { nodes } = check(core.unlock(kept.keystore, pass), 'wrongPassphrase');
  check(core.open(kept.network), 'unexpected');
  for (const r of kept.records) core.receive(r); // refusals change nothing
  const { keys } = JSON.parse(core.status().status);
  const peer = nodes?.[0] && multiaddr(nodes[0]).getComponents().find((c) => c.name === 'p2p')?.value;
  session = peer ? { pass, nodes, peer, keystore: kept.keystore, keys } : null;
}

// classify names what went wrong while redeeming, from the core's and the
// network's errors.
function classify(e) {
  if (e instanceof Failure) return e;
  const m = e.message ?? String(e);
  if (m.startsWith('the inviting node refused:')) {
    if (/expired/i.test(m)) return new Failure('expired', m);
    if (/already been used/i.test(m)) return new Failure('spent', m);
    return new Failure('refused', m);
  }
  if (/not readable|welcome|does not decode|refuses|more than|closed the stream|short/.test(m)) {
    return new Failure('garbage', m);
  }
  return new Failure('unreachable', m);
}

function showSummary() {
  const s = JSON.parse(core.status().status);
  $('summary').textContent = t('joined', s.network.slice(0, 12), s.epoch);
}

function field(label, text) {
  const p = document.createElement('p');
  const b = document.createElement('b');
  b.textContent = `${label}: `;
  p.append(b, text);
  return p;
}

function showResults() {
  const list = $('results');
  list.replaceChildren();
  const text = $('q').value.trim();
  if (!text) return;
  const { results } = check(core.search(JSON.stringify({ text })), 'searchFailed');
  const found = JSON.parse(results) ?? [];
  if (found.length === 0) {
    const li = document.createElement('li');
    li.textContent = t('nothingFound');
    list.append(li);
    return;
  }
  for (const r of found) {
    const s = r.entry.service;
    const li = document.createElement('li');
    li.dataset.key = r.key;
    const h = document.createElement('h2');
    h.textContent = s.name; // textContent only: entries are other people's text
    li.append(h);
    if (s.description) li.append(field(t('description'), s.description));
    const areas = (s.areas ?? []).map((a) => [a.city, a.country, a.text].filter(Boolean).join(', '));
    if (areas.length) li.append(field(t('areas'), areas.join('; ')));
    if (s.languages?.length) li.append(field(t('languages'), s.languages.join(', ')));
    for (const c of s.contacts ?? []) li.append(field(c.kind, c.value));
    list.append(li);
  }
}

$('lang').addEventListener('change', (e) => { lang = e.target.value; render(); });
$('q').addEventListener('input', () => {
  try { showResults(); } catch (e) { showError(e instanceof Failure ? e : new Failure('searchFailed', e.message)); }
});
let timer;
function showDirectory() {
  $('join').hidden = true;
  $('unlock').hidden = true;
  $('directory').hidden = false;
  showSummary();
  showNet();
  $('q').focus();
  timer ??= setInterval(resync, RESYNC_MS);
}
globalThis.addEventListener('online', () => resync());
document.addEventListener('visibilitychange', () => { if (!document.hidden) resync(); });

// submit runs a form's work with its button disabled, and shows what
// failed.
function submit(form, button, work) {
  $(form).addEventListener('submit', async (e) => {
    e.preventDefault();
    clearError();
    $(button).disabled = true;
    try {
      await work();
    } catch (err) {
      showError(err instanceof Failure ? err : new Failure('unexpected', err.message ?? String(err)));
    } finally {
      $(button).disabled = false;
      progress(null);
    }
  });
}

let kept;
submit('join', 'go', async () => {
  const pass = $('pass').value;
  await join($('code').value.trim(), pass, $('node').value.trim());
  $('pass').value = '';
  showDirectory();
});
submit('unlock', 'open', async () => {
  const pass = $('unlockPass').value;
  await reopen(kept, pass);
  $('unlockPass').value = '';
  showDirectory();
  $('saved').hidden = false;
  resync();
});
// A kept view hides the join form; a new code shows it again. A code of
// the same network replaces the kept view with a new key; one of another
// network is refused and keeps nothing (join).
$('newCode').addEventListener('click', () => { $('join').hidden = false; $('code').focus(); });

// Scanning an invite's QR: what it reads goes into the code field only if
// it is an invite code; anything else gets the malformed code's message
// and changes nothing.
let scanning = null;
$('scan').addEventListener('click', async () => {
  if (scanning) return;
  clearError();
  $('scanner').hidden = false;
  scanning = scanCamera($('camera'));
  try {
    const text = await scanning.done.catch((e) => { throw new Failure('noCamera', e.message); });
    if (text === null) return;
    core ??= await loadCore();
    check(core.parseInvite(text.trim()), 'badCode');
    $('code').value = text.trim();
  } catch (e) {
    showError(e instanceof Failure ? e : new Failure('unexpected', e.message ?? String(e)));
  } finally {
    scanning = null;
    $('scanner').hidden = true;
  }
});
$('stopScan').addEventListener('click', () => scanning?.stop());

// The panic button: no confirmation, since it may be pressed with someone
// reaching for the phone. The page is left for a blank one afterwards,
// which drops the keys held in memory and leaves nothing on the screen.
$('panic').addEventListener('click', async () => {
  clearInterval(timer);
  clearTimeout(reconnectTimer);
  clearTimeout(syncSoon);
  session = null;
  await stopNode();
  await eraseAll();
  location.replace('about:blank');
});

async function start() {
  for (const kind of Object.keys(counts)) count(kind, 0);
  $('node').value = new URLSearchParams(location.search).get('node') ?? '';
  render();
  watchUpdates(); // not awaited: the app works without a service worker, online
  kept = await load().catch(() => undefined);
  $(kept ? 'unlock' : 'join').hidden = false;
}
start();
