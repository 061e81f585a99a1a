// Finding customers by name as well as id: a search box whose suggestions
// come from GET /api/v1/customers?q= (id or name contains the text), and
// resolveCustomer, which turns what was typed into a customer id.

import * as api from './api.js';
import { h } from './dom.js';
import { items } from './shapes.js';

/**
 * customerSearch returns a search input (with id) whose suggestions list
 * customers as "Name (id)" while the person types, and the datalist that
 * holds them (both go into the page).
 */
export function customerSearch(id, value, placeholder = 'Customer name or id (optional)') {
  const list = h(`datalist#${id}-list`);
  const input = h(`input#${id}`, {
    type: 'search', list: `${id}-list`, placeholder, value: value || '', 'aria-label': 'Customer', autocomplete: 'off',
  });
  let timer = 0;
  let asked = '';
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (q.length < 2 || q === asked) return;
    timer = setTimeout(async () => {
      asked = q;
      try {
        const found = items(await api.get('/api/v1/customers', { q, limit: 20 }));
        list.replaceChildren(...found.map((c) => h('option', { value: c.id }, `${c.name} (${c.id})`)));
      } catch { /* suggestions are a convenience: the search still resolves on submit */ }
    }, 200);
  });
  return { input, list };
}

/**
 * resolveCustomer turns typed text into a customer id: an exact id, else
 * the one customer whose name is the text (case-insensitive), else the
 * only customer whose id or name contains it. It returns
 * {id, matches} — id '' when nothing (or several) match, with the
 * candidates in matches.
 */
export async function resolveCustomer(text) {
  const q = String(text || '').trim();
  if (!q) return { id: '', matches: [] };
  const found = items(await api.get('/api/v1/customers', { q, limit: 20 }));
  return { id: pickCustomer(q, found), matches: found };
}

/** pickCustomer chooses among search results (pure, tested in the browser). */
export function pickCustomer(q, found) {
  const t = q.toLowerCase();
  const byID = found.find((c) => c.id === q);
  if (byID) return byID.id;
  const byName = found.filter((c) => String(c.name).toLowerCase() === t);
  if (byName.length === 1) return byName[0].id;
  if (found.length === 1) return found[0].id;
  return '';
}
