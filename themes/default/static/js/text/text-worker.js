// The caption model's worker: loads the build's ONNX export (atlas/stages/textmodel.py) into the
// vendored onnxruntime-web (WebAssembly, one thread), tokenises with our WordPiece exactly as the
// build did, and answers embed / nearest requests, so the page's main thread never runs the model
// or scans the map's vectors. Everything is fetched from the site itself, each file once.
import { WordPiece } from './wordpiece.js';

const RUNTIME = new URL('../vendor/onnxruntime-web/', import.meta.url);

class TextError extends Error {
  constructor(message, code) { super(message); this.code = code; }
}

let loading = null, vectorsLoading = null;
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

async function load() {
  manifest = await (await fetchChecked(new URL('text-model.json', base), 'description of the caption model')).json();
  if (!manifest.available) throw new TextError(manifest.reason || 'Search by meaning is not available for this atlas.', 'unavailable');
  const [runtime, model, vocab] = await Promise.all([
    import(new URL('ort.wasm.bundle.min.mjs', RUNTIME).href).catch((error) => {
      throw new TextError(`The model's runtime could not be loaded (${error.message || error}).`, 'runtime');
    }),
    fetchFile(manifest.files.model, 'caption model file'),
    fetchFile(manifest.files.vocab, "caption model's vocabulary"),
  ]);
  ort = runtime;
  ort.env.wasm.numThreads = 1; // threads need a cross-origin isolated page, which a static site is not
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = { wasm: new URL('ort-wasm-simd-threaded.wasm', RUNTIME).href };
  tokenizer = new WordPiece(new TextDecoder().decode(vocab).replace(/\n$/, '').split('\n'), manifest.tokenizer);
  try {
    session = await ort.InferenceSession.create(new Uint8Array(model), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new TextError(`The caption model could not be started (${error.message || error}).`, 'damaged');
  }
  return { model: manifest.model, dim: manifest.dim, quantisation: manifest.quantisation, bytes: manifest.files.model.bytes };
}

function ensureLoaded() {
  if (!loading) loading = load().catch((error) => { loading = null; throw error; }); // a later call tries again
  return loading;
}

async function embed(text) {
  await ensureLoaded();
  const ids = tokenizer.encode(typeof text === 'string' ? text : String(text ?? ''));
  if (ids.length <= 2) throw new TextError('There is nothing to embed: the text is empty (or only spaces and invisible characters).', 'empty');
  const shape = [1, ids.length];
  const feeds = {
    [manifest.inputs[0]]: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), shape),
    [manifest.inputs[1]]: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), shape),
  };
  const output = await session.run(feeds);
  const vector = Float32Array.from(output[manifest.output].data);
  let norm = 0;
  for (const v of vector) norm += v * v;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < vector.length; i += 1) vector[i] /= norm;
  return { vector, tokens: ids.length };
}

async function loadVectors() {
  await ensureLoaded();
  const entry = manifest.vectors;
  const buffer = await fetchFile(entry, "map's vectors");
  return {
    count: entry.count, dim: entry.dim,
    values: new Int8Array(buffer, entry.int8_offset, entry.count * entry.dim),
    scales: new Float32Array(buffer, entry.scales_offset, entry.count),
  };
}

/** The k best points by cosine, best first: an exact scan (fine up to ~100k points). */
async function nearest(text, k) {
  const [{ vector }, vectors] = await Promise.all([embed(text), vectorsLoading || (vectorsLoading = loadVectors().catch((e) => { vectorsLoading = null; throw e; }))]);
  const { count, dim, values, scales } = vectors;
  k = Math.max(0, Math.min(count, Math.floor(Number(k) || 10)));
  const ids = new Int32Array(k).fill(-1), scores = new Float32Array(k).fill(-Infinity);
  for (let p = 0, offset = 0; p < count; p += 1, offset += dim) {
    let dot = 0;
    for (let d = 0; d < dim; d += 1) dot += vector[d] * values[offset + d];
    const score = dot * scales[p];
    if (k === 0 || score <= scores[k - 1]) continue;
    let i = k - 1;
    while (i > 0 && scores[i - 1] < score) { scores[i] = scores[i - 1]; ids[i] = ids[i - 1]; i -= 1; }
    scores[i] = score; ids[i] = p;
  }
  return { ids: Array.from(ids), scores: Array.from(scores, (s) => Math.round(s * 1e6) / 1e6) };
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
    }
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message || error), code: error && error.code || 'error' });
  }
};
