// Redeeming an invite code from the web app: the JavaScript side only
// moves bytes. The Ceiba core (WebAssembly, webapp/core) parses the code,
// signs the request with the reader key it holds and opens the answer;
// libp2p carries them over /ceiba/invite/2.0.0 (PROTOCOL.md §9).
import { multiaddr } from '@multiformats/multiaddr';

export const INVITE_PROTOCOL = '/ceiba/invite/2.0.0';
const MAX_ANSWER = 1 << 20; // directory.MaxInviteResponse
const TIMEOUT_MS = 30_000;

function check(answer) {
  if (answer.error) throw new Error(answer.error);
  return answer;
}

// readFrame reads one length-prefixed message (4-byte big-endian length)
// and returns it with its prefix, as the core reads it.
async function readFrame(stream, limit) {
  const parts = [];
  let have = 0;
  let want = -1;
  for await (const chunk of stream) {
    const bytes = chunk.subarray ? chunk.subarray() : chunk;
    parts.push(bytes);
    have += bytes.length;
    if (want < 0 && have >= 4) {
      const head = concat(parts, have);
      want = 4 + new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      if (want - 4 > limit) throw new Error(`the inviting node's answer is ${want - 4} bytes, more than ${limit}`);
    }
    if (want >= 0 && have >= want) return concat(parts, have).subarray(0, want);
  }
  throw new Error('the inviting node closed the stream without answering');
}

function concat(parts, total) {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// redeemInvite redeems code as name (empty for a reader) for the key the
// core holds, over node (a started libp2p node), and returns what the
// core's welcome says, {network, role}, with the inviting node's peer ID
// and addresses (the new reader's first peer).
export async function redeemInvite(node, core, code, name = '') {
  const { addrs } = check(core.parseInvite(code));
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  // Every address at once: the first is often one this device cannot reach.
  const conn = await node.dial(addrs.map((a) => multiaddr(a)), { signal });
  const stream = await conn.newStream(INVITE_PROTOCOL, { signal });
  try {
    const { request } = check(core.redeem(code, name, node.peerId.toMultihash().bytes));
    stream.send(request);
    const answer = await readFrame(stream, MAX_ANSWER);
    const welcome = check(core.welcome(answer));
    return { ...welcome, peer: conn.remotePeer, addrs: addrs.map((a) => multiaddr(a)) };
  } finally {
    await stream.close().catch(() => {});
    await conn.close().catch(() => {});
  }
}
