import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GridIndex } from '../../themes/default/static/js/map/picking.js';
import { worldOf } from '../../themes/default/static/js/map/data.js';
import { ENCODING } from './fixtures.js';

const MAX = ENCODING.xy_max;
const q = (v) => Math.round(v * MAX);

function grid(points) {
  return new GridIndex(Uint16Array.from(points.flatMap(([x, y]) => [q(x), q(y)])), points.length, MAX);
}

test('nearest finds the closest point within the radius, or -1', () => {
  const index = grid([[0.1, 0.1], [0.5, 0.5], [0.52, 0.5], [0.9, 0.9]]);
  assert.equal(index.nearest(0.515, 0.5, 0.05), 2);
  assert.equal(index.nearest(0.49, 0.5, 0.05), 1);
  assert.equal(index.nearest(0.3, 0.3, 0.05), -1);
  assert.equal(index.nearest(0.35, 0.35, 0.5), 1);
});

test('nearest skips hidden points and prefers the later (drawn on top) of equal ones', () => {
  const index = grid([[0.5, 0.5], [0.5, 0.5], [0.6, 0.5]]);
  assert.equal(index.nearest(0.5, 0.5, 0.2), 1);
  assert.equal(index.nearest(0.5, 0.5, 0.2, (i) => i !== 1), 0);
  assert.equal(index.nearest(0.5, 0.5, 0.2, (i) => i === 2), 2);
});

test('points on the far edges (q = xy_max) and corners are found', () => {
  const index = grid([[1, 1], [0, 0], [1, 0]]);
  assert.equal(index.nearest(1, 1, 0.01), 0);
  assert.equal(index.nearest(0, 0, 0.01), 1);
  assert.equal(index.nearest(0.999, 0.001, 0.01), 2);
  assert.ok(index.coverage > 0 && index.coverage <= 1);
});

test('an empty index and non-finite queries find nothing', () => {
  const empty = new GridIndex(new Uint16Array(0), 0, MAX);
  assert.equal(empty.nearest(0.5, 0.5, 1), -1);
  const index = grid([[0.5, 0.5]]);
  assert.equal(index.nearest(NaN, 0.5, 0.1), -1);
});

test('worldOf turns quantised coordinates into world units with the meta encoding', () => {
  const points = { xy: Uint16Array.from([0, MAX, q(0.25), q(0.75)]), xyMax: MAX };
  assert.deepEqual(worldOf(points, 0), [0, 1]);
  const [x, y] = worldOf(points, 1);
  assert.ok(Math.abs(x - 0.25) < 1e-4 && Math.abs(y - 0.75) < 1e-4);
});
