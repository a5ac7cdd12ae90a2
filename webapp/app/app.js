// The reader's web app (issue 16): a phone joins a Ceiba network as its own
// peer. The person pastes an invite code and chooses a passphrase; the
// reader key is made inside the core (WebAssembly, webapp/core) and never
// leaves it; js-libp2p over WebTransport carries the invite, the admission
// and a sync with the inviting node; the core opens and checks every record
// and searches. Once joined, the phone keeps the keystore and the records,
// both sealed, in IndexedDB (store.js), and a service worker keeps the
// app's files (sw.js): after a reload, with no node reachable, the
// passphrase opens the directory again and search works offline. The panic
// button erases all of it.
import { createLibp2p } from 'libp2p';
import { webTransport } from '@libp2p/webtransport';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { redeemInvite } from '../src/invite.js';
import { Admission } from '../src/admit.js';
import { syncWith } from '../src/sync.js';
import { messages, pickLanguage } from './i18n.js';
import { load, save, eraseAll } from './store.js';
import { watchUpdates } from './update.js';
import { scanCamera } from './qr.js';

const $ = (id) => document.getElementById(id);
let lang = pickLanguage(askedLanguage(), navigator.languages ?? [navigator.language]);
let core;
let node;

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
  $('node').placeholder = '/ip4/…/udp/…/quic-v1/webtransport/certhash/…';
  if (lastError) showError(lastError);
  if (!$('directory').hidden) { showSummary(); showResults(); }
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

// dialAddrs are the addresses to try: the node address the person was
// given for browsers (a WebTransport address with its certificate hashes;
// invite codes leave those out, since the hashes rotate), and the code's.
// A node address naming another peer than the code's is refused: it is not
// the node that made the code.
function dialAddrs(codeAddrs, typed) {
  const peer = codeAddrs[0]?.getComponents().find((c) => c.name === 'p2p')?.value;
  const out = [];
  if (typed) {
    let a;
    try { a = multiaddr(typed); } catch (e) { throw new Failure('badNode', e.message); }
    const names = a.getComponents().map((c) => c.name);
    if (!names.includes('webtransport') || !names.includes('certhash')) {
      throw new Failure('badNode', `${typed}: not a WebTransport address with a certificate hash`);
    }
    const p2p = a.getComponents().find((c) => c.name === 'p2p')?.value;
    if (p2p && p2p !== peer) throw new Failure('otherNode', `the address names ${p2p}, the code ${peer}`);
    out.push(p2p ? a : a.encapsulate(`/p2p/${peer}`));
  }
  return out;
}

async function join(code, pass, typed) {
  core ??= await loadCore();
  progress('makingKey');
  check(core.newIdentity(pass), 'badPassphrase');
  const { addrs } = check(core.parseInvite(code), 'badCode');
  const extra = dialAddrs(addrs.map((a) => multiaddr(a)), typed);
  await node?.stop();
  node = await createLibp2p({
    transports: [webTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // Browsers refuse private addresses by default; a community centre's
    // node on its LAN (or a test on loopback) is one the person was given.
    connectionGater: { denyDialMultiaddr: () => false },
  });
  progress('redeeming');
  let welcome;
  try {
    welcome = await redeemInvite(node, core, code, '', extra);
  } catch (e) {
    throw classify(e);
  }
  progress('admitting');
  const admission = new Admission(node, core, new Set([welcome.peer.toString()]));
  await admission.start();
  try {
    await node.dial(welcome.addrs); // the typed address first, then the code's
    await admission.admitted(welcome.peer);
    progress('syncing');
    await syncWith(node, node.getConnections(welcome.peer)[0], core);
  } catch (e) {
    // The welcome is in: the view holds what it carried, and can be searched.
    showError(new Failure('syncFailed', e.message));
  }
}

// keep stores the view for the next visit: the keystore with every key
// gained, encrypted with the passphrase, and the records sealed.
async function keep(pass) {
  const { keystore } = check(core.keystore(pass), 'saveFailed');
  const { records } = check(core.export(), 'saveFailed');
  const { network } = JSON.parse(core.status().status);
  try {
    await save({ network, keystore, records: records ?? [] });
  } catch (e) {
    throw new Failure('saveFailed', e.message ?? String(e));
  }
}

// reopen unlocks the kept keystore and rebuilds the view from the kept
// records, with no network.
async function reopen(kept, pass) {
  core ??= await loadCore();
  progress('opening');
  check(core.unlock(kept.keystore, pass), 'wrongPassphrase');
  check(core.open(kept.network), 'unexpected');
  for (const r of kept.records) core.receive(r); // refusals change nothing
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
function showDirectory() {
  $('join').hidden = true;
  $('unlock').hidden = true;
  $('directory').hidden = false;
  showSummary();
  $('q').focus();
}

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
  await keep(pass);
  $('saved').hidden = false;
});
submit('unlock', 'open', async () => {
  const pass = $('unlockPass').value;
  await reopen(kept, pass);
  $('unlockPass').value = '';
  showDirectory();
  $('saved').hidden = false;
});

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
  await node?.stop().catch(() => {});
  await eraseAll();
  location.replace('about:blank');
});

async function start() {
  $('node').value = new URLSearchParams(location.search).get('node') ?? '';
  render();
  watchUpdates(); // not awaited: the app works without a service worker, online
  kept = await load().catch(() => undefined);
  $(kept ? 'unlock' : 'join').hidden = false;
}
start();
