// BERT's uncased WordPiece tokenizer, as the Hugging Face tokenizers library runs it for the
// caption model (BertNormalizer -> BertPreTokenizer -> WordPiece -> [CLS] … [SEP], truncated).
// Our own ~100 lines instead of @huggingface/transformers: that bundle carries its own copy of
// the ONNX runtime and every tokenizer family (megabytes of JavaScript) for this one algorithm.
// Pure (no DOM, no fetch): the worker and the Node tests import it. The settings come from the
// build's text-model.json (atlas/stages/textmodel.py), the vocabulary from its vocab.txt.

// What the tokenizers library drops (clean_text): control, format and private-use characters
// (Cc, Cf, Co; lone surrogates too) -- but not unassigned code points, which stay and become [UNK].
const DROPPED = /[\p{Cc}\p{Cf}\p{Co}\p{Cs}]/u;
const WHITE = /\p{White_Space}/u;
const MARK = /\p{Mn}/gu;
const PUNCTUATION = /\p{P}/u;

function isAsciiPunctuation(cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
}

// The CJK ideograph blocks BERT puts spaces around (handle_chinese_chars).
function isChinese(cp) {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0x20000 && cp <= 0x2a6df)
    || (cp >= 0x2a700 && cp <= 0x2b73f) || (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf)
    || (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** The normalised text: cleaned, CJK spaced, accents stripped, lower-cased (per character). */
export function normalise(text, settings) {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (settings.clean_text) {
      if (ch === '\t' || ch === '\n' || ch === '\r') { out += ' '; continue; }
      if (cp === 0 || cp === 0xfffd || DROPPED.test(ch)) continue;
      if (WHITE.test(ch)) { out += ' '; continue; }
    }
    out += settings.chinese_chars && isChinese(cp) ? ` ${ch} ` : ch;
  }
  if (settings.strip_accents) out = out.normalize('NFD').replace(MARK, '');
  if (settings.lowercase) {
    let lowered = '';
    for (const ch of out) lowered += ch.toLowerCase(); // one character at a time, as Rust's char::to_lowercase
    out = lowered;
  }
  return out;
}

/** Words: split at white space (dropped) and around each punctuation character (kept alone). */
export function preTokenise(text) {
  const words = [];
  let word = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (WHITE.test(ch)) {
      if (word) words.push(word);
      word = '';
    } else if (isAsciiPunctuation(cp) || PUNCTUATION.test(ch)) {
      if (word) words.push(word);
      words.push(ch);
      word = '';
    } else {
      word += ch;
    }
  }
  if (word) words.push(word);
  return words;
}

export class WordPiece {
  /** ``vocab``: the tokens in id order (vocab.txt's lines); ``settings``: text-model.json's "tokenizer". */
  constructor(vocab, settings) {
    this.settings = settings;
    this.ids = new Map();
    vocab.forEach((token, id) => { if (!this.ids.has(token)) this.ids.set(token, id); });
    this.unk = this.ids.get(settings.unk);
    const specials = Object.keys(settings.specials || {}).sort((a, b) => b.length - a.length);
    this.specials = specials.length ? new RegExp(`(${specials.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`) : null;
  }

  /** Greedy longest-match-first pieces of one word; a word with an unknown part is [UNK] whole. */
  word(word, out) {
    const chars = Array.from(word);
    if (chars.length > this.settings.max_word_chars) { out.push(this.unk); return; }
    const pieces = [];
    for (let start = 0; start < chars.length;) {
      let end = chars.length, found = -1;
      while (start < end) {
        const piece = (start > 0 ? this.settings.prefix : '') + chars.slice(start, end).join('');
        const id = this.ids.get(piece);
        if (id !== undefined) { found = id; break; }
        end -= 1;
      }
      if (found < 0) { out.push(this.unk); return; }
      pieces.push(found);
      start = end;
    }
    for (const id of pieces) out.push(id);
  }

  /** Token ids of ``text`` as the model reads it: [CLS] pieces… [SEP], at most ``max_tokens``. */
  encode(text) {
    const body = [];
    const limit = this.settings.max_tokens - 2;
    const parts = this.specials ? String(text).split(this.specials) : [String(text)];
    for (let i = 0; i < parts.length && body.length < limit; i += 1) {
      if (i % 2 === 1) { body.push(this.settings.specials[parts[i]]); continue; } // a special token, written literally
      for (const word of preTokenise(normalise(parts[i], this.settings))) {
        this.word(word, body);
        if (body.length >= limit) break;
      }
    }
    return [this.settings.cls, ...body.slice(0, limit), this.settings.sep];
  }
}
