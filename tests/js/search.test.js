import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captionMatches, queryTerms } from '../../themes/default/static/js/map/search.js';

test('queryTerms splits on whitespace and ignores case', () => {
  assert.deepEqual(queryTerms('  Red\tDRESS  '), ['red', 'dress']);
  assert.deepEqual(queryTerms(''), []);
  assert.deepEqual(queryTerms(null), []);
});

test('captionMatches needs every term', () => {
  assert.ok(captionMatches('A Red summer dress', ['red', 'dress']));
  assert.ok(!captionMatches('A red summer skirt', ['red', 'dress']));
  assert.ok(!captionMatches(null, ['red']));
});
