import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fnv1a, fold, parseQuery, termKey, tokens } from '../../themes/default/static/js/map/text.js';
import {
  evaluate, intersect, parsePositions, parseShard, postings, rank, union,
} from '../../themes/default/static/js/map/index.js';
import { visibleRange } from '../../themes/default/static/js/map/results.js';

test('fold removes case and accents the way the index writer does', () => {
  assert.equal(fold('Crème BRÛLÉE'), 'creme brulee');
  assert.equal(fold('Straße'), 'strasse');
  assert.equal(fold('ΟΔΟΣ'), 'οδοσ');  // final sigma folds to sigma
  assert.equal(fold('ﬁne Ｆｕｌｌ'), 'fine full');  // compatibility forms
  assert.equal(fold(null), '');
});

test('fold sees through compatibility forms and characters a reader never sees', () => {
  assert.equal(fold('ｐｏｒｎ 𝐩𝐨𝐫𝐧 ⓝⓤⓓⓔ ⒫⒪⒭⒩ ᵖᵒʳⁿ ﬁsting STRAẞE'), 'porn porn nude porn porn fisting strasse');
  // soft hyphen, zero-width joiner, non-joiner and space, right-to-left and left-to-right marks
  assert.deepEqual(tokens('p\u00adorn p\u200dorn p\u200corn p\u200born \u200fp\u200eorn\u200f'), Array(5).fill('porn'));
  assert.equal(fold(fold('STRAẞE')), fold('STRAẞE'));
});

test('tokens are whole Unicode words; CJK characters are words of their own', () => {
  assert.deepEqual(tokens('Cat-shaped cathedral, 42cm!'), ['cat', 'shaped', 'cathedral', '42cm']);
  assert.deepEqual(tokens('東京タワー at night'), ['東', '京', 'タ', 'ワ', 'ー', 'at', 'night']);
  assert.deepEqual(tokens('Ελληνικά Русский café'), ['ελληνικα', 'русскии', 'cafe']);
  assert.deepEqual(tokens('<img src=x onerror="1">'), ['img', 'src', 'x', 'onerror', '1']);
  assert.deepEqual(tokens(''), []);
});

test('fnv1a and termKey match the writer (UTF-8 bytes, characters not UTF-16 units)', () => {
  assert.equal(fnv1a(''), 0x811c9dc5);
  assert.equal(fnv1a('a'), 0xe40c292c);
  assert.equal(fnv1a('foobar'), 0xbf9cf968);
  assert.equal(termKey('dresses', 3), 'dre');
  assert.equal(termKey('𝒜𝒷𝒸𝒹', 3), '𝒜𝒷𝒸');
  assert.equal(termKey('at', 3), 'at');
});

test('parseQuery: words, quoted phrases, split words as phrases, prefix only on a last bare word', () => {
  assert.deepEqual(parseQuery('Red  DRESS'), [{ words: ['red'] }, { words: ['dress'] }]);
  assert.deepEqual(parseQuery('"red dress" summer'), [{ words: ['red', 'dress'] }, { words: ['summer'] }]);
  assert.deepEqual(parseQuery('t-shirt'), [{ words: ['t', 'shirt'] }]);
  assert.deepEqual(parseQuery('"unclosed phrase'), [{ words: ['unclosed', 'phrase'] }]);
  assert.deepEqual(parseQuery('cat cat'), [{ words: ['cat'] }]);
  assert.deepEqual(parseQuery('red dre', { prefix: true }), [{ words: ['red'] }, { words: ['dre'], prefix: true }]);
  assert.deepEqual(parseQuery('red dre ', { prefix: true }), [{ words: ['red'] }, { words: ['dre'] }]);
  assert.deepEqual(parseQuery('dr', { prefix: true }), [{ words: ['dr'] }]);  // too short to complete
  assert.deepEqual(parseQuery('"red dre"', { prefix: true }), [{ words: ['red', 'dre'] }]);
  assert.deepEqual(parseQuery('  ""  !!! '), []);
});

test('intersect, union and rank on sorted ids', () => {
  assert.deepEqual([...intersect(Uint32Array.of(1, 3, 5, 9), Uint32Array.of(3, 4, 5, 10))], [3, 5]);
  assert.deepEqual([...intersect(Uint32Array.of(), Uint32Array.of(1))], []);
  assert.deepEqual([...union([Uint32Array.of(1, 5), Uint32Array.of(2, 5, 7), Uint32Array.of()])], [1, 2, 5, 7]);
  assert.deepEqual([...union([])], []);
  const quality = Uint8Array.of(10, 200, 255, 200, 0);
  // Exact word first, then quality (missing lowest), then id.
  assert.deepEqual([...rank(Uint32Array.of(0, 1, 2, 3, 4), Uint32Array.of(0, 2), quality, 255)], [0, 2, 1, 3, 4]);
  assert.deepEqual([...rank(Uint32Array.of(0, 1, 2, 3, 4), null, quality, 255)], [1, 3, 0, 4, 2]);
  assert.deepEqual([...rank(Uint32Array.of(2, 4), null, null, 255)], [2, 4]);
});

// A tiny shard written here the way atlas/stages/search.py writes one.
function varints(values) {
  const out = [];
  for (let v of values) { while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); } out.push(v); }
  return out;
}
function shardBytes(terms) {  // terms: [[word, [[doc, [positions]]...]]...] sorted by word
  const enc = new TextEncoder();
  const head = [...enc.encode('ATI1'), ...varints([terms.length])];
  const body = [], pos = [];
  let previous = new Uint8Array(0);
  for (const [word, posts] of terms) {
    const raw = enc.encode(word);
    let shared = 0;
    while (shared < Math.min(raw.length, previous.length) && raw[shared] === previous[shared]) shared++;
    head.push(...varints([shared, raw.length - shared]), ...raw.subarray(shared), ...varints([posts.length]));
    previous = raw;
    let last = -1;
    for (const [doc, at] of posts) {
      body.push(...varints([doc - last]));
      last = doc;
      pos.push(...varints([at[0] * 2 + (at.length > 1 ? 1 : 0)]));
      if (at.length > 1) pos.push(...varints([at.length - 2, ...at.slice(1).map((p, j) => p - at[j])]));
    }
  }
  return [Uint8Array.from([...head, ...body]).buffer, Uint8Array.from(pos).buffer];
}

test('a shard decodes to its words, postings and positions; queries evaluate over it', async () => {
  const [terms, positions] = shardBytes([
    ['dress', [[2, [1]], [300, [0, 5]], [301, [4]]]],
    ['dresser', [[7, [0]]]],
    ['red', [[2, [0]], [300, [4]], [301, [5]], [999, [3]]]],
  ]);
  const shard = parseShard(terms);
  assert.deepEqual(shard.words, ['dress', 'dresser', 'red']);
  assert.deepEqual([...postings(shard, 'red')], [2, 300, 301, 999]);
  assert.deepEqual([...postings(shard, 'blue')], []);
  const pos = parsePositions(positions, shard);
  assert.deepEqual([...pos.positions.subarray(pos.at[1], pos.at[2])], [0, 5]);
  assert.throws(() => parseShard(new Uint8Array([1, 2, 3, 4]).buffer), /not a terms shard/);
  // Every word in the one shard (shards: 1).
  const info = { shards: 1, key_len: 3 };
  const source = { terms: async () => shard, positions: async () => pos };
  const ids = async (q, o) => [...(await evaluate(q, info, source, o)).ids];
  assert.deepEqual(await ids('red dress'), [2, 300, 301]);
  assert.deepEqual(await ids('"red dress"'), [2, 300]);  // adjacent and in order
  assert.deepEqual(await ids('"dress red"'), [301]);
  assert.deepEqual(await ids('dre', { prefix: true }), [2, 7, 300, 301]);
  assert.deepEqual(await ids('dre'), []);
  const { exact } = await evaluate('dress', info, source, { prefix: true });
  assert.deepEqual([...exact], [2, 300, 301]);
  assert.deepEqual(await ids(''), []);
});

test('visibleRange draws the rows in view plus a margin, within the list', () => {
  assert.deepEqual(visibleRange(0, 340, 68, 1000), [0, 9]);
  assert.deepEqual(visibleRange(68 * 500, 340, 68, 1000), [496, 509]);
  assert.deepEqual(visibleRange(68 * 999, 340, 68, 1000), [995, 1000]);
  assert.deepEqual(visibleRange(0, 340, 68, 0), [0, 0]);
});
