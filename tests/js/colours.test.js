import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CATEGORICAL, MISSING, OTHER, computeColours, filterBytes, hexToRgb, legendFor, rampLut,
} from '../../themes/default/static/js/map/colours.js';
import { childColours, hexToHsl, hslToHex, parentsOf, quantileLut } from '../../themes/default/static/js/map/colours.js';
import { checkMeta } from '../../themes/default/static/js/map/data.js';
import { pointStyle } from '../../themes/default/static/js/map/draw.js';
import { ENCODING, makeMeta, makePoints } from './fixtures.js';

const rgbAt = (rgba, i) => [rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2]];

test('filterBytes maps a score range onto the stored bytes, null when it keeps all', () => {
  const score = { min: 2, max: 8 };
  assert.equal(filterBytes(score, null, 254), null);
  assert.equal(filterBytes(score, [2, 8], 254), null);
  assert.equal(filterBytes(score, [1, 9], 254), null);
  assert.deepEqual(filterBytes(score, [5, 8], 254), [127, 254]);
  assert.deepEqual(filterBytes(score, [2, 5], 254), [0, 127]);
  assert.deepEqual(filterBytes(score, [5, 8], 100), [50, 100]);  // the encoding's top, not a constant
  const flat = filterBytes({ min: 3, max: 3 }, [3.5, 4], 254);  // a zero-width range does not divide by zero
  assert.ok(flat.every(Number.isFinite));
});

test('rampLut spans the encoding and gives missing values their own colour', () => {
  const lut = rampLut(ENCODING);
  assert.deepEqual([...lut.subarray(255 * 3, 256 * 3)], hexToRgb(MISSING));
  assert.notDeepEqual([...lut.subarray(0, 3)], [...lut.subarray(254 * 3, 255 * 3)]);
  const small = rampLut({ score_max: 10, score_missing: 11 });
  assert.deepEqual([...small.subarray(10 * 3, 11 * 3)], [...lut.subarray(254 * 3, 255 * 3)]);
  assert.deepEqual([...small.subarray(11 * 3, 12 * 3)], hexToRgb(MISSING));
});

test('computeColours colours by cluster, hides filtered points and counts the visible ones', () => {
  const meta = makeMeta();
  const points = makePoints({ xy: [[0, 0], [1, 1], [2, 2], [3, 3]], domain: [0, 0, 1, 2], cluster: [0, 1, 65535, 1],
    aesthetic: [0, 254, 127, 255] });
  const rgba = new Uint8Array(16), visible = new Uint8Array(4);
  assert.equal(computeColours(points, meta, { colour: 'cluster', filters: {} }, rgba, visible), 4);
  assert.deepEqual(rgbAt(rgba, 0), hexToRgb(CATEGORICAL[0]));
  assert.deepEqual(rgbAt(rgba, 1), hexToRgb(CATEGORICAL[1]));
  assert.deepEqual(rgbAt(rgba, 2), hexToRgb(OTHER));  // no_cluster
  // A filter on aesthetic ≥ 5 keeps bytes ≥ 127; a missing score never passes a filter.
  const shown = computeColours(points, meta, { colour: 'domain', filters: { aesthetic: [5, 8] } }, rgba, visible);
  assert.equal(shown, 2);
  assert.deepEqual([...visible], [0, 1, 1, 0]);
  assert.deepEqual([rgba[3], rgba[7], rgba[11], rgba[15]], [0, 255, 255, 0]);
  assert.deepEqual(rgbAt(rgba, 2), hexToRgb(CATEGORICAL[1]));
  // Colour by a score: the ramp's ends and the missing colour.
  computeColours(points, meta, { colour: 'aesthetic', filters: {} }, rgba, visible);
  const lut = rampLut(ENCODING);
  assert.deepEqual(rgbAt(rgba, 1), [...lut.subarray(254 * 3, 255 * 3)]);
  assert.deepEqual(rgbAt(rgba, 3), hexToRgb(MISSING));
});

test('legendFor describes the colouring the map shows', () => {
  const meta = makeMeta();
  const clusters = legendFor(meta, 'cluster');
  assert.equal(clusters.kind, 'categorical');
  assert.deepEqual(clusters.items.map((i) => i.label), ['Dogs', 'Cats']);  // biggest first
  const domains = legendFor(meta, 'domain');
  assert.equal(domains.items.at(-1).colour, OTHER);
  const ramp = legendFor(meta, 'aesthetic');
  assert.deepEqual([ramp.kind, ramp.min, ramp.max], ['continuous', 2, 8]);
  assert.equal(legendFor(meta, 'nonsense').kind, 'none');
});

test('checkMeta refuses map data without the binary encoding', () => {
  assert.doesNotThrow(() => checkMeta(makeMeta()));
  assert.throws(() => checkMeta(makeMeta({ encoding: undefined })), /rebuild the site/);
  assert.throws(() => checkMeta(makeMeta({ encoding: { ...ENCODING, xy_max: 'big' } })), /rebuild/);
});

test('pointStyle: fewer points on screen are drawn bigger and more opaque', () => {
  const dense = pointStyle(1_000_000, 0.5, 800);
  const sparse = pointStyle(1_000, 0.5, 800);
  assert.ok(sparse.size > dense.size && sparse.opacity >= dense.opacity);
  for (const s of [dense, sparse, pointStyle(0, 0, 0)]) {
    assert.ok(s.size >= 1.5 && s.size <= 12 && s.opacity >= 0.1 && s.opacity <= 0.92);
  }
});

test('hexToHsl and hslToHex round-trip', () => {
  for (const hex of ['#4e9cf5', '#f28e2b', '#000000', '#ffffff', '#808080', '#e15759']) {
    assert.equal(hslToHex(hexToHsl(hex)), hex);
  }
});

test('parentsOf: each fine cluster belongs to the coarse cluster holding most of its points', () => {
  const none = 65535;
  const fine = Uint16Array.from([0, 0, 0, 1, 1, 2, none, 3]);
  const coarse = Uint16Array.from([1, 1, 0, 0, 0, 1, 0, none]);
  assert.deepEqual(parentsOf(fine, coarse, 5, 2, none), [1, 0, 1, -1, -1]);
});

test('childColours keep the parent hue family, differ between siblings, and the biggest sibling keeps the parent colour', () => {
  const parentColours = ['#4e9cf5', '#f28e2b'];
  const parents = [0, 0, 1, 0, 1, -1];
  const sizes = [5, 50, 9, 7, 3, 1];
  const colours = childColours(parentColours, parents, sizes);
  assert.equal(colours.length, 6);
  assert.equal(colours[1], '#4e9cf5');  // the biggest child of parent 0
  assert.equal(colours[2], '#f28e2b');
  const hueGap = (a, b) => { const d = Math.abs(hexToHsl(a)[0] - hexToHsl(b)[0]); return Math.min(d, 360 - d); };
  for (const [i, p] of parents.entries()) if (p >= 0) assert.ok(hueGap(colours[i], parentColours[p]) <= 20, `${i}: ${colours[i]}`);
  assert.equal(new Set(colours.slice(0, 5)).size, 5);
  assert.ok(hueGap(colours[0], parentColours[1]) > 60);  // a child of blue is not orange
  assert.match(colours[5], /^#[0-9a-f]{6}$/);  // an orphan is grey-ish, still a colour
});

test('quantileLut spreads a skewed score over the whole ramp and reports its quartiles', () => {
  const enc = { score_max: 254, score_missing: 255 };
  const counts = new Uint32Array(255);
  counts[0] = 100; counts[1] = 100; counts[2] = 100; counts[3] = 100; counts[254] = 1;  // punsafe-like: crowded at 0
  const { lut, ticks } = quantileLut(counts, enc);
  const plain = rampLut(enc);
  const rgb = (table, v) => Array.from(table.slice(v * 3, v * 3 + 3));
  // The plain ramp paints bytes 0..3 almost alike; the fitted one spreads them apart.
  const spread = (table) => rgb(table, 3).reduce((acc, c, k) => acc + Math.abs(c - rgb(table, 0)[k]), 0);
  assert.ok(spread(lut) > 4 * spread(plain), `${spread(lut)} vs ${spread(plain)}`);
  assert.deepEqual(ticks, [0, 1, 2, 3, 254]);  // the byte where 0, 25, 50, 75, 100% of points are reached
  assert.deepEqual(rgb(lut, 255), rgb(plain, 255));  // missing keeps its colour
  const empty = quantileLut(new Uint32Array(255), enc);
  assert.equal(empty.ticks.length, 5);
});
