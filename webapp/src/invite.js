// Redeeming an invite code from the web app: the JavaScript side only
// moves bytes. The Ceiba core (WebAssembly, webapp/core) parses the code,
// signs the request with the reader key it holds and opens the answer;
// libp2p carries them over /ceiba/invite/2.0.0 (PROTOCOL.md §9).
import { multiaddr } from '@multiformats/multiaddr';
import { StreamReader, concat } from './bytes.js';

export const INVITE_PROTOCOL = '/ceiba/invite/2.0.0';
const MAX_ANSWER = 1 << 20; // directory.MaxInviteResponse
const TIMEOUT_MS = 30_000;

function check(answer) {
  if (answer.error) throw new Error(answer.error);
  return answer;
}

// readFrame reads one length-prefixed message (4-byte big-endian length)
// and returns it with its prefix, as the core reads it, unless signal
// aborts first.
async function readFrame(stream, limit, signal) {
  const r = new StreamReader(stream, signal);
  const head = await r.read(4).catch((err) => {
    if (signal.aborted) throw err;
    throw new Error('the inviting node closed the stream without answering');
  });
  const size = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
  if (size > limit) throw new Error(`the inviting node's answer is ${size} bytes, more than ${limit}`);
  return concat(head, await r.read(size));
}

// redeemInvite redeems code as name (empty for a reader) for the key the
// core holds, over node (a started libp2p node), and returns what the
// core's welcome says, {network, role}, with the inviting node's peer ID
// and addresses (the new reader's first peer), and the address the
// connection was made to (addr). extra are more addresses of the same
// node to try first (multiaddrs): a browser can dial only a WebTransport
// or WebRTC one, and codes leave WebTransport ones out.
export async function redeemInvite(node, core, code, name = '', extra = []) {
  const { addrs: raw } = check(core.parseInvite(code));
  const addrs = [...extra, ...raw.map((a) => multiaddr(a))];
  // One deadline for the dial, the stream and the answer: anyone can make
  // a code naming a host that accepts the stream and never answers.
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  let conn, stream;
  try {
    // Every address at once: the first is often one this device cannot reach.
    conn = await node.dial(addrs, { signal });
    stream = await conn.newStream(INVITE_PROTOCOL, { signal });
    const { request } = check(core.redeem(code, name, node.peerId.toMultihash().bytes));
    stream.send(request);
    const answer = await readFrame(stream, MAX_ANSWER, signal);
    const welcome = check(core.welcome(answer));
    return { ...welcome, peer: conn.remotePeer, addrs, addr: conn.remoteAddr };
  } catch (err) {
    if (!signal.aborted) throw err;
    // A silent node would hold a graceful close as it held the answer.
    stream?.abort(err);
    conn?.abort(err);
    throw new Error(`the inviting node ${conn ? 'did not answer' : 'could not be reached'} within ${TIMEOUT_MS / 1000} s`);
  } finally {
    await stream?.close().catch(() => {});
    await conn?.close().catch(() => {});
  }
}
