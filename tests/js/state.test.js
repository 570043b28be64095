import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_VIEW, MAX_ZOOM, Store, formatHash, parseHash } from '../../themes/default/static/js/map/state.js';
import { stateFromHash } from '../../themes/default/static/js/map/url.js';
import { makeMeta } from './fixtures.js';

test('Store reports only the keys that changed, with their source', () => {
  const store = new Store({ view: { ...DEFAULT_VIEW }, query: '' });
  const calls = [];
  store.on((state, changed, source) => calls.push([changed, source]));
  store.set({ query: '' });
  store.set({ view: { ...DEFAULT_VIEW } });  // equal by value: no event
  store.set({ query: 'cat', view: { x: 0.1, y: 0.5, z: 0 } }, 'hash');
  assert.deepEqual(calls, [[['query', 'view'], 'hash']]);
  assert.equal(store.get('query'), 'cat');
});

test('parseHash reads a shared view and clamps what is out of range', () => {
  const meta = makeMeta();
  const patch = parseHash('#x=0.3&y=9&z=99&c=aesthetic&q=red%20dress&f=aesthetic:5:3&p=2', meta);
  assert.deepEqual(patch.view, { x: 0.3, y: 2, z: MAX_ZOOM });
  assert.equal(patch.colour, 'aesthetic');
  assert.equal(patch.query, 'red dress');
  assert.deepEqual(patch.filters, { aesthetic: [3, 5] });
  assert.equal(patch.pinned, 2);
});

test('parseHash ignores malformed, unknown and non-finite parts', () => {
  const meta = makeMeta();
  const patch = parseHash('#x=NaN&z=-Infinity&c=nope&f=similarity:0:1,bogus:1:2,aesthetic:x:y&p=4', meta);
  assert.deepEqual(patch.view, { x: 0.5, y: 0.5, z: 0 });  // non-finite: the default
  assert.equal(patch.colour, undefined);
  // similarity has no values in this sample; a filter on it is dropped. Bad numbers mean the full range.
  assert.deepEqual(patch.filters, { aesthetic: [2, 8] });
  assert.equal(patch.pinned, undefined);  // 4 is not a point (count 4)
  assert.deepEqual(parseHash('', meta), {});
  assert.equal(parseHash('#q=' + 'a'.repeat(500), meta).query.length, 200);
});

test('formatHash writes what parseHash reads back, and leaves defaults out', () => {
  const meta = makeMeta();
  const state = { view: { x: 0.123456, y: 0.5, z: 1.25 }, colour: 'aesthetic', query: 'cat & dog', mode: 'words',
    filters: { aesthetic: [3, 7.5] }, pinned: 3, selection: null };
  const hash = formatHash(state, meta);
  assert.equal(hash, '#x=0.12346&y=0.5&z=1.25&c=aesthetic&q=cat+%26+dog&f=aesthetic%3A3%3A7.5&p=3');
  const back = stateFromHash(hash, meta);
  assert.deepEqual(back, { ...state, view: { x: 0.12346, y: 0.5, z: 1.25 } });
  const plain = formatHash({ view: DEFAULT_VIEW, colour: 'cluster', query: '', filters: {}, pinned: -1 }, meta);
  assert.equal(plain, '#x=0.5&y=0.5&z=0');
});

test('stateFromHash fills every key, so a followed link resets what it does not mention', () => {
  const meta = makeMeta();
  assert.deepEqual(stateFromHash('#q=cat', meta),
    { view: DEFAULT_VIEW, colour: 'cluster', query: 'cat', mode: 'words', filters: {}, pinned: -1, selection: null });
});

test('a drawn region and "the search" as a selection travel in the hash', () => {
  const meta = makeMeta();
  const base = { view: DEFAULT_VIEW, colour: 'cluster', filters: {}, pinned: -1 };
  const polygon = [[0.1, 0.2], [0.51234567, 0.2], [0.5, 0.9]];
  const hash = formatHash({ ...base, query: '', selection: { kind: 'region', polygon } }, meta);
  assert.deepEqual(stateFromHash(hash, meta).selection, { kind: 'region', polygon: [[0.1, 0.2], [0.5123, 0.2], [0.5, 0.9]] });
  const search = formatHash({ ...base, query: 'red dress', selection: { kind: 'search' } }, meta);
  assert.match(search, /&s=q$/);
  assert.deepEqual(stateFromHash(search, meta).selection, { kind: 'search' });
  // "The search" without a query, ids given to the hook, or a broken region: nothing in the address.
  assert.equal(formatHash({ ...base, query: '', selection: { kind: 'search' } }, meta), '#x=0.5&y=0.5&z=0');
  assert.equal(formatHash({ ...base, query: '', selection: { kind: 'ids', ids: [1, 2] } }, meta), '#x=0.5&y=0.5&z=0');
  assert.equal(stateFromHash('#s=q', meta).selection, null);
  for (const bad of ['0.1,0.2;0.3,0.4', '0.1,0.2;0.3,x;0.5,0.6', '0.1,0.2;NaN,0.4;0.5,0.6', '', ';;;']) {
    assert.equal(stateFromHash(`#r=${encodeURIComponent(bad)}`, meta).selection, null, bad);
  }
  // Far-out vertices are clamped to the map's neighbourhood.
  assert.deepEqual(stateFromHash('#r=-1e9,0;5,0;0,Infinity', meta).selection, null);
  assert.deepEqual(stateFromHash('#r=-1e9,0;5,0;0,1', meta).selection.polygon, [[-1, 0], [2, 0], [0, 1]]);
});
