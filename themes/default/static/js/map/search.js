// Caption search through the index built at build time (atlas/stages/search.py): queries run in
// a Web Worker that fetches one small shard per word; this is the page's side of it.

export class IndexSearch {
  /**
   * `base`: URL of the index folder; `quality`: a score byte per point to rank by (or null),
   * `missing`: the byte that means "no score".
   */
  constructor(base, quality, missing) {
    this.worker = new Worker(new URL('./search-worker.js', import.meta.url), { type: 'module' });
    this.pending = new Map();
    this.next = 0;
    this.worker.onmessage = (event) => {
      const { id, error, ...result } = event.data;
      const done = this.pending.get(id);
      this.pending.delete(id);
      if (done) (error ? done.reject(new Error(error)) : done.resolve(result));
    };
    this.worker.onerror = (event) => {
      for (const done of this.pending.values()) done.reject(new Error(event.message || 'search worker failed'));
      this.pending.clear();
    };
    this.ready = this._send({ type: 'init', base: new URL(base, location.href).href, quality, missing }).then((r) => r.info);
  }

  _send(message) {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id });
    });
  }

  /** { total, ids (ranked Uint32Array), bytes (index bytes fetched so far) }; `prefix` completes the last word. */
  search(query, { prefix = false } = {}) {
    return this._send({ type: 'search', query, prefix });
  }
}
