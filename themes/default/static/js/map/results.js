// The search results beside the map: a virtualised list (only the rows in view exist, and only
// their captions are fetched), a listbox for the keyboard: arrows, Page Up/Down, Home/End move,
// Enter (or a click) chooses, Escape goes back to the search box.
import { h, formatNumber } from './ui.js';

const OVERSCAN = 4;

/** The rows [first, last) to draw for a scroll position. */
export function visibleRange(scrollTop, height, rowHeight, total, overscan = OVERSCAN) {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + height) / rowHeight) + overscan);
  return [first, Math.max(first, last)];
}

export class ResultList {
  /** `load(id)` resolves to the point's info; `onChoose(id)`; `onEscape()`; `note(id)`: words added to a row's line. */
  constructor(el, { load, onChoose, onEscape, scores, note = () => '', rowHeight = 68 }) {
    Object.assign(this, { el, load, onChoose, onEscape, scores, note, rowHeight });
    this.ids = new Uint32Array(0);
    this.active = -1;
    this.rows = new Map();
    this.spacer = h('div', { class: 'map-results-spacer' });
    el.replaceChildren(this.spacer);
    el.addEventListener('scroll', () => this.render());
    el.addEventListener('keydown', (event) => this._key(event));
    el.addEventListener('click', (event) => {
      const row = event.target.closest('.map-result');
      if (row) { this.setActive(Number(row.dataset.index)); this.onChoose(this.ids[this.active]); }
    });
    new ResizeObserver(() => this.render()).observe(el);
  }

  set(ids) {
    this.ids = ids;
    this.active = -1;
    this.el.scrollTop = 0;
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.el.hidden = ids.length === 0;
    this.el.removeAttribute('aria-activedescendant');
    this.spacer.style.height = `${ids.length * this.rowHeight}px`;
    this.render();
  }

  /** Focus the list on its first (or current) row. */
  focus() {
    if (!this.ids.length) return;
    this.el.focus();
    this.setActive(Math.max(0, this.active));
  }

  setActive(index) {
    if (!this.ids.length) return;
    this.active = Math.max(0, Math.min(this.ids.length - 1, index));
    const top = this.active * this.rowHeight;
    if (top < this.el.scrollTop) this.el.scrollTop = top;
    else if (top + this.rowHeight > this.el.scrollTop + this.el.clientHeight) this.el.scrollTop = top + this.rowHeight - this.el.clientHeight;
    this.render();
    this.el.setAttribute('aria-activedescendant', `map-result-${this.active}`);
  }

  render() {
    const [first, last] = visibleRange(this.el.scrollTop, this.el.clientHeight || 400, this.rowHeight, this.ids.length);
    for (const [index, row] of this.rows) {
      if (index < first || index >= last) { row.remove(); this.rows.delete(index); }
    }
    for (let index = first; index < last; index++) {
      let row = this.rows.get(index);
      if (!row) {
        row = this._row(index);
        this.rows.set(index, row);
        this.el.append(row);
      }
      const on = index === this.active;
      row.classList.toggle('is-active', on);
      row.setAttribute('aria-selected', on ? 'true' : 'false');
    }
  }

  _row(index) {
    const id = this.ids[index];
    const caption = h('p', { class: 'map-result-caption', text: 'Loading…' });
    const meta = h('p', { class: 'map-result-meta' });
    const row = h('div', { class: 'map-result', role: 'option', id: `map-result-${index}`, 'data-index': index,
      'data-id': id, 'aria-posinset': index + 1, 'aria-setsize': this.ids.length }, caption, meta);
    row.style.transform = `translateY(${index * this.rowHeight}px)`;
    row.style.height = `${this.rowHeight}px`;
    const ids = this.ids;
    this.load(id).then((info) => {
      if (this.ids !== ids) return;
      caption.textContent = info.caption || '(no caption)';
      caption.title = info.caption || '';
      const parts = [info.host || info.domain || 'no host'];
      const note = this.note(id);
      if (note) parts.unshift(note);
      for (const [name, label] of this.scores) if (info[name] !== null && info[name] !== undefined) parts.push(`${label} ${info[name].toFixed(2)}`);
      meta.textContent = parts.join(' · ');
    }).catch(() => { caption.textContent = '(caption unavailable)'; });
    return row;
  }

  _key(event) {
    const page = Math.max(1, Math.floor(this.el.clientHeight / this.rowHeight) - 1);
    const moves = {
      ArrowDown: () => this.setActive(this.active + 1),
      ArrowUp: () => (this.active <= 0 ? this.onEscape() : this.setActive(this.active - 1)),
      PageDown: () => this.setActive(this.active + page),
      PageUp: () => this.setActive(this.active - page),
      Home: () => this.setActive(0),
      End: () => this.setActive(this.ids.length - 1),
      Enter: () => { if (this.active >= 0) this.onChoose(this.ids[this.active]); },
      Escape: () => this.onEscape(),
    };
    const fn = moves[event.key];
    if (fn) { event.preventDefault(); fn(); }
  }
}

/** "1,234 matches" (or "1 match"). */
export function matchesText(count) {
  return `${formatNumber(count)} ${count === 1 ? 'match' : 'matches'}`;
}
