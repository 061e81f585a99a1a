// Business view: one customer's usage over time, by country and category,
// the month-to-date bill and the invoices with their downloads. Customer
// keys see their own customer; finance and admin pick any customer.

import * as api from '../api.js';
import { h, mount, load, card, kpi, kpiFailed, table, moneyCell, empty, badge, notify, loading, errorBox } from '../dom.js';
import { stackedBars, hbars, doughnut, categoryColor } from '../charts.js';
import { count, money, humanize, monthName, shortDate, dayLabel, period, monthRange } from '../format.js';
import { usageRows, summarise, countryName, items, invoice } from '../shapes.js';
import { billTable, billSummary } from '../bill.js';

// The operations each part of the page needs (GET /api/v1/me lists the
// key's): a part the API would refuse is not shown.
const UPCOMING = '/api/v1/customers/{id}/invoices/upcoming';
const CUSTOMER_INVOICES = '/api/v1/customers/{id}/invoices';

const RANGES = [
  { id: '30d', label: 'Last 30 days' },
  { id: 'mtd', label: 'This month' },
  { id: 'last', label: 'Last month' },
  { id: '90d', label: 'Last 90 days' },
];

/** rangeBounds returns the [from, to) of a range id, in whole UTC days. */
export function rangeBounds(id, now = new Date()) {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  const iso = (ms) => new Date(ms).toISOString().replace('.000', '');
  const day = 86400000;
  switch (id) {
    case 'mtd': return { from: monthRange(period(now)).from, to: iso(today + day) };
    case 'last': return monthRange(period(now, -1));
    case '90d': return { from: iso(today - 89 * day), to: iso(today + day) };
    default: return { from: iso(today - 29 * day), to: iso(today + day) };
  }
}

/** title is the view's name for this key: what it may read of a customer. */
export function title() { return api.can('GET', UPCOMING) ? 'Usage & bill' : 'Usage'; }

export function render(root, { me, args }) {
  const staff = me.role !== 'customer';
  const id = staff ? (args[0] || '') : me.customer_id;
  const head = h('div.page-head');
  const body = h('div.stack');
  mount(root, head, body);
  if (staff) {
    const what = api.can('GET', UPCOMING) ? 'its usage, month-to-date bill and invoices' : 'its usage';
    mount(head, h('div', h('h1', title()), h('p.muted', `Pick a customer to see ${what}.`)),
      picker(id || sessionStorage.getItem('postage.lastCustomer') || ''));
    if (!id) {
      mount(body, api.can('GET', '/api/v1/reports/top-customers') ? topCustomers() : empty('Pick a customer', 'Type a customer id above.'));
      return;
    }
    sessionStorage.setItem('postage.lastCustomer', id);
  }
  if (!id) { mount(body, errorBox(new Error('This key is not bound to a customer.'))); return; }
  mount(body, loading('Loading customer…'));
  api.get(`/api/v1/customers/${encodeURIComponent(id)}`).then((c) => {
    if (!staff) {
      mount(head, h('div', h('h1', c.name), h('p.muted', `Customer ${c.id} · billed in ${c.currency}`)));
    } else {
      head.firstChild.replaceWith(h('div', h('h1', c.name), h('p.muted', `Customer ${c.id} · billed in ${c.currency}${c.country ? ' · ' + countryName(c.country) : ''}`)));
    }
    customerPage(body, c, { bill: api.can('GET', UPCOMING), invoices: api.can('GET', CUSTOMER_INVOICES) });
  }).catch((err) => mount(body, errorBox(err, () => render(root, { me, args }))));
}

// topCustomers is the staff landing: the biggest customers of the last
// three complete months, each a link to its page.
function topCustomers() {
  const el = h('div');
  load(el, () => api.get('/api/v1/reports/top-customers', { limit: 25 }), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No revenue yet', 'Pick a customer above: nothing has been billed in the last three months.');
    return table([
      { key: 'rank', label: '#', num: true, sort: 'number' },
      { key: 'name', label: 'Customer', sort: 'text', value: (r) => r.name || r.customer_id,
        render: (r) => h('a', { href: `#/business/${encodeURIComponent(r.customer_id)}` }, r.name || r.customer_id, h('span.code', r.customer_id)) },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'amount', label: 'Revenue', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.amount, r.currency)) },
      { key: 'share', label: 'Share', num: true, sort: 'decimal', render: (r) => `${r.share} %` },
    ], rows, { sortKey: 'rank', sortDir: 'asc', caption: 'Top customers', stack: true });
  });
  return card('Top customers', { id: 'top-customers', wide: true, sub: 'by revenue, last three complete months · pick one to see its usage and bill' }, el);
}

function picker(current) {
  const list = h('datalist#customer-list');
  const input = h('input#customer-pick', { type: 'search', list: 'customer-list', placeholder: 'Customer id or name', value: current || '', 'aria-label': 'Customer', autocomplete: 'off' });
  const byName = new Map();
  if (api.can('GET', '/api/v1/customers')) api.get('/api/v1/customers', { limit: 1000 }).then((resp) => {
    for (const c of items(resp)) {
      byName.set(c.name.toLowerCase(), c.id);
      list.append(h('option', { value: c.id }, `${c.name} (${c.currency})`));
    }
  }).catch(() => { /* the picker still takes a typed id */ });
  return h('form.picker', {
    onsubmit: (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      location.hash = `#/business/${encodeURIComponent(byName.get(v.toLowerCase()) || v)}`;
    },
  }, input, list, h('button.btn.primary', { type: 'submit' }, 'Show'));
}

// customerPage shows one customer: its usage, and its month-to-date bill
// and invoices when the key may read them (sales keys model prices on
// usage but do not read what a customer owes).
function customerPage(body, c, may) {
  const ranges = h('div.segmented', { role: 'group', 'aria-label': 'Period' });
  const kpis = h('div.kpis#business-kpis');
  const billKpi = may.bill ? kpi('Month-to-date bill', '…', null, { id: 'kpi-bill' }) : null;
  const usage = h('div.usage-area');
  const bill = h('div#mtd-bill');
  const invoices = h('div#invoices');
  let current = sessionStorage.getItem('postage.range') || '30d';
  const pick = (id) => {
    current = id;
    sessionStorage.setItem('postage.range', id);
    for (const b of ranges.children) b.setAttribute('aria-pressed', String(b.dataset.range === id));
    loadUsage(usage, kpis, c, id, billKpi);
  };
  for (const r of RANGES) ranges.append(h('button.seg', { type: 'button', dataset: { range: r.id }, onclick: () => pick(r.id) }, r.label));
  mount(body,
    h('div.toolbar', ranges),
    kpis,
    usage,
    may.bill ? card('Month-to-date bill', { id: 'bill-card', wide: true, sub: monthName(period(new Date())) }, bill) : null,
    may.invoices ? card('Invoices', { id: 'invoices-card', wide: true }, invoices) : null);
  pick(current);
  if (may.bill) loadBill(bill, c, billKpi);
  if (may.invoices) loadInvoices(invoices, c);
}

// usageSeq numbers usage loads, so a slow answer for a period the user has
// already left is dropped instead of drawn over the newer one.
let usageSeq = 0;

function loadUsage(area, kpis, c, rangeId, billKpi) {
  const { from, to } = rangeBounds(rangeId);
  const seq = ++usageSeq;
  // The bill figure belongs to the month, not to the range: it is one
  // element, filled once by loadBill and kept across range changes.
  mount(kpis, kpi('Messages', '…'), kpi('Countries', '…'), kpi('Top category', '…'), billKpi);
  const failed = () => {
    if (seq === usageSeq) mount(kpis, kpiFailed('Messages', { id: 'kpi-messages-failed' }), kpiFailed('Countries'), kpiFailed('Top category'), billKpi);
  };
  load(area, async () => {
    const resp = await api.get(`/api/v1/customers/${encodeURIComponent(c.id)}/usage`, { from, to, window: 'day', group_by: 'country,category' });
    if (seq !== usageSeq) throw Object.assign(new Error('superseded'), { stale: true });
    return resp;
  }, (resp) => {
    const s = summarise(usageRows(resp));
    const label = RANGES.find((r) => r.id === rangeId).label.toLowerCase();
    mount(kpis,
      kpi('Messages', h('span#kpi-messages', count(s.total)), label),
      kpi('Countries', h('span#kpi-countries', count(s.countries.length)), 'with at least one message'),
      kpi('Top category', s.categories[0] ? humanize(s.categories[0].key) : '—', s.categories[0] ? `${s.categories[0].share.toFixed(1)} % of messages` : 'no messages yet'),
      billKpi);
    if (s.total === 0) {
      return card('Messages per day', { wide: true }, empty('No messages in this period', 'Usage appears here within seconds of being sent.'));
    }
    const csv = h('button.btn.small.ghost#usage-csv', {
      type: 'button', title: 'Daily usage by country and category as CSV',
      onclick: async () => {
        try {
          const q = api.query({ from, to, window: 'day', group_by: 'country,category' });
          const f = await api.download(`/api/v1/customers/${encodeURIComponent(c.id)}/usage${q}`, `usage-${c.id}.csv`, 'text/csv');
          notify(`Downloaded ${f.name}`);
        } catch (err) { notify(err.message, 'error'); }
      },
    }, 'Download CSV');
    return h('div.stack', usageChart(s, csv), h('div.grid2', countryCard(s), categoryCard(s)));
  }, failed);
}

function usageChart(s, csv) {
  const cats = s.categories.map((x) => x.key);
  const series = cats.map((cat) => ({ label: humanize(cat), color: categoryColor(cat), values: s.days.map((d) => s.perDay.get(d).get(cat) || 0) }));
  return card('Messages per day', { id: 'usage-chart', sub: 'by category, UTC days', actions: csv },
    stackedBars(s.days.map(dayLabel), series, { label: 'Messages per day by category' }));
}

function countryCard(s) {
  const top = s.countries.slice(0, 10);
  return card('By country', { id: 'by-country', sub: `${count(s.countries.length)} ${s.countries.length === 1 ? 'country' : 'countries'}` },
    hbars(top.map((x) => countryName(x.key)), top.map((x) => x.quantity), { label: 'Messages by country' }),
    table([
      { key: 'key', label: 'Country', sort: 'text', value: (r) => countryName(r.key), render: (r) => h('span', countryName(r.key), h('span.code', r.key || '—')) },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'share', label: 'Share', num: true, sort: 'number', render: (r) => `${r.share.toFixed(1)} %` },
    ], s.countries, { sortKey: 'quantity', caption: 'Messages by country', pageSize: 10 }));
}

function categoryCard(s) {
  return card('By category', { id: 'by-category', sub: `${count(s.categories.length)} ${s.categories.length === 1 ? 'category' : 'categories'}` },
    doughnut(s.categories.map((x) => humanize(x.key)), s.categories.map((x) => x.quantity), { label: 'Messages by category', colors: s.categories.map((x) => categoryColor(x.key)) }),
    table([
      { key: 'key', label: 'Category', sort: 'text', render: (r) => humanize(r.key) },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'share', label: 'Share', num: true, sort: 'number', render: (r) => `${r.share.toFixed(1)} %` },
    ], s.categories, { sortKey: 'quantity', caption: 'Messages by category', footer: { key: 'Total', quantity: count(s.total), share: '100.0 %' } }));
}

function loadBill(el, c, billKpi) {
  load(el, () => api.get(`/api/v1/customers/${encodeURIComponent(c.id)}/invoices/upcoming`), (resp) => {
    const inv = invoice(resp);
    mount(billKpi, h('div.kpi-label', 'Month-to-date bill'), h('div.kpi-value', moneyCell(money(inv.total, inv.currency))), h('div.kpi-note', 'so far this month'));
    const lines = inv.lines.filter((l) => Number(l.quantity) > 0 || l.amount !== '0');
    return h('div',
      billSummary(lines, inv.total, inv.currency, { label: 'Total so far', id: 'mtd-total' }),
      lines.length === 0 ? empty('Nothing billed yet this month', 'Messages sent this month appear here, priced, within seconds.')
        : billTable(lines, inv.currency, { caption: 'Month-to-date bill lines', pageSize: 10 }),
      h('p.help', 'Estimate from usage so far; the invoice is issued after the month ends.'));
  }, () => {
    billKpi.classList.add('failed');
    mount(billKpi, h('div.kpi-label', 'Month-to-date bill'), h('div.kpi-value', h('span.kpi-error', 'unavailable')), h('div.kpi-note', 'could not load: see below'));
  });
}

/** invoiceDownloads returns the PDF and CSV buttons for an invoice. */
export function invoiceDownloads(inv, base) {
  const dl = (ext, type) => h('button.btn.small.ghost', {
    type: 'button', title: `Download ${ext.toUpperCase()}`, dataset: { download: ext },
    onclick: async (e) => {
      const b = e.currentTarget;
      b.disabled = true;
      try {
        const f = await api.download(`${base}.${ext}`, `${inv.number || inv.id}.${ext}`, type);
        notify(`Downloaded ${f.name}`);
      } catch (err) {
        notify(err.message, 'error');
      } finally { b.disabled = false; }
    },
  }, ext.toUpperCase());
  return h('span.downloads', dl('pdf', 'application/pdf'), dl('csv', 'text/csv'));
}

function loadInvoices(el, c) {
  load(el, () => api.get(`/api/v1/customers/${encodeURIComponent(c.id)}/invoices`, { limit: 100 }), (resp) => {
    const rows = items(resp).map(invoice);
    if (rows.length === 0) return empty('No invoices yet', 'Invoices are issued after each calendar month.');
    return table([
      { key: 'number', label: 'Invoice', render: (r) => invoiceLink(r) },
      { key: 'period', label: 'Period', render: (r) => monthName(r.period) },
      { key: 'status', label: 'Status', render: (r) => badge(humanize(r.status), r.status) },
      { key: 'issued_at', label: 'Issued', render: (r) => (r.status === 'draft' ? '—' : shortDate(r.issued_at)) },
      { key: 'total', label: 'Total', num: true, render: (r) => moneyCell(money(r.total, r.currency)) },
      { key: 'dl', label: 'Download', cls: 'actions-cell', render: (r) => invoiceDownloads(r, `/api/v1/invoices/${encodeURIComponent(r.id)}`) },
    ], rows, { caption: 'Invoices', stack: true, rowAttrs: (r) => ({ dataset: { invoice: r.id } }) });
  });
}


/** invoiceLink names an invoice (its number, or "draft") as a link to its page when the key may open it. */
export function invoiceLink(r) {
  const text = r.number || h('span.muted', 'draft');
  if (!api.can('GET', '/api/v1/invoices/{id}')) return text;
  return h('a.invoice-link', { href: `#/invoice/${encodeURIComponent(r.id)}` }, text);
}
