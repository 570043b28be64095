// open_clip's SimpleTokenizer (CLIP's byte-level BPE) in JavaScript, token for token as open_clip
// runs it in the build: basic_clean (ftfy.fix_text, then html.unescape twice, strip),
// whitespace_clean, lower-case, the pre-tokeniser's regex, bytes -> unicode, BPE with '</w>',
// <start_of_text> … <end_of_text>, truncated to the context length (end token kept), zero padded.
// Pure (no DOM, no fetch): the worker and the Node tests import it. The merges come from the
// build's clip-bpe.txt, the cleaning tables (HTML entities, ftfy's character maps) from its
// clip-clean.json, both written from the Python libraries the build ran (atlas/models/cliptext.py),
// so the two sides share one table. Of ftfy.fix_text everything is here except fix_encoding (the
// repair of mojibake such as "cafÃ©", which a reader does not type): see README.

// Python's str.isspace (str.split, str.strip) and the regex module's \s (the pre-tokeniser).
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const RE_SPACE = '\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPACES = new RegExp(`[${PY_SPACE}]+`, 'gu');
const EDGES = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
const ANSI = /\x1b\[((?:\p{Nd}|;)*)([a-zA-Z])/gu; // ftfy's remove_terminal_escapes (re's \d is Nd)
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g; // ftfy's HTML_ENTITY_RE
const PY_CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu; // html._charref

/** Python's html.unescape (the HTML5 rules for numeric and named references). */
export function htmlUnescape(text, tables) {
  if (!text.includes('&')) return text;
  return text.replace(PY_CHARREF, (whole, ref) => {
    if (ref[0] === '#') {
      const hex = ref[1] === 'x' || ref[1] === 'X';
      const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
      const num = parseInt(digits, hex ? 16 : 10); // huge values become big floats: still > 0x10FFFF
      if (Object.prototype.hasOwnProperty.call(tables.invalid_charrefs, String(num))) return tables.invalid_charrefs[String(num)];
      if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
      if (tables.invalidCodepoints.has(num)) return '';
      return String.fromCodePoint(num);
    }
    const html5 = tables.html5;
    if (Object.prototype.hasOwnProperty.call(html5, ref)) return html5[ref];
    const chars = Array.from(ref); // the longest known prefix (named references without ';')
    for (let x = chars.length - 1; x > 1; x -= 1) {
      const prefix = chars.slice(0, x).join('');
      if (Object.prototype.hasOwnProperty.call(html5, prefix)) return html5[prefix] + chars.slice(x).join('');
    }
    return `&${ref}`;
  });
}

/** ftfy's unescape_html: entities that end in ';' (and some upper-cased ones), numeric ones whole. */
function ftfyUnescape(text, tables) {
  return text.replace(FTFY_ENTITY, (entity) => {
    const name = entity.slice(1);
    if (Object.prototype.hasOwnProperty.call(tables.html5, name)) return tables.html5[name];
    if (Object.prototype.hasOwnProperty.call(tables.ftfy_upper, entity)) return tables.ftfy_upper[entity];
    if (entity.startsWith('&#')) {
      const unescaped = htmlUnescape(entity, tables);
      return unescaped.includes(';') ? entity : unescaped;
    }
    return entity;
  });
}

function translate(text, map) {
  let out = '';
  for (const ch of text) out += map.has(ch) ? map.get(ch) : ch;
  return out;
}

/** One pass of ftfy's fixers over a segment (one line), repeated by fixText until nothing changes. */
function fixOnce(text, unescape, t) {
  if (unescape) text = ftfyUnescape(text, t);
  // (fix_encoding: not implemented, see the header)
  text = text.replace(/[\x80-\x9f]/g, (c) => t.c1.get(c));
  text = translate(text, t.ligatures);
  text = translate(text, t.width);
  text = text.replace(t.doubleQuotes, '"').replace(t.singleQuotes, "'");
  text = text.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\x85]/g, '\n');
  text = text.replace(LONE_SURROGATE, '\ufffd');
  text = text.replace(ANSI, '');
  text = translate(text, t.control);
  return text.normalize('NFC');
}

/** ftfy.fix_text with its default settings (less fix_encoding): line by line, each to a fixed point. */
export function fixText(text, tables) {
  let out = '', unescape = true;
  for (let pos = 0; pos < text.length;) {
    let end = text.indexOf('\n', pos) + 1;
    if (end === 0) end = text.length;
    let segment = text.slice(pos, end);
    if (unescape && segment.includes('<')) unescape = false; // ftfy's "auto": once off, off for the rest
    for (;;) {
      const fixed = fixOnce(segment, unescape, tables);
      if (fixed === segment) break;
      segment = fixed;
    }
    out += segment;
    pos = end;
  }
  return out;
}

/** open_clip's _clean_lower: basic_clean, whitespace_clean, lower-case. */
export function clean(text, tables) {
  const basic = htmlUnescape(htmlUnescape(fixText(text, tables), tables), tables).replace(EDGES, '');
  return basic.split(SPACES).filter(Boolean).join(' ').toLowerCase();
}

/** GPT-2's reversible bytes -> printable characters (open_clip's bytes_to_unicode): the
 * characters in open_clip's order (printable bytes first: the vocabulary's first 256 tokens),
 * and ``byte`` (character of each byte value). */
export function bytesToUnicode() {
  const bs = [];
  for (let b = 33; b <= 126; b += 1) bs.push(b);
  for (let b = 161; b <= 172; b += 1) bs.push(b);
  for (let b = 174; b <= 255; b += 1) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b += 1) {
    if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n += 1; }
  }
  const chars = cs.map((c) => String.fromCodePoint(c));
  const byte = new Array(256);
  bs.forEach((b, i) => { byte[b] = chars[i]; });
  return { chars, byte };
}

/** The cleaning tables of clip-clean.json, made ready for lookups. */
export function prepareTables(raw) {
  const chars = (s) => `[${Array.from(s, (c) => `\\u{${c.codePointAt(0).toString(16)}}`).join('')}]`;
  return {
    html5: raw.html5, ftfy_upper: raw.ftfy_upper, invalid_charrefs: raw.invalid_charrefs,
    invalidCodepoints: new Set(raw.invalid_codepoints),
    c1: new Map(Object.entries(raw.c1)),
    ligatures: new Map(Object.entries(raw.ligatures)),
    width: new Map(Object.entries(raw.width)),
    control: new Map(raw.control.map((cp) => [String.fromCodePoint(cp), ''])),
    singleQuotes: new RegExp(chars(raw.single_quotes), 'gu'),
    doubleQuotes: new RegExp(chars(raw.double_quotes), 'gu'),
  };
}

export class ClipBpe {
  /**
   * ``merges``: clip-bpe.txt's lines ("first second", in rank order); ``tables``: clip-clean.json;
   * ``settings``: text-model.json's "tokenizer" (context_length, specials).
   */
  constructor(merges, tables, settings) {
    this.settings = settings;
    this.tables = prepareTables(tables);
    const { chars, byte } = bytesToUnicode();
    this.byteChars = byte;
    this.encoder = new Map();
    const vocab = [...chars, ...chars.map((c) => `${c}</w>`)];
    this.ranks = new Map();
    merges.forEach((line, rank) => {
      const [first, second] = line.split(' ');
      this.ranks.set(`${first} ${second}`, rank);
      vocab.push(first + second);
    });
    vocab.push(...settings.specials);
    vocab.forEach((token, id) => this.encoder.set(token, id));
    this.sot = this.encoder.get(settings.specials[0]);
    this.eot = this.encoder.get(settings.specials[1]);
    this.specialPieces = settings.specials.map((s) => [s, [s]]); // whole, never split (open_clip's cache)
    this.cache = new Map(this.specialPieces);
    const escaped = settings.specials.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.pattern = new RegExp(`${escaped.join('|')}|'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^${RE_SPACE}\\p{L}\\p{N}]+`, 'giu');
    this.utf8 = new TextEncoder();
  }

  /** The BPE pieces of one pre-token (already bytes -> unicode), the last ending in '</w>'. */
  bpe(token) {
    const known = this.cache.get(token);
    if (known) return known;
    let word = Array.from(token);
    word[word.length - 1] += '</w>';
    while (word.length > 1) {
      let best = null, bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i += 1) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) { bestRank = rank; best = [word[i], word[i + 1]]; }
      }
      if (best === null) break;
      const [first, second] = best, merged = [];
      for (let i = 0; i < word.length;) {
        if (word[i] === first && i < word.length - 1 && word[i + 1] === second) { merged.push(first + second); i += 2; }
        else { merged.push(word[i]); i += 1; }
      }
      word = merged;
    }
    if (this.cache.size > 20000) this.cache = new Map(this.specialPieces);
    this.cache.set(token, word);
    return word;
  }

  /** Token ids as open_clip reads the text: <start_of_text> pieces… <end_of_text>, at most context_length. */
  encode(text) {
    const limit = this.settings.context_length;
    const body = [];
    // U+0345 is neither a letter nor "other" to Python's regex under IGNORECASE (it folds to a
    // letter for JavaScript's): open_clip skips it, which is what a space does here.
    const cleaned = clean(String(text), this.tables).replace(/\u0345/g, ' ');
    for (const [token] of cleaned.matchAll(this.pattern)) {
      let chars = '';
      for (const byte of this.utf8.encode(token)) chars += this.byteChars[byte];
      for (const piece of this.bpe(chars)) body.push(this.encoder.get(piece));
      if (body.length >= limit - 1) break; // cut below anyway: the rest cannot change what is kept
    }
    return [this.sot, ...body.slice(0, limit - 2), this.eot];
  }

  /** ``encode`` zero padded to context_length: the model's input_ids row. */
  pad(ids) {
    const row = new Array(this.settings.context_length).fill(0);
    ids.forEach((id, i) => { row[i] = id; });
    return row;
  }
}
