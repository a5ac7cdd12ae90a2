// Byte helpers for libp2p 3 streams, which deliver Uint8Array or
// Uint8ArrayList chunks of any size.

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// StreamReader reads exact byte counts from a stream. With signal, a read
// fails as soon as signal aborts: a peer that opens a stream and never
// writes to it would otherwise hold the read for ever.
export class StreamReader {
  constructor(stream, signal) {
    this.it = stream[Symbol.asyncIterator]();
    this.buf = new Uint8Array(0);
    this.signal = signal;
  }

  next() {
    const signal = this.signal;
    if (!signal) return this.it.next();
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const abort = () => reject(signal.reason);
      signal.addEventListener('abort', abort, { once: true });
      this.it.next().then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
    });
  }

  async read(n) {
    while (this.buf.length < n) {
      const { value, done } = await this.next();
      if (done) throw new Error(`the stream ended ${n - this.buf.length} bytes short`);
      this.buf = concat(this.buf, value.subarray());
    }
    const out = this.buf.slice(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

export function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}
