// Small DOM helpers: an element builder that never parses HTML (all text
// goes through textContent, so API data cannot inject markup), the shared
// loading / empty / error states, tables, dialogs and notices.

import { compareDecimal } from './format.js';

/** h builds an element: h('div.card#x', {attrs}, ...children). */
export function h(tag, attrs, ...children) {
  const [, name, rest] = /^([a-z0-9-]+)?(.*)$/i.exec(tag);
  const el = document.createElement(name || 'div');
  for (const part of rest.match(/[.#][^.#]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** mount replaces el's content (and whatever marked it stale). */
export function mount(el, ...children) {
  el.replaceChildren();
  el.classList.remove('stale');
  append(el, children);
  return el;
}

/** loading is the placeholder shown while data is on its way. */
export function loading(text = 'Loading…') {
  return h('div.state.loading', { role: 'status', 'aria-live': 'polite' },
    h('span.spinner', { 'aria-hidden': 'true' }), h('span', text));
}

/** empty is shown when a query has no rows. */
export function empty(title, text) {
  return h('div.state.empty', h('div.state-icon', { 'aria-hidden': 'true' }, '∅'),
    h('div', h('strong', title), text ? h('p', text) : null));
}

/** errorBox shows an API error in plain words, with an optional retry. */
export function errorBox(err, retry, title = 'Could not load this') {
  return h('div.state.error', { role: 'alert' },
    h('div.state-icon', { 'aria-hidden': 'true' }, '!'),
    h('div', h('strong', title), h('p.error-text', err?.message || String(err)),
      retry ? h('button.btn.small', { type: 'button', onclick: retry }, 'Try again') : null));
}

/**
 * section loads data into a card: it shows loading, then render(data), or
 * the error in plain words with a retry button.
 */
export async function load(el, fetcher, render, onError) {
  mount(el, loading());
  try {
    const data = await fetcher();
    mount(el, render(data));
  } catch (err) {
    // unauthorized: the sign-in form takes over; stale: a newer load owns el.
    if (err?.code === 'unauthorized' || err?.stale) return;
    console.warn(err);
    mount(el, errorBox(err, () => load(el, fetcher, render, onError)));
    // Figures elsewhere on the page that wait for this load say it failed
    // rather than showing "…" for ever.
    onError?.(err);
  }
}

/** card wraps a section with a title and optional actions. */
export function card(title, opts = {}, ...body) {
  return h(`section.card${opts.wide ? '.wide' : ''}`, { id: opts.id },
    title ? h('header.card-head', h('h2', title), opts.sub ? h('span.sub', opts.sub) : null,
      opts.actions ? h('div.actions', opts.actions) : null) : null,
    ...body);
}

/** kpi is one headline figure. */
export function kpi(label, value, note, attrs = {}) {
  return h('div.kpi', attrs, h('div.kpi-label', label), h('div.kpi-value', value),
    note ? h('div.kpi-note', note) : null);
}

/** kpiFailed is a headline figure whose data did not load. */
export function kpiFailed(label, attrs = {}) {
  return h('div.kpi.failed', attrs, h('div.kpi-label', label), h('div.kpi-value', h('span.kpi-error', 'unavailable')),
    h('div.kpi-note', 'could not load: see below'));
}

/**
 * table renders rows with columns {key, label, num, render, sort, wide}
 * (wide: a column shown only on screens of 960 px and more). Columns
 * with sort ('text' | 'decimal') get clickable headers; the sort state is
 * kept on the table element so re-renders keep it.
 */
export function table(columns, rows, opts = {}) {
  // opts.state (any object) keeps the sort and the rows shown across
  // re-renders of the same list; opts.pageSize shows rows in pages.
  const state = Object.assign(opts.state || {}, {
    key: opts.state?.key ?? opts.sortKey ?? null,
    dir: opts.state?.dir ?? opts.sortDir ?? 'desc',
    shown: opts.state?.shown ?? opts.pageSize ?? Infinity,
  });
  const wrap = h('div.table-wrap');
  const outer = h('div', wrap);
  const draw = () => {
    let sorted = rows;
    if (state.key) {
      const col = columns.find((c) => c.key === state.key);
      const kind = col?.sort;
      const val = col?.value || ((r) => r[state.key]);
      const f = state.dir === 'desc' ? -1 : 1;
      const blank = (v) => v == null || v === '';
      sorted = [...rows].sort((a, b) => {
        const x = val(a), y = val(b);
        // Rows without a value (skipped, unknown) go last in both directions.
        if (blank(x) || blank(y)) return blank(x) - blank(y);
        if (kind === 'decimal') return f * compareDecimal(String(x), String(y));
        if (kind === 'number') return f * (Number(x) - Number(y));
        return f * String(x ?? '').localeCompare(String(y ?? ''));
      });
    }
    const head = h('tr', columns.map((c) => {
      const cls = [c.num ? 'num' : '', c.sort ? 'sortable' : '', c.cls || '', c.wide ? 'wide-only' : ''].filter(Boolean).join(' ');
      if (!c.sort) return h('th', { class: cls, scope: 'col' }, c.label);
      const active = state.key === c.key;
      return h('th', { class: cls, scope: 'col', 'aria-sort': active ? (state.dir === 'asc' ? 'ascending' : 'descending') : 'none' },
        h('button.sort', {
          type: 'button', dataset: { key: c.key },
          onclick: () => {
            if (state.key === c.key) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
            else { state.key = c.key; state.dir = c.sort === 'text' ? 'asc' : 'desc'; }
            draw();
          },
        }, c.label, h('span.arrow', { 'aria-hidden': 'true' }, active ? (state.dir === 'asc' ? '▲' : '▼') : '↕')));
    }));
    const visible = sorted.slice(0, state.shown);
    const body = visible.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null,
      columns.map((c) => h('td', { class: [c.num ? 'num' : c.cls || '', c.wide ? 'wide-only' : ''].filter(Boolean).join(' ') || null, dataset: { col: c.key, label: c.label } },
        c.render ? c.render(r) : r[c.key]))));
    const foot = opts.footer ? h('tfoot', h('tr', columns.map((c) =>
      h('td', { class: [c.num ? 'num' : '', c.wide ? 'wide-only' : ''].filter(Boolean).join(' ') || null, dataset: { col: c.key, label: c.num ? c.label : '' } }, opts.footer[c.key] ?? '')))) : null;
    mount(wrap, h(`table.data${opts.stack ? '.stackable' : ''}`, opts.caption ? h('caption.sr', opts.caption) : null,
      h('thead', head), h('tbody', body), foot));
    const rest = sorted.length - visible.length;
    mount(outer, wrap, rest > 0 ? h('div.more',
      h('span.muted', `Showing ${visible.length.toLocaleString('en')} of ${sorted.length.toLocaleString('en')}`),
      h('button.btn.ghost.small.show-more', {
        type: 'button', onclick: () => { state.shown += opts.pageSize || 100; draw(); },
      }, `Show ${Math.min(rest, opts.pageSize || 100)} more`)) : null);
  };
  draw();
  return outer;
}

/** moneyCell renders an amount with its currency code in a muted span. */
export function moneyCell(text) {
  const i = text.lastIndexOf(' ');
  if (i < 0) return text;
  return h('span.money', text.slice(0, i), ' ', h('span.ccy', text.slice(i + 1)));
}

/**
 * confirm asks a yes/no question in a modal dialog and resolves true only
 * when the person presses the confirming button.
 */
export function confirm({ title, body, ok = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const dlg = h('dialog.modal', { 'aria-labelledby': 'dlg-title' },
      h('form', { method: 'dialog' },
        h('h2#dlg-title', title),
        typeof body === 'string' ? h('p', body) : body,
        h('div.modal-actions',
          h('button.btn.ghost', { value: 'cancel', type: 'submit', formnovalidate: true }, 'Cancel'),
          h(`button.btn${danger ? '.danger' : '.primary'}`, { value: 'ok', type: 'submit', dataset: { confirm: '1' } }, ok))));
    dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'ok'); dlg.remove(); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/**
 * markStale keeps results on screen but says they no longer answer the
 * form (it changed, or its last submission was refused): they are dimmed
 * under a notice until the next run replaces them.
 */
export function markStale(out, text) {
  if (!out.firstElementChild || out.querySelector(':scope > .state')) return; // nothing shown, or only a state
  out.classList.add('stale');
  let note = out.querySelector(':scope > .stale-note');
  if (!note) {
    note = h('div.stale-note', { role: 'status' });
    out.prepend(note);
  }
  note.textContent = text;
}

/** notify shows a short message at the bottom of the window. */
export function notify(text, kind = 'ok') {
  let box = document.getElementById('toasts');
  if (!box) { box = h('div#toasts', { 'aria-live': 'polite' }); document.body.append(box); }
  const t = h(`div.toast.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, text);
  box.append(t);
  setTimeout(() => t.classList.add('leaving'), 4500);
  setTimeout(() => t.remove(), 5000);
}

/** badge shows an invoice status or similar label. */
export function badge(text, kind) {
  return h(`span.badge.${kind || String(text).toLowerCase()}`, text);
}
