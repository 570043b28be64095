import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  binRange, boxPolygon, csvCell, histogram, pageOf, parseRegion, pointInPolygon, pointsInPolygon, simplify,
  sortByScore, toCsv,
} from '../../themes/default/static/js/map/selection.js';
import { failMasks, passingOthers } from '../../themes/default/static/js/map/crossfilter.js';
import { channels, filterChecks } from '../../themes/default/static/js/map/colours.js';
import { neighbourRow } from '../../themes/default/static/js/map/neighbours.js';
import { imageUrl } from '../../themes/default/static/js/map/data.js';
import { hierarchy, nearestInCluster } from '../../themes/default/static/js/map/toc.js';
import { densityGrid, densityOpacity, densityPixels } from '../../themes/default/static/js/map/density.js';
import { ENCODING } from './fixtures.js';

const MAX = ENCODING.xy_max;
const q = (v) => Math.round(v * MAX);

test('pointInPolygon: inside, outside, a concave notch and a self-crossing (even-odd) lasso', () => {
  const square = boxPolygon([0, 0], [1, 1]);
  assert.equal(pointInPolygon(0.5, 0.5, square), true);
  assert.equal(pointInPolygon(1.5, 0.5, square), false);
  assert.equal(pointInPolygon(-0.01, 0.5, square), false);
  // A "C" shape: the notch on the right is outside.
  const c = [[0, 0], [1, 0], [1, 0.3], [0.3, 0.3], [0.3, 0.7], [1, 0.7], [1, 1], [0, 1]];
  assert.equal(pointInPolygon(0.15, 0.5, c), true);
  assert.equal(pointInPolygon(0.6, 0.5, c), false);
  assert.equal(pointInPolygon(0.6, 0.15, c), true);
  // A bow tie: both lobes in, the crossing's surroundings above and below out.
  const bow = [[0, 0], [1, 1], [1, 0], [0, 1]];
  assert.equal(pointInPolygon(0.1, 0.5, bow), true);
  assert.equal(pointInPolygon(0.9, 0.5, bow), true);
  assert.equal(pointInPolygon(0.5, 0.1, bow), false);
});

test('pointsInPolygon selects the quantised points inside, honours keep, and needs three finite vertices', () => {
  const pts = [[0.1, 0.1], [0.5, 0.5], [0.52, 0.48], [0.9, 0.9], [0.5, 0.95]];
  const xy = Uint16Array.from(pts.flatMap(([x, y]) => [q(x), q(y)]));
  const tri = [[0.3, 0.3], [0.8, 0.3], [0.55, 0.8]];
  assert.deepEqual(Array.from(pointsInPolygon(xy, pts.length, MAX, tri)), [1, 2]);
  assert.deepEqual(Array.from(pointsInPolygon(xy, pts.length, MAX, tri, (i) => i !== 2)), [1]);
  assert.deepEqual(Array.from(pointsInPolygon(xy, pts.length, MAX, boxPolygon([0, 0], [1, 1]))), [0, 1, 2, 3, 4]);
  assert.equal(pointsInPolygon(xy, pts.length, MAX, [[0, 0], [1, 1]]).length, 0);
  assert.equal(pointsInPolygon(xy, pts.length, MAX, [[0, 0], [NaN, 1], [1, Infinity]]).length, 0);
  assert.equal(pointsInPolygon(xy, pts.length, MAX, null).length, 0);
  // A box given by its corners in either order.
  assert.deepEqual(Array.from(pointsInPolygon(xy, pts.length, MAX, boxPolygon([0.95, 0.99], [0.45, 0.85]))), [3, 4]);
});

test('histogram bins score bytes, leaves the missing byte out, and counts only the given ids', () => {
  const top = 254, missing = 255;
  // interleaved: stride 2, offset 1 is the score we count
  const bytes = Uint8Array.from([9, 0, 9, 254, 9, 127, 9, missing, 9, 128, 9, 63]);
  assert.deepEqual(Array.from(histogram(bytes, 2, 1, top, 4)), [2, 1, 1, 1]);
  assert.deepEqual(Array.from(histogram(bytes, 2, 1, top, 4, [1, 3])), [0, 0, 0, 1]);
  assert.deepEqual(Array.from(histogram(bytes, 2, 1, top, 1)), [5]);
  assert.deepEqual(Array.from(histogram(bytes, 2, 1, top, 4, [])), [0, 0, 0, 0]);
});

test('binRange covers whole bins in bytes, in either drag direction, clamped', () => {
  assert.deepEqual(binRange(0, 0, 254, 40), [0, 6]);
  assert.deepEqual(binRange(39, 39, 254, 40), [249, 254]);
  // Every byte lies in the range of the bin histogram() counts it in.
  for (let v = 0; v <= 254; v++) {
    const counts = histogram(Uint8Array.of(v), 1, 0, 254, 40);
    const bin = counts.indexOf(1);
    const [lo, hi] = binRange(bin, bin, 254, 40);
    assert.ok(lo <= v && v <= hi, `byte ${v} in bin ${bin} = [${lo}, ${hi}]`);
  }
  assert.deepEqual(binRange(10, 5, 254, 40), binRange(5, 10, 254, 40));
  assert.deepEqual(binRange(-3, 99, 254, 40), [0, 254]);
  // Adjacent bins share no byte and leave no gap.
  const [, hi] = binRange(0, 4, 254, 40);
  const [lo] = binRange(5, 5, 254, 40);
  assert.equal(lo, hi + 1);
});

test('sortByScore orders by the byte, missing values last either way, ties stable', () => {
  const bytes = Uint8Array.from([5, 255, 9, 5, 0]);
  assert.deepEqual(sortByScore([0, 1, 2, 3, 4], bytes, 1, 0, 254, true), [2, 0, 3, 4, 1]);
  assert.deepEqual(sortByScore([0, 1, 2, 3, 4], bytes, 1, 0, 254, false), [4, 0, 3, 2, 1]);
  assert.deepEqual(sortByScore([], bytes, 1, 0, 254), []);
});

test('pageOf clamps the page and counts pages', () => {
  const ids = Array.from({ length: 53 }, (_, i) => i);
  assert.deepEqual(pageOf(ids, 2, 25), { rows: [50, 51, 52], page: 2, pages: 3 });
  assert.equal(pageOf(ids, 99, 25).page, 2);
  assert.equal(pageOf(ids, -1, 25).page, 0);
  assert.equal(pageOf(ids, NaN, 25).page, 0);
  assert.deepEqual(pageOf([], 0, 25), { rows: [], page: 0, pages: 1 });
});

test('csvCell guards formulas with an apostrophe and quotes commas, quotes and newlines', () => {
  for (const lead of ['=', '+', '-', '@', '\t', '\r']) assert.equal(csvCell(`${lead}SUM(A1)`).replace(/^"/, '')[0], "'", JSON.stringify(lead));
  assert.equal(csvCell('=HYPERLINK("http://x")'), '"\'=HYPERLINK(""http://x"")"');
  assert.equal(csvCell('a, b'), '"a, b"');
  assert.equal(csvCell('two\nlines'), '"two\nlines"');
  assert.equal(csvCell('plain'), 'plain');
  assert.equal(csvCell(-0.5), '-0.5');  // numbers are numbers, not formulas
  assert.equal(csvCell(NaN), '');
  assert.equal(csvCell(null), '');
  assert.equal(toCsv(['a', 'b'], [[1, '=x']]), "a,b\r\n1,'=x\r\n");
});

test('csvCell finds the formula behind whitespace, invisible characters and full-width signs', () => {
  // The same cells as tests/test_published.py checks against atlas.published.csv_cell.
  const forms = JSON.parse(readFileSync(new URL('../csv_forms.json', import.meta.url), 'utf8'));
  const unquote = (cell) => (cell.startsWith('"') ? cell.slice(1, -1).replace(/""/g, '"') : cell);
  for (const text of forms.formulas) assert.equal(unquote(csvCell(text)), `'${text}`, JSON.stringify(text));
  for (const text of forms.text) assert.equal(unquote(csvCell(text)), text, JSON.stringify(text));
});

test('parseRegion and simplify bound what a lasso puts in the address', () => {
  assert.equal(parseRegion(null), null);
  assert.equal(parseRegion('x'.repeat(7000)), null);
  const many = Array.from({ length: 201 }, (_, i) => `${i / 300},0.5`).join(';');
  assert.equal(parseRegion(many), null);
  const trail = Array.from({ length: 1000 }, (_, i) => [i, 0]);
  assert.equal(simplify(trail, 3).length, 200);
  assert.deepEqual(simplify([[0, 0], [1, 0], [3, 0], [3, 1]], 2), [[0, 0], [3, 0]]);
});

test('failMasks and passingOthers: a histogram counts the points passing the other filters', () => {
  const missing = 255;
  // two points' scores at index 0 and 1 (stride 4)
  const scores = Uint8Array.from([10, 200, 0, 0, 100, 50, 0, 0, missing, 60, 0, 0]);
  const mask = failMasks(3, [[scores, 4, 0, 50, 254, 0], [scores, 4, 1, 0, 100, 1]], missing);
  assert.deepEqual(Array.from(mask), [3, 0, 1]);  // fails both; passes both; missing score 0
  assert.deepEqual(passingOthers(mask, 0), [1, 2]);  // score 0's own filter does not count
  assert.deepEqual(passingOthers(mask, 1), [1]);
  assert.deepEqual(passingOthers(failMasks(3, [], missing), 1), [0, 1, 2]);
});

test('caption length is a fifth filter channel from its own array, once loaded', () => {
  const missing = 255;
  const scores = Uint8Array.from([10, 200, 0, 0, 100, 50, 0, 0, 40, 60, 0, 0]);
  const lengths = Uint8Array.from([5, 120, 254]);
  const meta = { encoding: { score_max: 254, score_missing: missing },
    scores: [{ name: 'aesthetic', index: 0, min: 0, max: 254, present: 3 }],
    lengths: { name: 'caption_length', min: 0, max: 254, present: 3 } };
  assert.equal(channels(meta, { scores }).length, 1);  // not loaded yet: the scores only
  const chs = channels(meta, { scores, lengths });
  assert.deepEqual(chs.map((c) => [c.score.name, c.bit]), [['aesthetic', 0], ['caption_length', 4]]);
  const checks = filterChecks(meta, { scores, lengths }, { caption_length: [100, 254] });
  const mask = failMasks(3, checks, missing);
  assert.deepEqual(Array.from(mask), [16, 0, 0]);  // the short caption fails bit 4
  assert.deepEqual(passingOthers(mask, 4), [0, 1, 2]);
  assert.deepEqual(passingOthers(mask, 0), [1, 2]);
});

test('neighbourRow reads little-endian uint32s and drops the missing value and the point itself', () => {
  const row = new Uint8Array(new Uint32Array([7, 0xffffffff, 3, 5]).buffer);
  assert.deepEqual(neighbourRow(row, 4, 0xffffffff), [7, 3, 5]);
  assert.deepEqual(neighbourRow(row, 4, 0xffffffff, 3), [7, 5]);
  assert.deepEqual(neighbourRow(row.subarray(0, 6), 4, 0xffffffff), [7]);  // a short read
});

test('imageUrl: http(s) only, never a demo row or a reserved example host', () => {
  assert.equal(imageUrl('https://i.pinimg.com/a.jpg'), 'https://i.pinimg.com/a.jpg');
  assert.equal(imageUrl('https://i.pinimg.com/a.jpg', true), null);
  for (const bad of ['javascript:alert(1)', 'data:image/png;base64,AA', 'ftp://x.org/a', '', null, 42,
    'https://img.example/a.jpg', 'http://cdn.shop.example/a.png', 'https://example.com/x.jpg',
    'https://www.example.org/x.jpg', 'https://EXAMPLE.COM./x.jpg']) {
    assert.equal(imageUrl(bad), null, String(bad));
  }
  assert.equal(imageUrl('https://notexample.com/x.jpg'), 'https://notexample.com/x.jpg');
});

test('nearestInCluster finds the cluster members nearest its centre, nearest first', () => {
  const pts = [[0.5, 0.5], [0.52, 0.5], [0.49, 0.5], [0.9, 0.9], [0.5, 0.51], [0.1, 0.1]];
  const xy = Uint16Array.from(pts.flatMap(([x, y]) => [q(x), q(y)]));
  const assign = Uint16Array.from([0, 0, 1, 0, 0, 0]);
  assert.deepEqual(nearestInCluster(xy, MAX, assign, 0, 0.5, 0.5, 3), [0, 4, 1]);
  assert.deepEqual(nearestInCluster(xy, MAX, assign, 1, 0.5, 0.5, 3), [2]);
  assert.deepEqual(nearestInCluster(xy, MAX, assign, 7, 0.5, 0.5, 3), []);
});

test('hierarchy nests each fine cluster under its parent, biggest first, and leaves out empty ones', () => {
  const meta = { clusters: [
    { name: 'coarse', labels: ['A', 'B'], size: [10, 30] },
    { name: 'fine', labels: ['a1', 'a2', 'b1', 'gone'], size: [4, 6, 30, 0] },
  ] };
  const tree = hierarchy(meta, { fine: [0, 0, 1, 1] });
  assert.deepEqual(tree.map((n) => n.index), [1, 0]);
  assert.deepEqual(tree[0].children.map((n) => n.index), [2]);
  assert.deepEqual(tree[1].children.map((n) => n.index), [1, 0]);
  assert.deepEqual(hierarchy({ clusters: [] }, {}), []);
});

test('densityGrid counts points per cell and the blur keeps the total; the field fades out by zoom 2.5', () => {
  const xy = Uint16Array.from([q(0.1), q(0.1), q(0.1), q(0.1), q(0.9), q(0.5)]);
  const size = 16;
  const grid = densityGrid(xy, 3, MAX, size, 1);
  const total = grid.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 3) < 0.5, String(total));  // clamped edges lose or gain a little
  const at = (x, y) => grid[Math.floor(y * size) * size + Math.floor(x * size)];
  assert.ok(at(0.1, 0.1) > at(0.9, 0.5) && at(0.9, 0.5) > at(0.5, 0.9));
  const pixels = densityPixels(grid, size);
  // World y up, image rows down: the dense corner (0.1, 0.1) is near the bottom-left.
  const alpha = (x, y) => pixels[((size - 1 - Math.floor(y * size)) * size + Math.floor(x * size)) * 4 + 3];
  assert.ok(alpha(0.1, 0.1) > alpha(0.9, 0.5) && alpha(0.5, 0.9) === 0);
  assert.equal(densityOpacity(0), 1);
  assert.equal(densityOpacity(2.5), 0);
  assert.ok(densityOpacity(1.5) > 0 && densityOpacity(1.5) < 1);
  assert.equal(densityPixels(new Float32Array(4), 2).every((v, i) => i % 4 !== 3 || v === 0), true);
});
