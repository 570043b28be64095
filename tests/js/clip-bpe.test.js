// CLIP's BPE tokenizer (static/js/text/clip-bpe.js). The pure parts with small tables here; the
// whole tokenizer against open_clip's own, token for token, when tests/test_clip_bpe.py hands this
// file the build's real files and open_clip's answers (ATLAS_CLIP_TOKENS: a JSON file).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { ClipBpe, bytesToUnicode, clean, htmlUnescape, prepareTables } from '../../themes/default/static/js/text/clip-bpe.js';

const TABLES = {
  html5: { 'amp;': '&', amp: '&', 'lt;': '<', lt: '<', 'not;': '¬', not: '¬', 'eacute;': 'é', 'nbsp;': '\u00a0' },
  ftfy_upper: { '&EACUTE;': 'É' },
  invalid_charrefs: { 0: '\ufffd', 128: '€', 13: '\r' },
  invalid_codepoints: [1, 2, 0x7f],
  c1: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [String.fromCharCode(0x80 + i), i === 5 ? '…' : String.fromCharCode(0x80 + i)])),
  ligatures: { 'ﬁ': 'fi' },
  width: { 'Ａ': 'A', '\u3000': ' ' },
  single_quotes: 'ʼ‘’‚‛',
  double_quotes: '“”„‟',
  control: [0, 7, 0x1b, 0x7f, 0xfeff],
};
const SETTINGS = { kind: 'clip-bpe', context_length: 8, specials: ['<start_of_text>', '<end_of_text>'], pad: 0 };

test('bytes map to 256 distinct printable characters, printable ASCII to itself', () => {
  const { chars, byte } = bytesToUnicode();
  assert.equal(new Set(byte).size, 256);
  assert.deepEqual(new Set(chars), new Set(byte));
  assert.equal(byte[0x41], 'A');
  assert.equal(byte[0x20], 'Ġ'); // the space is moved out of the way, as in GPT-2
  assert.equal(chars[0], '!'); // the vocabulary starts with the printable bytes, in byte order
  assert.ok(byte.every((c) => !/\s/u.test(c)));
});

test('HTML references follow Python: numeric, invalid, named without a semicolon, longest prefix', () => {
  const t = prepareTables(TABLES);
  assert.equal(htmlUnescape('&#65;&#x42;&#0;&#128;&#13;&#1;&#xd800;&#99999999999999999999;', t), 'AB\ufffd€\r\ufffd\ufffd');
  assert.equal(htmlUnescape('&amp &notit; &lt;b&gt; &zzz;', t), '& ¬it; <b&gt; &zzz;');
});

test('cleaning: entities twice, ligatures, widths, quotes, controls, terminal escapes, spaces, lower case', () => {
  const t = prepareTables(TABLES);
  assert.equal(clean('  &amp;amp;eacute; ﬁne ＡＡ　“Hi” it’s\x07 \x1b[31mRED\x1b[0m\r\n\tx  ', t), 'é fine aa "hi" it\'s red x'); // ftfy unescapes to a fixed point
  assert.equal(clean('P&EACUTE;REZ &nbsp; e\u0301', t), 'pérez é'); // upper-case entity, NBSP is a space, NFC
  assert.equal(clean('<b>&amp;amp;</b>', t), '<b>&</b>'); // with markup ftfy leaves entities, html.unescape twice does not
  assert.equal(clean('a\u0085b', t), 'a…b'); // C1 controls read as Windows-1252
});

function toy(context = 8) {
  // bytes: a b c; merges: "a b" -> ab, "ab c</w>" -> abc</w>
  return new ClipBpe(['a b', 'ab c</w>'], TABLES, { ...SETTINGS, context_length: context });
}

test('BPE merges by rank and marks the word end; specials and contractions are tokens', () => {
  const bpe = toy();
  assert.deepEqual(bpe.bpe('abc'), ['abc</w>']);
  assert.deepEqual(bpe.bpe('cab'), ['c', 'a', 'b</w>']); // "a b" merges a b, not a b</w>
  assert.deepEqual(bpe.bpe('ba'), ['b', 'a</w>']);
  const ids = bpe.encode("ABC <end_of_text> it's");
  const id = (t) => bpe.encoder.get(t);
  assert.deepEqual(ids, [bpe.sot, id('abc</w>'), bpe.eot, id('i'), id('t</w>'), id("'"), id('s</w>'), bpe.eot].slice(0, 8));
  assert.equal(bpe.encoder.size, 512 + 2 + 2);
});

test('a long text is cut to the context length with the end token kept, then zero padded', () => {
  const bpe = toy(6);
  const ids = bpe.encode('a b c a b c a b c');
  assert.equal(ids.length, 6);
  assert.equal(ids[0], bpe.sot);
  assert.equal(ids[5], bpe.eot);
  assert.deepEqual(bpe.pad(bpe.encode('')), [bpe.sot, bpe.eot, 0, 0, 0, 0]);
});

test('open_clip token for token on the cases tests/test_clip_bpe.py writes', { skip: !process.env.ATLAS_CLIP_TOKENS }, () => {
  const d = JSON.parse(readFileSync(process.env.ATLAS_CLIP_TOKENS, 'utf-8'));
  const merges = readFileSync(d.bpe, 'utf-8').replace(/\n$/, '').split('\n');
  const bpe = new ClipBpe(merges, JSON.parse(readFileSync(d.clean, 'utf-8')), d.settings);
  const started = performance.now();
  const got = d.cases.map((c) => bpe.pad(bpe.encode(c.text)));
  const ms = performance.now() - started;
  if (d.out) writeFileSync(d.out, JSON.stringify({ got, ms }));
  const wrong = d.cases.filter((c, i) => !c.known && JSON.stringify(got[i]) !== JSON.stringify(c.ids));
  assert.deepEqual(wrong.map((c) => c.text.slice(0, 80)), []);
});
