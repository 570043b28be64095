// The search worker: fetches index shards on demand (each once), evaluates queries and ranks the
// matches, so the page's main thread never decodes postings.
import { evaluate, parsePositions, parseShard, rank } from './index.js';

let info = null, base = '', quality = null, missing = -1, fetched = 0;
const terms = new Map(), positions = new Map();

async function getBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const buffer = await response.arrayBuffer();
  fetched += buffer.byteLength;
  return buffer;
}

const name = (i) => String(i).padStart(4, '0');
const source = {
  terms(i) {
    if (!terms.has(i)) terms.set(i, getBytes(`${base}terms/${name(i)}.bin`).then(parseShard).catch((e) => { terms.delete(i); throw e; }));
    return terms.get(i);
  },
  positions(i) {
    if (!positions.has(i)) {
      positions.set(i, Promise.all([getBytes(`${base}pos/${name(i)}.bin`), source.terms(i)])
        .then(([buffer, shard]) => parsePositions(buffer, shard)).catch((e) => { positions.delete(i); throw e; }));
    }
    return positions.get(i);
  },
};

let ready = null;
self.onmessage = async (event) => {
  const message = event.data;
  try {
    if (message.type === 'init') {
      base = message.base;
      quality = message.quality;
      missing = message.missing;
      ready = (async () => {
        const response = await fetch(`${base}index.json`);
        if (!response.ok) throw new Error(`search index: HTTP ${response.status}`);
        info = await response.json();
        return info;
      })();
      const loaded = await ready;
      self.postMessage({ id: message.id, info: loaded });
    } else if (message.type === 'search') {
      await ready;
      const { ids, exact } = await evaluate(message.query, info, source, { prefix: message.prefix });
      const ranked = rank(ids, exact, quality, missing);
      self.postMessage({ id: message.id, total: ranked.length, ids: ranked, bytes: fetched }, [ranked.buffer]);
    }
  } catch (error) {
    self.postMessage({ id: message.id, error: String(error && error.message || error) });
  }
};
