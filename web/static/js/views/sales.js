// Sales view: "what if" re-rating of real past usage under a proposed rate
// card (book totals, a chart of the biggest movers, sortable tables), and
// a quote builder that prices a hypothetical monthly volume mix.

import * as api from '../api.js';
import { h, mount, card, kpi, table, moneyCell, empty, badge, notify, loading, errorBox, markStale } from '../dom.js';
import { hbars } from '../charts.js';
import { count, money, signedMoney, percent, humanize, monthName, period, compareDecimal, compact } from '../format.js';
import { items, countryName, billTotals } from '../shapes.js';
import { billTable, billSummary } from '../bill.js';

const CATEGORIES = ['marketing', 'utility', 'authentication', 'authentication_international', 'service', 'notification', 'session'];

export function render(root, { args }) {
  // Each tool shows when the key may call its API (finance keys may quote
  // but not simulate).
  const mayQuote = api.can('POST', '/api/v1/quotes');
  const maySimulate = api.can('POST', '/api/v1/simulations');
  const tab = (args[0] === 'quote' && mayQuote) || !maySimulate ? 'quote' : 'simulate';
  const body = h('div.stack');
  mount(root,
    h('div.page-head', h('div', h('h1', 'Sales'), h('p.muted', maySimulate ? 'Model prices: re-rate real usage under a proposed card, or quote a volume mix.' : 'Model prices: quote a volume mix.'))),
    h('nav.subtabs', { 'aria-label': 'Sales tools' },
      maySimulate ? h('a', { href: '#/sales', class: tab === 'simulate' ? 'active' : null, 'aria-current': tab === 'simulate' ? 'page' : null }, 'What-if simulation') : null,
      mayQuote ? h('a', { href: '#/sales/quote', class: tab === 'quote' ? 'active' : null, 'aria-current': tab === 'quote' ? 'page' : null }, 'Quote builder') : null),
    body);
  mount(body, loading('Loading rate cards…'));
  api.get('/api/v1/ratecards').then((resp) => {
    const cards = items(resp, 'cards');
    if (cards.length === 0) { mount(body, empty('No rate cards', 'Import a rate card first: postage ratecards import.')); return; }
    if (tab === 'quote') quoteBuilder(body, cards);
    else simulator(body, cards);
  }).catch((err) => mount(body, errorBox(err, () => render(root, { args }))));
}

function cardSelect(id, cards, preferNonDefault) {
  const pick = (preferNonDefault && cards.find((c) => !c.default)) || cards.find((c) => c.default) || cards[0];
  return h(`select#${id}`, { required: true }, cards.map((c) =>
    h('option', { value: c.id, selected: c.id === pick.id }, `${c.name || c.id} · ${c.currency}${c.default ? ' · default' : ''}`)));
}

// ---- simulations ----

function simulator(body, cards) {
  const cardIn = cardSelect('sim-card', cards, true);
  const versionIn = h('select#sim-version', { 'aria-describedby': 'version-help' }, h('option', { value: '' }, 'In effect each month'));
  const loadVersions = () => {
    mount(versionIn, h('option', { value: '' }, 'In effect each month'));
    api.get(`/api/v1/ratecards/${encodeURIComponent(cardIn.value)}/versions`).then((resp) => {
      for (const v of items(resp)) {
        const from = v.effective_from ? ` from ${monthName(v.effective_from)}` : '';
        const note = v.note ? ` · ${v.note.length > 48 ? v.note.slice(0, 47) + '…' : v.note}` : '';
        versionIn.append(h('option', { value: String(v.number) }, `v${v.number} · ${v.status}${from}${note}`));
      }
    }).catch(() => { /* the active version still works */ });
  };
  cardIn.addEventListener('change', loadVersions);
  loadVersions();
  const fromIn = h('input#sim-from', { type: 'month', required: true, value: period(new Date(), -3) });
  const toIn = h('input#sim-to', { type: 'month', required: true, value: period(new Date(), -1) });
  const custIn = h('input#sim-customers', { type: 'text', placeholder: 'all customers with usage' });
  const keepIn = h('input#sim-keep', { type: 'checkbox', checked: true });
  const runBtn = h('button.btn.primary#sim-run', { type: 'submit' }, 'Run simulation');
  const out = h('div#sim-result');
  const form = h('form.panel.form-grid#sim-form', {
    // Results on screen answer the form as it was run: once it changes,
    // they say so until the next run.
    oninput: () => markStale(out, 'The form has changed since these results were computed: run the simulation again to update them.'),
    onchange: () => markStale(out, 'The form has changed since these results were computed: run the simulation again to update them.'),
    onsubmit: async (e) => {
      e.preventDefault();
      if (fromIn.value > toIn.value) {
        notify('The first month must not be after the last.', 'error');
        markStale(out, 'Not run: the first month is after the last. These results are from the previous run.');
        return;
      }
      const req = {
        card_id: cardIn.value, from: fromIn.value, to: toIn.value,
        customers: custIn.value.split(/[\s,]+/).filter(Boolean), keep_overrides: keepIn.checked, breakdown: false,
      };
      if (versionIn.value) req.version = Number(versionIn.value);
      runBtn.disabled = true;
      runBtn.textContent = 'Running…';
      mount(out, loading(`Re-rating ${monthName(req.from)} – ${monthName(req.to)} under ${req.card_id}…`));
      try {
        const res = await api.post('/api/v1/simulations', req);
        mount(out, simulationResult(res, req));
      } catch (err) {
        mount(out, errorBox(err, null, 'The simulation did not run'));
      } finally {
        runBtn.disabled = false;
        runBtn.textContent = 'Run simulation';
      }
    },
  },
  h('label.span2', 'Proposed card', cardIn),
  h('label.span2', 'Version', versionIn, h('span#version-help.help', 'A draft version shows what a price change would do before it is activated.')),
  h('label', 'From month', fromIn),
  h('label', 'To month', toIn),
  h('label.span2', 'Customers', custIn, h('span.help', 'Optional: ids separated by commas.')),
  h('div.form-actions.split', h('label.check', keepIn, 'Keep customers’ negotiated overrides'), runBtn));
  mount(body, card('Proposed pricing', { id: 'sim-card-panel' }, form), out);
  mount(out, empty('No simulation yet', 'Pick a proposed card and a range of past months, then run the simulation.'));
}

/** simulationResult draws the answer of POST /api/v1/simulations. */
export function simulationResult(res, req) {
  const totals = res.totals || [];
  const customers = res.customers || [];
  const included = customers.filter((c) => !c.skipped);
  const skipped = customers.filter((c) => c.skipped);
  if (customers.length === 0) {
    return empty('No usage in these months', 'There is nothing to re-rate: pick months with traffic.');
  }
  const months = res.months?.length ? `${monthName(res.months[0])} – ${monthName(res.months[res.months.length - 1])}` : `${monthName(res.from)} – ${monthName(res.to)}`;
  const kpis = h('div.kpis#sim-kpis', totals.flatMap((t) => [
    kpi(`Current revenue${totals.length > 1 ? ` (${t.currency})` : ''}`, moneyCell(money(t.current, t.currency)), `${count(t.customers)} customers · ${count(t.quantity)} messages`, { dataset: { kpi: 'current', currency: t.currency } }),
    kpi('Proposed revenue', moneyCell(money(t.proposed, t.currency)), `under ${res.card_id}${res.versions?.length ? ' v' + res.versions.join(', v') : ''}`, { dataset: { kpi: 'proposed', currency: t.currency } }),
    kpi('Difference', h('span', { class: deltaClass(t.difference) }, moneyCell(signedMoney(t.difference, t.currency))), percent(t.percent), { dataset: { kpi: 'difference', currency: t.currency } }),
  ]));
  const movers = [...included].sort((a, b) => compareDecimal(abs(b.difference), abs(a.difference))).slice(0, 15);
  const cur = movers[0]?.currency || totals[0]?.currency || '';
  const chart = movers.length ? card('Biggest movers', { id: 'sim-chart', sub: `change in revenue of the ${movers.length} customers it moves most, ${cur}` },
    hbars(movers.map((c) => trunc(c.name || c.customer_id)), movers.map((c) => Number(c.difference)), {
      label: 'Change in revenue of the biggest movers',
      colors: movers.map((c) => (String(c.difference).startsWith('-') ? '#e03131' : '#2f9e44')),
      fmt: (v) => (typeof v === 'number' ? (v > 0 ? '+' : '') + compact(v) : String(v)),
      tip: (v) => signedMoney(String(v), cur),
    })) : null;
  const csv = req ? h('button.btn.small.ghost#sim-csv', {
    type: 'button',
    onclick: async () => {
      try {
        const f = await api.download('/api/v1/simulations?format=csv', `simulation-${req.card_id}-${req.from}-${req.to}.csv`, 'text/csv', req);
        notify(`Downloaded ${f.name}`);
      } catch (err) { notify(err.message, 'error'); }
    },
  }, 'Download CSV') : null;
  const custTable = card('Customers', { id: 'sim-customers-card', wide: true, actions: csv, sub: `${months} · ${included.length} customers${skipped.length ? `, ${skipped.length} skipped` : ''}` },
    table([
      { key: 'name', label: 'Customer', sort: 'text', value: (r) => r.name || r.customer_id, render: (r) => h('span', r.name || r.customer_id, h('span.code', r.customer_id)) },
      { key: 'current_cards', label: 'Current card', render: (r) => (r.current_cards || []).join(', ') },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'current', label: 'Current', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.current, r.currency)) },
      { key: 'proposed', label: 'Proposed', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.proposed, r.currency)) },
      { key: 'difference', label: 'Difference', num: true, sort: 'decimal', render: (r) => (r.skipped ? badge('skipped', 'void') : h('span', { class: deltaClass(r.difference) }, moneyCell(signedMoney(r.difference, r.currency)))) },
      { key: 'percent', label: 'Change', num: true, sort: 'decimal', value: (r) => (r.skipped ? '' : r.percent ?? '0'), render: (r) => (r.skipped ? h('span.muted', { title: r.skipped }, r.skipped) : h('span', { class: deltaClass(r.difference) }, percent(r.percent))) },
    ], customers, { sortKey: 'difference', caption: 'Simulation by customer', stack: true, pageSize: 50, rowAttrs: (r) => ({ dataset: { customer: r.customer_id } }) }));
  const bd = res.breakdown || [];
  const breakdown = bd.length ? card('Where revenue moves', { id: 'sim-breakdown', wide: true, sub: 'whole book, by market and category of the proposed card' },
    table([
      { key: 'market', label: 'Market', sort: 'text', render: (r) => countryName(r.market) },
      { key: 'category', label: 'Category', sort: 'text', render: (r) => humanize(r.category) },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'current', label: 'Current', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.current, r.currency)) },
      { key: 'proposed', label: 'Proposed', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.proposed, r.currency)) },
      { key: 'difference', label: 'Difference', num: true, sort: 'decimal', render: (r) => h('span', { class: deltaClass(r.difference) }, moneyCell(signedMoney(r.difference, r.currency))) },
      { key: 'percent', label: 'Change', num: true, sort: 'decimal', value: (r) => r.percent ?? '0', render: (r) => h('span', { class: deltaClass(r.difference) }, percent(r.percent)) },
    ], bd, { sortKey: 'difference', caption: 'Simulation by market and category', stack: true, pageSize: 25 })) : null;
  return h('div.stack', kpis, chart, custTable, breakdown,
    res.elapsed_ms != null ? h('p.help', `Re-rated in ${res.elapsed_ms < 1000 ? `${res.elapsed_ms} ms` : `${(res.elapsed_ms / 1000).toFixed(1)} s`}.`) : null);
}

function abs(d) { return String(d ?? '0').replace(/^-/, ''); }
function deltaClass(d) {
  const s = String(d ?? '0');
  if (/^-/.test(s) && /[1-9]/.test(s)) return 'down';
  if (/[1-9]/.test(s)) return 'up';
  return 'flat';
}
function trunc(s) { return s.length > 18 ? s.slice(0, 17) + '…' : s; }

// ---- quotes ----

function quoteBuilder(body, cards) {
  const cardIn = cardSelect('q-card', cards, false);
  const countryIn = h('input#q-customer-country', { type: 'text', maxlength: '2', placeholder: 'e.g. DE', pattern: '[A-Za-z]{2}', size: '4' });
  const custList = h('datalist#q-customer-list');
  const custIn = h('input#q-customer', { type: 'text', placeholder: 'optional customer id', list: 'q-customer-list', autocomplete: 'off' });
  if (api.can('GET', '/api/v1/customers')) api.get('/api/v1/customers', { limit: 1000 }).then((resp) => {
    for (const c of items(resp)) custList.append(h('option', { value: c.id }, `${c.name} (${c.currency})`));
  }).catch(() => { /* any id can still be typed */ });
  const lines = h('tbody#q-lines');
  const countryList = h('datalist#q-countries');
  let categories = CATEGORIES.map((name) => ({ name }));
  const categoryOptions = (selected) => categories.map((c) =>
    h('option', { value: c.name, selected: c.name === selected, dataset: { as: c.as || '' } }, humanize(c.name) + (c.free ? ' (free)' : '')));
  // A row under an alias says which category the card bills it as, so
  // choosing "Marketing" and being quoted "Notification" is no surprise.
  const billedAs = (tr) => {
    const sel = tr.querySelector('.q-category');
    const as = sel.selectedOptions[0]?.dataset.as || '';
    tr.querySelector('.q-as').textContent = as ? `billed as ${humanize(as)}` : '';
  };
  // The card's categories and countries come from its version in effect.
  const loadCard = () => api.get(`/api/v1/ratecards/${encodeURIComponent(cardIn.value)}/versions`).then((resp) => {
    const month = period(new Date());
    const vs = items(resp);
    const v = vs.filter((x) => x.status === 'active' && (!x.effective_from || x.effective_from <= month)).pop() || vs[vs.length - 1];
    if (!v) return;
    if (v.categories?.length) {
      // Aliases are offered too (billed as their category), so a mix can be
      // written in the sender's own vocabulary on any card.
      categories = v.categories.flatMap((c) => [{ name: c.name, free: c.free },
        ...(c.aliases || []).map((a) => ({ name: a, free: c.free, as: c.name }))]);
    }
    for (const sel of lines.querySelectorAll('.q-category')) {
      const keep = categories.some((c) => c.name === sel.value) ? sel.value : categories[0].name;
      mount(sel, categoryOptions(keep));
      billedAs(sel.closest('tr'));
    }
    mount(countryList, Object.keys(v.countries || {}).sort().map((c) => h('option', { value: c }, countryName(c))));
  }).catch(() => { /* keep the generic list */ });
  cardIn.addEventListener('change', loadCard);
  const out = h('div#quote-result');
  const docs = h('span#quote-docs');
  // A quote with discounts has three more money columns: it takes the
  // page's width, under the mix.
  const grid = h('div.grid-quote');
  let lastReq = null;
  const addLine = (country = '', category = 'marketing', quantity = '') => {
    const tr = h('tr.q-line',
      h('td', h('input.q-country', { type: 'text', maxlength: '2', placeholder: 'DE', value: country, required: true, pattern: '[A-Za-z]{2}', list: 'q-countries', 'aria-label': 'Recipient country' })),
      h('td', h('select.q-category', { 'aria-label': 'Category', onchange: () => billedAs(tr) }, categoryOptions(category)), h('span.q-as.help')),
      h('td.num', h('input.q-quantity', { type: 'number', min: '1', step: '1', value: quantity, placeholder: '100000', required: true, 'aria-label': 'Messages per month' })),
      h('td.remove', h('button.icon-btn', { type: 'button', 'aria-label': 'Remove line', title: 'Remove line', onclick: () => { tr.remove(); } }, '×')));
    lines.append(tr);
    billedAs(tr);
  };
  addLine('DE', 'marketing', '250000');
  addLine('IN', 'utility', '1000000');
  addLine('BR', 'authentication', '400000');
  loadCard();
  const submit = h('button.btn.primary#q-run', { type: 'submit' }, 'Price this mix');
  const stale = () => { markStale(out, 'The mix has changed since this quote: price it again to update it.'); mount(docs); };
  const form = h('form#quote-form', {
    oninput: stale,
    onchange: stale,
    onsubmit: async (e) => {
      e.preventDefault();
      const rows = [...lines.querySelectorAll('tr')];
      for (const tr of rows) markRow(tr, null);
      const itemsIn = rows.map((tr) => ({
        country: tr.querySelector('.q-country').value.trim().toUpperCase(),
        category: tr.querySelector('.q-category').value,
        quantity: Number(tr.querySelector('.q-quantity').value),
      }));
      if (itemsIn.length === 0) { notify('Add at least one line.', 'error'); mount(out, empty('No lines', 'Add a line to price.')); return; }
      const req = { items: itemsIn };
      if (custIn.value.trim()) req.customer_id = custIn.value.trim();
      else req.card_id = cardIn.value;
      if (countryIn.value.trim()) req.customer_country = countryIn.value.trim().toUpperCase();
      submit.disabled = true;
      mount(docs);
      mount(out, loading('Pricing…'));
      try {
        const q = await api.post('/api/v1/quotes', req);
        lastReq = req;
        grid.classList.toggle('wide', billTotals(q.lines || []).discounted);
        mount(out, quoteResult(q));
        mount(docs, quoteDownloads(() => lastReq, q));
      } catch (err) {
        mount(out, quoteError(err, rows));
      } finally { submit.disabled = false; }
    },
  },
  h('div.form-grid',
    h('label.span2', 'Rate card', cardIn),
    h('label', 'Or a customer', custIn, custList, h('span.help', 'Prices with that customer’s card and negotiated overrides.')),
    h('label', 'Customer’s country', countryIn, h('span.help', 'Optional: authentication sent abroad is priced as international.'))),
  h('div.table-wrap', h('table.data.edit',
    h('thead', h('tr', h('th', 'Country'), h('th', 'Category'), h('th.num', 'Messages / month'), h('th', h('span.sr', 'Remove')))),
    lines)),
  countryList,
  h('div.form-actions', h('button.btn.ghost#q-add', { type: 'button', onclick: () => addLine('', categories[0]?.name) }, 'Add line'), submit));
  mount(body, grid);
  mount(grid, card('Volume mix', { id: 'quote-card' }, form), card('Quote', { id: 'quote-out', actions: docs }, out));
  mount(out, empty('No quote yet', 'Enter a monthly volume mix and press “Price this mix”.'));
}

/** quoteResult draws the answer of POST /api/v1/quotes: lines that add up, with list price, discount and net where the customer has discounts. */
export function quoteResult(q) {
  const cur = q.currency;
  const lines = q.lines || [];
  return h('div',
    billSummary(lines, q.total, cur, { label: `Monthly total on ${q.card_id}${q.version ? ' v' + q.version : ''}`, id: 'quote-total' }),
    billTable(lines, cur, { caption: 'Quote lines', sortKey: null }),
    lines.some((l) => l.tiers?.length > 1) ? h('p.help', 'Tiered lines show the average unit price over the month’s volume.') : null);
}

// ITEM_FIELD reads the JSON path of a quote item's problem: items[3].country.
const ITEM_FIELD = /^items\[(\d+)\]\.(\w+)$/;

/**
 * quoteError shows why a mix could not be priced. Problems with an item
 * name its row as people count (the first row is row 1) and mark it in
 * the form; other problems are shown as the API words them.
 */
export function quoteError(err, rows) {
  const probs = (err?.problem?.errors || []).map((p) => ({ p, m: ITEM_FIELD.exec(p?.field || '') })).filter((x) => x.m);
  if (probs.length === 0) return errorBox(err, null, 'This mix could not be priced');
  for (const { m } of probs) markRow(rows[Number(m[1])], m[2]);
  return h('div.state.error', { role: 'alert' },
    h('div.state-icon', { 'aria-hidden': 'true' }, '!'),
    h('div', h('strong', 'This mix could not be priced'),
      h('ul.error-list', probs.map(({ p, m }) => h('li.error-text', `Row ${Number(m[1]) + 1}: ${m[2]} ${p.reason}`)))));
}

// markRow marks a row of the mix as holding a bad field (null clears it).
function markRow(tr, field) {
  if (!tr) return;
  if (field == null) {
    tr.classList.remove('bad');
    for (const el of tr.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    return;
  }
  tr.classList.add('bad');
  tr.querySelector({ country: '.q-country', category: '.q-category', quantity: '.q-quantity' }[field] || 'input')?.setAttribute('aria-invalid', 'true');
}

// quoteDownloads offers the quote shown as CSV and PDF: the same request
// posted again, answered as a document.
function quoteDownloads(request, q) {
  const dl = (format, type) => h('button.btn.small.ghost', {
    type: 'button', dataset: { download: format }, title: `Download this quote as ${format.toUpperCase()}`,
    onclick: async (e) => {
      const b = e.currentTarget;
      b.disabled = true;
      try {
        const f = await api.download(`/api/v1/quotes?format=${format}`, `quote-${q.card_id}.${format}`, type, request());
        notify(`Downloaded ${f.name}`);
      } catch (err) { notify(err.message, 'error'); } finally { b.disabled = false; }
    },
  }, format.toUpperCase());
  return h('span.downloads', dl('csv', 'text/csv'), dl('pdf', 'application/pdf'));
}
