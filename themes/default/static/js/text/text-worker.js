// The caption model's worker: loads the build's ONNX export (atlas/stages/textmodel.py) into the
// vendored onnxruntime-web (WebAssembly, one thread), tokenises with our WordPiece (or, for CLIP's
// text tower, our copy of open_clip's BPE) exactly as the build did, and answers embed / nearest
// requests, so the page's main thread never runs the model or scans the map's vectors. Everything
// is fetched from the site itself, each file once.
import { WordPiece } from './wordpiece.js';
import { ClipBpe } from './clip-bpe.js';

const RUNTIME = new URL('../vendor/onnxruntime-web/', import.meta.url);

class TextError extends Error {
  constructor(message, code) { super(message); this.code = code; }
}

let loading = null, vectorsLoading = null, manifestLoading = null;
let ort = null, session = null, tokenizer = null, manifest = null, base = null;

async function fetchChecked(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new TextError(`The ${what} could not be downloaded (${error.message || error}).`, 'fetch');
  }
  if (!response.ok) throw new TextError(`The ${what} is missing on the server (HTTP ${response.status}).`, 'missing');
  return response;
}

async function fetchFile(entry, what) {
  const buffer = await (await fetchChecked(new URL(entry.file, base), what)).arrayBuffer();
  if (buffer.byteLength !== entry.bytes) {
    throw new TextError(`The ${what} on the server is incomplete or damaged (${buffer.byteLength.toLocaleString('en')} of ${entry.bytes.toLocaleString('en')} bytes).`, 'damaged');
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
  if (entry.sha256 && hex !== entry.sha256) throw new TextError(`The ${what} on the server is damaged (its checksum differs).`, 'damaged');
  return buffer;
}

async function loadManifest() {
  const described = await (await fetchChecked(new URL('text-model.json', base), 'description of the caption model')).json();
  if (!described.available) throw new TextError(described.reason || 'Search by meaning is not available for this atlas.', 'unavailable');
  return described;
}

function ensureManifest() {
  return manifestLoading || (manifestLoading = loadManifest().catch((e) => { manifestLoading = null; throw e; }));
}

async function load() {
  manifest = await ensureManifest();
  const [runtime, model, made] = await Promise.all([
    import(new URL('ort.wasm.bundle.min.mjs', RUNTIME).href).catch((error) => {
      throw new TextError(`The model's runtime could not be loaded (${error.message || error}).`, 'runtime');
    }),
    fetchFile(manifest.files.model, 'caption model file'),
    makeTokenizer(manifest),
  ]);
  ort = runtime;
  ort.env.wasm.numThreads = 1; // threads need a cross-origin isolated page, which a static site is not
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = { wasm: new URL('ort-wasm-simd-threaded.wasm', RUNTIME).href };
  tokenizer = made;
  try {
    session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new TextError(`The caption model could not be started (${error.message || error}).`, 'damaged');
  }
  return { model: manifest.model, dim: manifest.dim, quantisation: manifest.quantisation, bytes: manifest.files.model.bytes };
}

const lines = (buffer) => new TextDecoder().decode(buffer).replace(/\n$/, '').split('\n');

/** The tokenizer the manifest names: CLIP's BPE (clip-bpe.js) or BERT's WordPiece (wordpiece.js). */
async function makeTokenizer({ tokenizer: settings, files }) {
  if (settings.kind === 'clip-bpe') {
    const [merges, tables] = await Promise.all([fetchFile(files.bpe, "text model's vocabulary"),
      fetchFile(files.clean, "text model's character tables")]);
    return new ClipBpe(lines(merges), JSON.parse(new TextDecoder().decode(tables)), settings);
  }
  return new WordPiece(lines(await fetchFile(files.vocab, "caption model's vocabulary")), settings);
}

function ensureLoaded() {
  if (!loading) loading = load().catch((error) => { loading = null; throw error; }); // a later call tries again
  return loading;
}

async function embed(text) {
  await ensureLoaded();
  const ids = tokenizer.encode(typeof text === 'string' ? text : String(text ?? ''));
  if (ids.length <= 2) throw new TextError('There is nothing to embed: the text is empty (or only spaces and invisible characters).', 'empty');
  const row = tokenizer.pad ? tokenizer.pad(ids) : ids; // CLIP reads a zero-padded row of context_length
  const shape = [1, row.length];
  const feeds = { [manifest.inputs[0]]: new ort.Tensor('int64', BigInt64Array.from(row, BigInt), shape) };
  if (manifest.inputs[1]) feeds[manifest.inputs[1]] = new ort.Tensor('int64', new BigInt64Array(row.length).fill(1n), shape);
  const output = await session.run(feeds);
  const vector = Float32Array.from(output[manifest.output].data);
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < vector.length; i += 1) vector[i] /= norm;
  return { vector, tokens: ids.length };
}

/** The k best (id, score) pairs seen, best first; ties go to the smaller id, whatever the order seen. */
class Best {
  constructor(k) {
    this.k = k;
    this.ids = new Int32Array(k).fill(-1);
    this.scores = new Float64Array(k).fill(-Infinity);
  }

  /** The score a point must reach to enter (a tie enters only with a smaller id than the last). */
  get worst() { return this.k ? this.scores[this.k - 1] : Infinity; }

  push(id, score) {
    const { ids, scores, k } = this;
    if (!k || score < scores[k - 1] || (score === scores[k - 1] && ids[k - 1] >= 0 && id > ids[k - 1])) return;
    let i = k - 1;
    while (i > 0 && (scores[i - 1] < score || (scores[i - 1] === score && ids[i - 1] > id))) {
      scores[i] = scores[i - 1]; ids[i] = ids[i - 1]; i -= 1;
    }
    scores[i] = score; ids[i] = id;
  }

  answer() {
    const filled = this.ids.indexOf(-1), n = filled < 0 ? this.k : filled;
    return { ids: Array.from(this.ids.subarray(0, n)),
             scores: Array.from(this.scores.subarray(0, n), (s) => Math.round(s * 1e6) / 1e6) };
  }
}

/** Every point's score against the query, into best: rows of int8 [n, dim] times per-row scales. */
function scan(query, values, scales, n, best, ids = null) {
  const dim = query.length;
  for (let p = 0, offset = 0; p < n; p += 1, offset += dim) {
    let dot = 0;
    for (let d = 0; d < dim; d += 1) dot += query[d] * values[offset + d];
    const score = dot * scales[p];
    if (score >= best.worst) best.push(ids ? ids[p] : p, score);
  }
}

/** vectors.bin, scanned whole: fine up to ~100k points (atlas/models/ivf.py EXACT_MAX). */
async function exactLayout(entry) {
  const buffer = await fetchFile(entry, "map's vectors");
  const values = new Int8Array(buffer, entry.int8_offset, entry.count * entry.dim);
  const scales = new Float32Array(buffer, entry.scales_offset, entry.count);
  return {
    count: entry.count,
    dim: entry.dim,
    async search(query, k) {
      const best = new Best(k);
      scan(query, values, scales, entry.count, best);
      return best.answer();
    },
  };
}

/** The cluster files a session keeps in memory (the least recently used go first). */
const CLUSTER_CACHE_BYTES = 64 * 1024 * 1024;

/** The clustered layout (atlas/models/ivf.py): the centroids once, then per query the nearest
 *  clusters whose files fit in probe_bytes, each fetched once and kept while the cache has room. */
async function clusteredLayout(entry) {
  const { dim, clusters, index } = entry;
  const buffer = await fetchFile(index, "index of the map's vectors");
  const centroids = new Int8Array(buffer, index.centroids_offset, clusters * dim);
  const centroidScales = new Float32Array(buffer, index.scales_offset, clusters);
  const sizes = new Uint32Array(buffer, index.sizes_offset, clusters);
  const digests = new Uint8Array(buffer, index.digests_offset, clusters * 32);
  const cache = new Map(); // cluster -> {promise, part (once fetched)}, least recently used first
  let cachedBytes = 0;
  const pad = (n) => (4 - (n % 4)) % 4;
  const clusterBytes = (n) => n * dim + pad(n * dim) + 8 * n;

  function fetchCluster(c) {
    const hit = cache.get(c);
    if (hit) { cache.delete(c); cache.set(c, hit); return hit.promise; }
    const n = sizes[c];
    const sha256 = Array.from(digests.subarray(c * 32, c * 32 + 32), (b) => b.toString(16).padStart(2, '0')).join('');
    const file = { file: entry.cluster_file.replace('{c}', String(c)), bytes: clusterBytes(n), sha256 };
    const slot = { part: null };
    slot.promise = fetchFile(file, "part of the map's vectors").then((data) => {
      const at = n * dim + pad(n * dim);
      slot.part = { values: new Int8Array(data, 0, n * dim), scales: new Float32Array(data, at, n),
                    ids: new Uint32Array(data, at + 4 * n, n), bytes: data.byteLength };
      cachedBytes += data.byteLength;
      return slot.part;
    }, (error) => { if (cache.get(c) === slot) cache.delete(c); throw error; }); // a later query tries again
    cache.set(c, slot);
    return slot.promise;
  }

  function evict(keep) {
    for (const [c, slot] of cache) {
      if (cachedBytes <= CLUSTER_CACHE_BYTES) break;
      if (keep.has(c) || !slot.part) continue; // in use, or still arriving for another query
      cache.delete(c);
      cachedBytes -= slot.part.bytes;
    }
  }

  /** The clusters a query reads, nearest first: within probe_bytes, at least one, and at least k points. */
  function probes(query, k) {
    const score = new Float64Array(clusters);
    for (let c = 0, offset = 0; c < clusters; c += 1, offset += dim) {
      let dot = 0;
      for (let d = 0; d < dim; d += 1) dot += query[d] * centroids[offset + d];
      score[c] = dot * centroidScales[c];
    }
    const order = Array.from({ length: clusters }, (_, c) => c).sort((a, b) => score[b] - score[a] || a - b);
    const chosen = [];
    let spent = 0, points = 0;
    for (const c of order) {
      const n = sizes[c];
      if (!n) continue;
      const size = clusterBytes(n);
      if (chosen.length && spent + size > entry.probe_bytes && points >= k) break;
      chosen.push(c); spent += size; points += n;
    }
    return chosen;
  }

  return {
    count: entry.count,
    dim,
    async search(query, k) {
      const chosen = probes(query, k);
      const parts = await Promise.all(chosen.map(fetchCluster));
      const best = new Best(k);
      for (const part of parts) scan(query, part.values, part.scales, part.ids.length, best, part.ids);
      evict(new Set(chosen));
      return best.answer();
    },
  };
}

async function loadVectors() {
  const entry = (await ensureManifest()).vectors;
  return entry.kind === 'clustered' ? clusteredLayout(entry) : exactLayout(entry);
}

function ensureVectors() {
  return vectorsLoading || (vectorsLoading = loadVectors().catch((e) => { vectorsLoading = null; throw e; }));
}

function topCount(k, count) {
  return Math.max(0, Math.min(count, Math.floor(Number(k) || 10)));
}

/** The k best points by cosine to the text, best first. */
async function nearest(text, k) {
  // the vectors once the model has loaded (a broken model would make them a wasted download)
  const [{ vector }, layout] = await Promise.all([embed(text), ensureLoaded().then(ensureVectors)]);
  return layout.search(vector, topCount(k, layout.count));
}

/** The same for a vector given as it is (unit length after normalising): no model needed. */
async function nearestVector(values, k) {
  const layout = await ensureVectors();
  const vector = Float32Array.from(values || []);
  if (vector.length !== layout.dim || !vector.every(Number.isFinite)) {
    throw new TextError(`A vector of ${layout.dim} finite numbers is needed.`, 'vector');
  }
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < vector.length; i += 1) vector[i] /= norm;
  return layout.search(vector, topCount(k, layout.count));
}

self.onmessage = async (event) => {
  const { id, type, text, k } = event.data;
  try {
    if (type === 'init') {
      base = new URL(event.data.base);
      self.postMessage({ id, result: await ensureLoaded() });
    } else if (type === 'embed') {
      const { vector } = await embed(text);
      self.postMessage({ id, result: vector }, [vector.buffer]);
    } else if (type === 'nearest') {
      self.postMessage({ id, result: await nearest(text, k) });
    } else if (type === 'nearestVector') {
      if (!base) base = new URL(event.data.base);
      self.postMessage({ id, result: await nearestVector(event.data.vector, k) });
    }
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message || error), code: error && error.code || 'error' });
  }
};
