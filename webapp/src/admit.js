// Admission at the connection (PROTOCOL.md §7, /ceiba/admit/2.0.0): every
// connection proves, both ways, an admitted key of the network before any
// other Ceiba protocol is served. The core makes and checks the proofs
// with the reader key it holds; this file only moves the bytes.
import { StreamReader, compareBytes, randomBytes } from './bytes.js';

export const ADMIT_PROTOCOL = '/ceiba/admit/2.0.0';
const NONCE = 16;
const MAC = 32;
const PROOF = 96;
const DEADLINE_MS = 5_000;

function check(answer) {
  if (answer.error) throw new Error(answer.error);
  return answer;
}

function withDeadline(promise, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${DEADLINE_MS / 1000} s`)), DEADLINE_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

// Admission runs the exchange on every connection of node, as opener when
// this peer ID sorts first and as accepter otherwise. bootstrap holds the
// peer IDs (strings) the person named, such as the inviting node: their
// keys pass when merely unknown to a fresh view.
export class Admission {
  constructor(node, core, bootstrap = new Set()) {
    this.node = node;
    this.core = core;
    this.bootstrap = bootstrap;
    this.results = new Map(); // peer ID string → Promise<{role, fingerprint}>
    this.me = node.peerId.toMultihash().bytes;
  }

  async start() {
    await this.node.handle(ADMIT_PROTOCOL, (stream, conn) => {
      this.settle(conn, () => this.accept(stream, conn));
    }, { runOnLimitedConnection: true });
    this.node.addEventListener('connection:open', (evt) => {
      const conn = evt.detail;
      if (compareBytes(this.me, conn.remotePeer.toMultihash().bytes) < 0) {
        this.settle(conn, () => this.open(conn));
      }
    });
  }

  // admitted resolves with the peer's role once both sides proved their
  // keys on the connection to peer, and rejects with the reason otherwise.
  admitted(peer) {
    const key = peer.toString();
    if (!this.results.has(key)) {
      let resolve, reject;
      const p = new Promise((res, rej) => { resolve = res; reject = rej; });
      Object.assign(p, { resolve, reject });
      this.results.set(key, p);
    }
    return this.results.get(key);
  }

  settle(conn, run) {
    const p = this.admitted(conn.remotePeer);
    withDeadline(run(), 'admission').then(p.resolve, (err) => {
      p.reject(err);
      conn.close().catch(() => {});
    });
  }

  async open(conn) {
    const them = conn.remotePeer.toMultihash().bytes;
    const stream = await conn.newStream(ADMIT_PROTOCOL, { runOnLimitedConnection: true });
    const r = new StreamReader(stream);
    const nO = randomBytes(NONCE);
    stream.send(nO);
    const got = await r.read(NONCE + MAC);
    const nA = got.subarray(0, NONCE);
    const { mac: want } = check(this.core.admitMAC('A', this.me, them, nO, nA));
    if (compareBytes(got.subarray(NONCE), want) !== 0) throw new Error('its network proof is wrong (another network, or none)');
    const { mac } = check(this.core.admitMAC('O', this.me, them, nO, nA));
    const { proof } = check(this.core.admitProof('O', this.me, them, nO, nA));
    stream.send(mac);
    stream.send(proof);
    // The node proved our network above; going silent now is its
    // judgement of this reader's key (revoked, or unknown to it).
    const theirs = await r.read(PROOF).catch((e) => {
      throw Object.assign(new Error(`the node proved the network, then refused this reader's key (${e.message})`), { keyRefused: true });
    });
    const judged = check(this.core.admitCheck(null, theirs, 'A', this.me, them, nO, nA, this.bootstrap.has(conn.remotePeer.toString())));
    await stream.close();
    return judged;
  }

  async accept(stream, conn) {
    const them = conn.remotePeer.toMultihash().bytes;
    const r = new StreamReader(stream);
    const nO = await r.read(NONCE);
    const nA = randomBytes(NONCE);
    const { mac } = check(this.core.admitMAC('A', them, this.me, nO, nA));
    stream.send(nA);
    stream.send(mac);
    const got = await r.read(MAC + PROOF);
    const judged = check(this.core.admitCheck(got.subarray(0, MAC), got.subarray(MAC), 'O', them, this.me, nO, nA,
      this.bootstrap.has(conn.remotePeer.toString())));
    stream.send(check(this.core.admitProof('A', them, this.me, nO, nA)).proof);
    await stream.close();
    return judged;
  }
}
