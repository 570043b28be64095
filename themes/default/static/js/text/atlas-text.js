// The page's side of the in-browser caption model: window.__atlasText (README, "The map page").
// Nothing is fetched until the first use (reading `ready`, or calling embed / nearest): then the
// worker (text-worker.js) downloads the model once and the browser's HTTP cache keeps it.
// The page tag names the model's folder (data-model) or, when the atlas ships none, the reader's
// reason (data-unavailable): <script type="module" id="atlas-text" src="…/atlas-text.js" data-model="../model/">

// The smallest module using a SIMD instruction (as wasm-feature-detect checks): the runtime is SIMD only.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

/** Why this browser cannot run the model, or null. */
export function unsupported(scope = globalThis) {
  if (typeof scope.Worker === 'undefined') return 'Search by meaning needs a browser that runs background scripts (Web Workers); this one does not.';
  const wasm = scope.WebAssembly;
  if (typeof wasm === 'undefined' || typeof wasm.validate !== 'function') return 'Search by meaning needs WebAssembly, which this browser does not offer (or has switched off).';
  try {
    if (!wasm.validate(SIMD_PROBE)) return 'Search by meaning needs WebAssembly SIMD, which this browser does not support; a recent Chrome, Firefox, Safari or Edge does.';
  } catch { return 'Search by meaning needs WebAssembly SIMD, which this browser does not support.'; }
  return null;
}

/** The handle: { available, ready (getter: starts the load), embed(text), nearest(text, k) }. */
export function createTextModel({ base, unavailable = null, workerUrl = new URL('./text-worker.js', import.meta.url) }) {
  let worker = null, loaded = null, next = 0;
  const pending = new Map();

  const fail = (message, code) => Object.assign(new Error(message), { code });

  const absoluteBase = () => new URL(base, document.baseURI).href;

  /** The worker, started once (nothing is fetched until a request asks for it). */
  function spawn() {
    if (worker) return Promise.resolve();
    const reason = unavailable ? null : unsupported();
    if (unavailable || reason) return Promise.reject(fail(unavailable || reason, unavailable ? 'unavailable' : 'unsupported'));
    try {
      worker = new Worker(workerUrl, { type: 'module' });
    } catch (error) {
      return Promise.reject(fail(`Search by meaning could not start (${error.message || error}).`, 'unsupported'));
    }
    worker.onmessage = (event) => {
      const { id, result, error, code } = event.data;
      const job = pending.get(id);
      if (!job) return;
      pending.delete(id);
      if (error) job.reject(fail(error, code)); else job.resolve(result);
    };
    worker.onerror = (event) => { // the worker's script itself failed (say, it could not be fetched)
      event.preventDefault();
      stop(fail(`Search by meaning could not start (${event.message || 'its script failed to load'}).`, 'runtime'));
    };
    return Promise.resolve();
  }

  /** The worker ended: every request still waiting gets the error. */
  function stop(error) {
    if (worker) worker.terminate();
    worker = null;
    loaded = null;
    for (const job of pending.values()) job.reject(error);
    pending.clear();
  }

  function start() {
    return spawn().then(() => call('init', { base: absoluteBase() }));
  }

  function call(type, payload = {}) {
    if (!worker) return Promise.reject(fail('Search by meaning is not running.', 'runtime'));
    const id = ++next;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, type, ...payload });
    });
  }

  function ensure() {
    if (!loaded) loaded = start().catch((error) => { stop(error); throw error; });
    return loaded;
  }

  return {
    /** Whether this atlas ships a model at all (the browser may still be unable to run it). */
    available: !unavailable,
    /** Resolves with {model, dim, quantisation, bytes} once the model is loaded; reading it starts the load. */
    get ready() { return ensure(); },
    /** The text's unit-length vector, as the build embedded the captions (rejects for an empty text). */
    embed: (text) => ensure().then(() => call('embed', { text: String(text ?? '') })),
    /** The map points nearest to the text: {ids, scores} (cosine), best first. */
    nearest: (text, k = 10) => ensure().then(() => call('nearest', { text: String(text ?? ''), k })),
    /** The same search for a vector of the model's dimension (normalised first); loads no model. */
    nearestVector: (vector, k = 10) => spawn().then(() => call('nearestVector', { base: absoluteBase(), vector: Float32Array.from(vector ?? []), k })),
  };
}

const tag = typeof document !== 'undefined' ? document.getElementById('atlas-text') : null;
if (tag && !globalThis.__atlasText) {
  globalThis.__atlasText = createTextModel({
    base: tag.dataset.model || '../model/',
    unavailable: tag.dataset.model ? null : (tag.dataset.unavailable || 'Search by meaning is not available for this atlas.'),
  });
}
