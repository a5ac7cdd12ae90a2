// Anti-entropy sync from the web app (PROTOCOL.md §7, sync frames): the
// phone pulls what a node holds and it lacks. The core builds the hello,
// compares digests, picks what to ask for and opens, checks and applies
// every record; this file frames and moves the bytes.
import { StreamReader, concat } from './bytes.js';

export const SYNC_PROTOCOL = '/ceiba/sync/2.0.0';
const T = { hello: 1, helloAck: 2, wantBuckets: 3, buckets: 4, wantLists: 5, list: 6, wantRecords: 7, record: 8, done: 9, busy: 10 };
const MAX_FRAME = (1 << 20) + 300_000; // a record frame: MaxSealedBytes + 64
// A node ends its side of a session after 30 s (node.DefaultSyncTimeout);
// this bounds the wait on one that never does (or never answers at all).
const TIMEOUT_MS = 60_000;

function check(answer) {
  if (answer.error) throw new Error(answer.error);
  return answer;
}

function uvarint(n) {
  const out = [];
  while (n >= 0x80) { out.push((n & 0x7f) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return Uint8Array.from(out);
}

function frame(type, body = new Uint8Array(0)) {
  return concat(uvarint(body.length + 1), Uint8Array.of(type), body);
}

class FrameReader {
  constructor(stream, signal) { this.r = new StreamReader(stream, signal); }

  async next() {
    let size = 0;
    for (let shift = 0; ; shift += 7) {
      const [b] = await this.r.read(1);
      size += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
      if (shift > 28) throw new Error('a sync frame length is malformed');
    }
    if (size < 1 || size > MAX_FRAME) throw new Error(`a sync frame of ${size} bytes`);
    const f = await this.r.read(size);
    return { type: f[0], body: f.subarray(1) };
  }

  async expect(type) {
    const f = await this.next();
    if (f.type === T.busy && f.body.length === 4) {
      const wait = new DataView(f.body.buffer, f.body.byteOffset, 4).getUint32(0);
      const err = new Error(`the node's sync budget for this phone is spent; come back in ${wait} s`);
      err.retryAfter = wait;
      throw err;
    }
    if (f.type !== type) throw new Error(`sync message ${f.type}, expected ${type}`);
    return f.body;
  }
}

// syncWith runs one session with the peer of conn (an admitted
// connection) and returns how many records it brought.
export async function syncWith(node, conn, core) {
  const me = node.peerId.toMultihash().bytes;
  const them = conn.remotePeer.toMultihash().bytes;
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const { id, hello } = check(core.syncStart(me, them));
  const stream = await conn.newStream(SYNC_PROTOCOL, { signal });
  const fr = new FrameReader(stream, signal);
  let pulled = 0;
  try {
    stream.send(frame(T.hello, hello));
    if (!check(core.syncAck(id, await fr.expect(T.helloAck))).done) {
      stream.send(frame(T.wantBuckets));
      const { want } = check(core.syncBuckets(id, await fr.expect(T.buckets)));
      if (want.length > 0) {
        stream.send(frame(T.wantLists, want));
        const lists = [];
        for (let i = 0; i < want.length; i++) lists.push(await fr.expect(T.list));
        const { request, count } = check(core.syncLists(id, lists));
        if (count > 0) {
          stream.send(frame(T.wantRecords, request));
          for (let i = 0; i < count; i++) check(core.syncRecord(id, await fr.expect(T.record)));
        }
      }
    }
    stream.send(frame(T.done));
    await stream.close({ signal });
  } catch (err) {
    stream.abort(err);
    if (signal.aborted) throw new Error(`the node did not finish the sync session within ${TIMEOUT_MS / 1000} s`);
    throw err;
  } finally {
    pulled = core.syncEnd(id).pulled ?? 0;
  }
  return pulled;
}
