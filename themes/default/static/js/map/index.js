// Reading the search index (atlas/stages/search.py): shard files of front-coded terms with
// varint-gap postings, position files for phrases, and query evaluation over them. Pure: the
// worker (search-worker.js) supplies the fetching.
import { parseQuery, termKey, fnv1a } from './text.js';

const MAGIC = 'ATI1';
const decoder = new TextDecoder();

/** LEB128 varint reader over a Uint8Array. */
class Reader {
  constructor(bytes, offset = 0) {
    this.bytes = bytes;
    this.i = offset;
  }

  next() {
    let value = 0, shift = 0, byte;
    do {
      if (this.i >= this.bytes.length) throw new Error('search index: truncated varint');
      byte = this.bytes[this.i++];
      value += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte >= 0x80);
    return value;
  }
}

/** A terms shard: { words, index: Map(word -> i), df, starts (into docs), docs: Uint32Array, bytes }. */
export function parseShard(buffer) {
  const bytes = new Uint8Array(buffer);
  if (decoder.decode(bytes.subarray(0, 4)) !== MAGIC) throw new Error('search index: not a terms shard');
  const r = new Reader(bytes, 4);
  const count = r.next();
  const words = new Array(count), df = new Uint32Array(count), starts = new Uint32Array(count + 1);
  const index = new Map();
  let previous = new Uint8Array(0);
  for (let t = 0; t < count; t++) {
    const shared = r.next(), length = r.next();
    const word = new Uint8Array(shared + length);
    word.set(previous.subarray(0, shared));
    word.set(bytes.subarray(r.i, r.i + length), shared);
    r.i += length;
    df[t] = r.next();
    starts[t + 1] = starts[t] + df[t];
    words[t] = decoder.decode(word);
    index.set(words[t], t);
    previous = word;
  }
  const docs = new Uint32Array(starts[count]);
  for (let t = 0, k = 0; t < count; t++) {
    let doc = -1;
    for (let j = 0; j < df[t]; j++) { doc += r.next(); docs[k++] = doc; }
  }
  return { words, index, df, starts, docs, bytes: bytes.length };
}

/** Positions of a shard's postings: posting k's positions are positions[at[k] .. at[k + 1]). */
export function parsePositions(buffer, shard) {
  const r = new Reader(new Uint8Array(buffer));
  const n = shard.docs.length;
  const at = new Uint32Array(n + 1);
  const out = [];
  for (let k = 0; k < n; k++) {
    const head = r.next();
    let p = Math.floor(head / 2);
    out.push(p);
    if (head & 1) {
      const tf = r.next() + 2;
      for (let j = 1; j < tf; j++) { p += r.next(); out.push(p); }
    }
    at[k + 1] = out.length;
  }
  return { at, positions: Uint32Array.from(out) };
}

/** A word's point ids (a view into the shard), empty when the shard does not have it. */
export function postings(shard, word) {
  const t = shard.index.get(word);
  return t === undefined ? new Uint32Array(0) : shard.docs.subarray(shard.starts[t], shard.starts[t + 1]);
}

/** Sorted ids in both sorted arrays. */
export function intersect(a, b) {
  const out = new Uint32Array(Math.min(a.length, b.length));
  let i = 0, j = 0, k = 0;
  while (i < a.length && j < b.length) {
    if (a[i] < b[j]) i++;
    else if (a[i] > b[j]) j++;
    else { out[k++] = a[i]; i++; j++; }
  }
  return out.slice(0, k);
}

/** Sorted unique ids in any of the sorted arrays. */
export function union(lists) {
  if (lists.length === 1) return lists[0].slice();
  const all = new Uint32Array(lists.reduce((s, l) => s + l.length, 0));
  let k = 0;
  for (const list of lists) { all.set(list, k); k += list.length; }
  all.sort();
  let w = 0;
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) all[w++] = all[i];
  return all.slice(0, w);
}

function lowerBound(array, value, lo = 0, hi = array.length) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (array[mid] < value) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** The positions of `word` in point `doc` (a view), or null. */
function positionsOf(shard, pos, word, doc) {
  const t = shard.index.get(word);
  if (t === undefined) return null;
  const k = lowerBound(shard.docs, doc, shard.starts[t], shard.starts[t + 1]);
  if (k >= shard.starts[t + 1] || shard.docs[k] !== doc) return null;
  return pos.positions.subarray(pos.at[k], pos.at[k + 1]);
}

/**
 * Evaluate a query. `source` loads files: `terms(shardIndex)` and `positions(shardIndex)` resolve
 * to parsed shards; `info` is index.json. Returns { ids (sorted Uint32Array), exact (ids whose
 * completed word is the typed word itself, for ranking) }.
 */
export async function evaluate(query, info, source, { prefix = false, maxExpansions = 24 } = {}) {
  const clauses = parseQuery(query, { prefix, keyLen: info.key_len });
  if (!clauses.length) return { ids: new Uint32Array(0), exact: null, clauses };
  const shardOf = (word) => fnv1a(termKey(word, info.key_len)) % info.shards;
  const results = [];
  let exact = null;
  for (const clause of clauses) {
    const { words } = clause;
    if (clause.prefix) {
      const shard = await source.terms(shardOf(words[0]));
      const hits = [];
      for (let t = 0; t < shard.words.length; t++) if (shard.words[t].startsWith(words[0])) hits.push(t);
      hits.sort((a, b) => shard.df[b] - shard.df[a]);
      results.push(union(hits.slice(0, maxExpansions).map((t) => postings(shard, shard.words[t]))));
      exact = postings(shard, words[0]);
      continue;
    }
    const shards = await Promise.all(words.map((w) => source.terms(shardOf(w))));
    let ids = postings(shards[0], words[0]);
    for (let j = 1; j < words.length && ids.length; j++) ids = intersect(ids, postings(shards[j], words[j]));
    if (words.length > 1 && ids.length) {
      const pos = await Promise.all(words.map((w) => source.positions(shardOf(w))));
      const keep = [];
      for (const doc of ids) {
        const lists = words.map((w, j) => positionsOf(shards[j], pos[j], w, doc));
        if (lists.every(Boolean) && lists[0].some((p) => lists.every((l, j) => l.includes(p + j)))) keep.push(doc);
      }
      ids = Uint32Array.from(keep);
    }
    results.push(ids);
  }
  results.sort((a, b) => a.length - b.length);
  let ids = results[0].slice();
  for (let j = 1; j < results.length && ids.length; j++) ids = intersect(ids, results[j]);
  return { ids, exact, clauses };
}

/**
 * Rank ids: the typed word itself before its completions, then by `quality` (a score byte per
 * point, higher first; `missing` lowest), then by id. A counting sort: linear in the matches.
 */
export function rank(ids, exact, quality, missing) {
  const exactSet = exact ? new Set(exact) : null;
  const keyOf = (id) => {
    const q = quality ? quality[id] : 0;
    const score = quality && q !== missing ? q + 1 : 0;
    return (exactSet && !exactSet.has(id) ? 0 : 512) + score;
  };
  const counts = new Uint32Array(1025);
  for (const id of ids) counts[1023 - keyOf(id) + 1]++;
  for (let k = 1; k < counts.length; k++) counts[k] += counts[k - 1];
  const out = new Uint32Array(ids.length);
  for (const id of ids) out[counts[1023 - keyOf(id)]++] = id;
  return out;
}
