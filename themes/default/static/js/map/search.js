// Caption search: every caption chunk is scanned (three at a time) for captions containing all
// the query's terms; matches are marked as they arrive and reported through `onProgress`.

/** The lower-cased, whitespace-separated terms of a query. */
export function queryTerms(query) {
  return String(query || '').toLowerCase().split(/\s+/).filter(Boolean);
}

/** Does a caption contain every term (as a substring, ignoring case)? */
export function captionMatches(caption, terms) {
  const text = String(caption || '').toLowerCase();
  return terms.every((term) => text.includes(term));
}

export class ChunkSearch {
  /** `matches`: Uint8Array(n) set to 1 for matching points; `onProgress()` after each batch. */
  constructor({ chunks, meta, matches, onProgress }) {
    Object.assign(this, { chunks, meta, matches, onProgress });
    this.token = 0;
    this.searched = 0;
    this.searching = false;
    this.lastReport = 0;
    this.reportEvery = 250;
  }

  async run(query) {
    const token = ++this.token;
    const { meta, matches } = this;
    matches.fill(0);
    this.searched = 0;
    const terms = queryTerms(query);
    this.searching = terms.length > 0;
    this.onProgress();
    if (!terms.length) return;
    let next = 0;
    const scan = async () => {
      while (next < meta.chunks) {
        const chunk = next++;
        let captions;
        try { captions = await this.chunks.captions(chunk); } catch (error) {
          console.warn('atlas map: caption chunk failed', chunk, error);
          captions = [];
        }
        if (token !== this.token) return;
        const start = chunk * meta.chunk_size;
        for (let j = 0; j < captions.length; j++) if (captionMatches(captions[j], terms)) matches[start + j] = 1;
        this.searched++;
        const now = performance.now();
        // Show progress, but never let redraws (slow on software GL) starve the search.
        if (now - this.lastReport > this.reportEvery) { this.lastReport = now; this.onProgress(); }
      }
    };
    await Promise.all([scan(), scan(), scan()]);
    if (token !== this.token) return;
    this.searching = false;
    this.onProgress();
  }
}
