// What the phone keeps between visits, in IndexedDB: the keystore (the
// reader key and read keys, encrypted with the passphrase by the core) and
// the view's records, sealed under the newest read key. Without the
// passphrase none of it opens; the panic button deletes it all.
const DB = 'ceiba';
const STORE = 'view';
const KEY = 'current';

function request(r) {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function openDB() {
  const r = indexedDB.open(DB, 1);
  r.onupgradeneeded = () => r.result.createObjectStore(STORE);
  return request(r);
}

async function withStore(mode, run) {
  const db = await openDB();
  try {
    const tx = db.transaction(STORE, mode);
    const out = await request(run(tx.objectStore(STORE)));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error('the storage transaction was aborted'));
    });
    return out;
  } finally {
    db.close();
  }
}

// load returns the kept view {network, keystore, records}, or undefined.
export async function load() {
  return withStore('readonly', (s) => s.get(KEY));
}

// save replaces the kept view in one transaction: a failure keeps the old one.
export async function save(view) {
  await withStore('readwrite', (s) => s.put(view, KEY));
}

// eraseAll deletes the database, every cache and the service worker: what
// the panic button does. Each goes even if another fails. A deletion
// blocked by another open tab completes once that tab closes its
// connection, which this app does after every read and write.
export async function eraseAll() {
  await Promise.allSettled([
    new Promise((resolve) => {
      const r = indexedDB.deleteDatabase(DB);
      r.onsuccess = r.onerror = r.onblocked = resolve;
    }),
    (async () => {
      if (!globalThis.caches) return;
      for (const k of await caches.keys()) await caches.delete(k);
    })(),
    (async () => {
      if (!navigator.serviceWorker) return;
      for (const reg of await navigator.serviceWorker.getRegistrations()) await reg.unregister();
    })(),
  ]);
}
