import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeaningMarker, closenessWords, placeText } from '../../themes/default/static/js/map/meaning.js';
import { formatHash, parseHash } from '../../themes/default/static/js/map/state.js';
import { stateFromHash } from '../../themes/default/static/js/map/url.js';
import { makeMeta } from './fixtures.js';

const world = (coords) => (id) => coords[id];

test('the words land on their best point when the runner-up is much further in meaning', () => {
  const at = placeText([0, 1], [0.8, 0.6], world([[0.2, 0.2], [0.9, 0.9]]));
  assert.ok(Math.abs(at[0] - 0.2) < 1e-3 && Math.abs(at[1] - 0.2) < 1e-3, String(at));
});

test('the words land between points that are about as close in meaning', () => {
  const at = placeText([0, 1], [0.7, 0.7], world([[0.2, 0.4], [0.4, 0.6]]));
  assert.ok(Math.abs(at[0] - 0.3) < 1e-9 && Math.abs(at[1] - 0.5) < 1e-9, String(at));
});

test('placing words skips missing ids and non-finite scores, and gives null for nothing', () => {
  assert.equal(placeText([], [], world([])), null);
  assert.equal(placeText([-1], [0.5], world([])), null);
  const at = placeText([0, 1, 2], [0.5, NaN, 0.49], world([[0, 0], [9, 9], [0, 1]]));
  assert.ok(at[0] === 0 && at[1] > 0 && at[1] < 1, String(at));
});

test('only the first ten points place the words', () => {
  const coords = Array.from({ length: 20 }, (_, i) => (i < 10 ? [0.5, 0.5] : [5, 5]));
  const at = placeText(coords.map((_, i) => i), coords.map(() => 0.5), world(coords));
  assert.deepEqual(at, [0.5, 0.5]);
});

test('closeness in words covers the whole cosine range, and says nothing for a non-number', () => {
  assert.deepEqual([0.95, 0.6, 0.35, 0.1, -0.4].map(closenessWords), ['very close', 'close', 'related', 'far', 'far']);
  assert.equal(closenessWords(NaN), '');
  assert.equal(closenessWords(undefined), '');
});

test('the ring hides off screen and follows the view on it', () => {
  const el = { hidden: true, style: {} };
  const marker = new MeaningMarker(el);
  const camera = { width: 100, height: 100, toScreen: (x, y) => [x * 100, y * 100] };
  marker.set([0.5, 0.25]);
  marker.update(camera);
  assert.equal(el.hidden, false);
  assert.equal(el.style.transform, 'translate(50px, 25px)');
  marker.set([5, 5]);
  marker.update(camera);
  assert.equal(el.hidden, true);
  marker.set(null);
  assert.equal(el.hidden, true);
});

test('a search by meaning is kept in the address; an old address searches by words', () => {
  const meta = makeMeta();
  const state = stateFromHash('#q=a%20dog%20asleep&m=meaning', meta);
  assert.equal(state.mode, 'meaning');
  assert.equal(state.query, 'a dog asleep');
  assert.match(formatHash(state, meta), /&m=meaning/);
  assert.equal(stateFromHash('#q=dog', meta).mode, 'words');
  assert.equal(stateFromHash('#q=dog&m=bogus', meta).mode, 'words');
  assert.doesNotMatch(formatHash(stateFromHash('#q=dog', meta), meta), /m=/);
  assert.equal(parseHash('#x=0.2', meta).mode, undefined);  // a view alone keeps the mode as it is
});
