// Folding, tokenising and parsing queries: the same steps as atlas/text/fold.py, with which the search
// stage built the index (so a word typed here is the word indexed there). Pure functions, no DOM.

// Nonspacing marks and default-ignorable code points (zero-width joiners and spaces, soft
// hyphens, bidi marks, variation selectors...): removed, as atlas/text/fold.py removes them, so
// "p\u00adorn" (drawn as "porn") is one word, the word the blocklist matched.
const STRIP = /[\p{Mn}\p{Default_Ignorable_Code_Point}]+/gu;
// Letters and digits in parentheses or tortoise-shell brackets (⒫ ⑴ ㈠ 🄟 🉀): what is inside
// (fold.py's BRACKETED), so that ⒫⒪⒭⒩ is one word as a reader reads it.
const BRACKETED = /[\u2474-\u2487\u249c-\u24b5\u3200-\u321e\u3220-\u3243\u{1f110}-\u{1f12a}\u{1f240}-\u{1f248}]/gu;
const CJK = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}';
const TOKEN = new RegExp(`[${CJK}]|(?:(?![${CJK}])[\\p{L}\\p{N}\\p{M}])+`, 'gu');

/** Folded text: brackets of ⒫ dropped, NFKD, marks and default-ignorables removed, upper- then lower-cased, ς as σ, ß as ss. */
export function fold(text) {
  return String(text ?? '').replace(BRACKETED, (c) => c.normalize('NFKD').slice(1, -1))
    .normalize('NFKD').replace(STRIP, '').toUpperCase().toLowerCase()
    .replaceAll('ς', 'σ').replaceAll('ß', 'ss');
}

/** The folded word tokens of a text, in order. */
export function tokens(text) {
  return fold(text).match(TOKEN) || [];
}

/** The part of a term (its first keyLen characters, not UTF-16 units) that picks its shard. */
export function termKey(term, keyLen) {
  return Array.from(term).slice(0, keyLen).join('');
}

const encoder = new TextEncoder();

/** FNV-1a 32-bit hash of the UTF-8 bytes (as the index writer computes it). */
export function fnv1a(text) {
  let h = 0x811c9dc5;
  for (const byte of encoder.encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h >>> 0;
}

/**
 * A query as clauses that must all match: { words: [..] } is a word (one) or a phrase (several,
 * adjacent and in order); `prefix: true` on the last clause completes its word (while typing).
 * "quoted text" is a phrase, and so is a word the tokeniser splits ("t-shirt", CJK text).
 * `prefix` needs at least `keyLen` characters.
 */
export function parseQuery(query, { prefix = false, keyLen = 3 } = {}) {
  const text = String(query ?? '');
  const clauses = [];
  const seen = new Set();
  const add = (words, atEnd, quoted) => {
    if (!words.length) return;
    const clause = { words };
    if (prefix && atEnd && !quoted && words.length === 1 && Array.from(words[0]).length >= keyLen) clause.prefix = true;
    const key = JSON.stringify(clause);
    if (!seen.has(key)) { seen.add(key); clauses.push(clause); }
  };
  const segment = /"([^"]*)("|$)|[^\s"]+/g;
  for (let m; (m = segment.exec(text));) {
    const atEnd = segment.lastIndex === text.length;
    if (m[0].startsWith('"')) add(tokens(m[1]), atEnd, true);
    else add(tokens(m[0]), atEnd, false);
  }
  return clauses;
}
