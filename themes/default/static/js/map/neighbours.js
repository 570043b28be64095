// A point's nearest neighbours in embedding space, from neighbours.bin (uint32 [n, k] in map
// order, meta.neighbours.missing for "none"): one point's row is fetched with a Range request;
// a server that ignores ranges sends the whole file once, which is then kept.

/** The ids in one row of k uint32 little-endian values, without the "missing" ones or self. */
export function neighbourRow(bytes, k, missing, self = -1) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  for (let j = 0; j < k && (j + 1) * 4 <= bytes.byteLength; j++) {
    const v = view.getUint32(j * 4, true);
    if (v !== missing && v !== self) out.push(v);
  }
  return out;
}

export class Neighbours {
  /** `info` is meta.neighbours ({file, k, type, missing}) or null/undefined when the build wrote none. */
  constructor(base, info, count) {
    this.available = Boolean(info && info.file && Number.isInteger(info.k) && info.k > 0);
    this.url = this.available ? base + info.file : '';
    this.k = this.available ? info.k : 0;
    this.missing = info?.missing ?? 0xffffffff;
    this.count = count;
    this.whole = null;
    this.rows = new Map();
  }

  /** The neighbour ids of point `id` (nearest first); [] when there are none. */
  async of(id) {
    if (!this.available || !Number.isInteger(id) || id < 0 || id >= this.count) return [];
    const rowBytes = this.k * 4, start = id * rowBytes;
    if (this.whole) return neighbourRow(new Uint8Array(await this.whole, start, rowBytes), this.k, this.missing, id);
    if (!this.rows.has(id)) {
      this.rows.set(id, fetch(this.url, { headers: { Range: `bytes=${start}-${start + rowBytes - 1}` } }).then(async (response) => {
        if (!response.ok) throw new Error(`${this.url}: HTTP ${response.status}`);
        const buffer = await response.arrayBuffer();
        if (response.status === 206) return new Uint8Array(buffer);
        this.whole = Promise.resolve(buffer);  // the server sent it all: keep it
        return new Uint8Array(buffer, start, rowBytes);
      }).catch((error) => { this.rows.delete(id); throw error; }));
    }
    return neighbourRow(await this.rows.get(id), this.k, this.missing, id);
  }
}
