// Loading the map's files: meta.json, the binary points (one request) and lazily the text chunks.

/** Fetch JSON, throwing a readable error. */
async function getJSON(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/** meta.json; its `encoding` holds the binary format's numbers (xy_max, score_max, ...). */
export async function loadMeta(base) {
  const meta = await getJSON(`${base}meta.json`);
  checkMeta(meta);
  return meta;
}

/** Throws a readable error for map data written by another version of atlas. */
export function checkMeta(meta) {
  const enc = meta && meta.encoding;
  const keys = ['xy_max', 'score_max', 'score_missing', 'no_cluster'];
  if (!enc || !keys.every((k) => Number.isInteger(enc[k]) && enc[k] > 0)) {
    throw new Error('meta.json has no binary encoding (map data from an older atlas): rebuild the site');
  }
}

/**
 * Load points.bin and view its columns as typed arrays (no copies).
 * Returns { count, xy: Uint16Array(2n), xyMax, domain: Uint16Array, clusters: {name: Uint16Array},
 * scores: Uint8Array(4n) }; world coordinates are xy / xyMax (see `worldOf`).
 */
export async function loadPoints(base, meta, onProgress) {
  const response = await fetch(`${base}${meta.points.file}`);
  if (!response.ok) throw new Error(`points: HTTP ${response.status}`);
  let buffer;
  const total = meta.points.bytes;
  if (response.body && onProgress) {
    const reader = response.body.getReader();
    const bytes = new Uint8Array(total);
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes.set(value.subarray(0, Math.max(0, Math.min(value.length, total - received))), received);
      received += value.length;
      onProgress(Math.min(1, received / total));
    }
    buffer = bytes.buffer;
  } else {
    buffer = await response.arrayBuffer();
  }
  const views = {};
  for (const column of meta.points.columns) {
    const Type = column.type === 'uint16' ? Uint16Array : Uint8Array;
    views[column.name] = new Type(buffer, column.offset, column.length);
  }
  const clusters = {};
  for (const level of meta.clusters) clusters[level.name] = views[level.column];
  return {
    count: meta.count,
    xy: views.xy,
    xyMax: meta.encoding.xy_max,
    domain: views.domain,
    clusters,
    scores: views.scores,
  };
}

/**
 * lengths.bin (caption length a point, uint8 like a score; see meta.lengths), fetched after the
 * first frame. Returns a Uint8Array, or null when the data has none or it cannot be fetched.
 */
export async function loadLengths(base, meta) {
  if (!meta.lengths) return null;
  const response = await fetch(`${base}${meta.lengths.file}`);
  if (!response.ok) return null;
  const bytes = new Uint8Array(await response.arrayBuffer());
  return bytes.length === meta.count ? bytes : null;
}

/** World coordinates ([0, 1]²) of point i. */
export function worldOf(points, i) {
  return [points.xy[2 * i] / points.xyMax, points.xy[2 * i + 1] / points.xyMax];
}

/** Text chunks, fetched on demand and kept. */
export class ChunkStore {
  constructor(base, meta) {
    this.base = base;
    this.meta = meta;
    this.size = meta.chunk_size;
    this.text = new Map();
    this.detail = new Map();
  }

  chunkOf(index) {
    return Math.floor(index / this.size);
  }

  _get(cache, template, chunk) {
    let promise = cache.get(chunk);
    if (!promise) {
      const name = String(chunk).padStart(5, '0');
      promise = getJSON(this.base + template.replace('{chunk}', name)).catch((error) => {
        cache.delete(chunk);
        throw error;
      });
      cache.set(chunk, promise);
    }
    return promise;
  }

  captions(chunk) {
    return this._get(this.text, this.meta.text, chunk);
  }

  details(chunk) {
    return this._get(this.detail, this.meta.detail, chunk);
  }

  /** Everything about one point: { caption, url, host, domain, row_id, aesthetic, ... }. */
  async point(index) {
    const chunk = this.chunkOf(index);
    const [captions, details] = await Promise.all([this.captions(chunk), this.details(chunk)]);
    const offset = index - chunk * this.size;
    const row = details[offset] || [];
    const out = { caption: captions[offset] ?? '' };
    this.meta.detail_fields.forEach((field, i) => {
      out[field] = row[i] ?? null;
    });
    return out;
  }

  /** Has the caption of this point already arrived? Returns it or undefined. */
  async captionIfLoaded(index) {
    const chunk = this.chunkOf(index);
    if (!this.text.has(chunk)) return undefined;
    const captions = await this.text.get(chunk);
    return captions[index - chunk * this.size];
  }
}

/** http(s) links only; anything else is never used as a link or an image source. */
export function safeUrl(value) {
  return typeof value === 'string' && /^https?:\/\/[^\s"'<>\\`]+$/i.test(value) ? value : null;
}

/**
 * The URL to show as an image: http(s) only, and never a demo row's made-up address (hosts
 * under the reserved `.example` name or example.com/.org), which would only ever fail.
 */
export function imageUrl(value, demo = false) {
  const safe = demo ? null : safeUrl(value);
  if (!safe) return null;
  let host;
  try { host = new URL(safe).hostname.toLowerCase().replace(/\.$/, ''); } catch { return null; }
  return /(^|\.)(example|example\.com|example\.org|example\.net)$/.test(host) ? null : safe;
}
