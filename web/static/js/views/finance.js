// Finance view: invoices by period and status, approving drafts and voiding
// finalized invoices (each after a confirmation), downloads, the period
// export and usage that no invoice will bill.

import * as api from '../api.js';
import { h, mount, load, card, kpi, table, moneyCell, empty, badge, notify, confirm, loading, errorBox } from '../dom.js';
import { count, money, humanize, monthName, shortDate, period, compareDecimal, percent } from '../format.js';
import { items, invoice, moneyTotals } from '../shapes.js';
import { stackedBars } from '../charts.js';
import { invoiceDownloads, invoiceLink } from './business.js';
import { customerSearch, resolveCustomer } from '../customers.js';

const STATUSES = [
  { id: '', label: 'All statuses' },
  { id: 'draft', label: 'Draft' },
  { id: 'finalized', label: 'Finalized' },
  { id: 'void', label: 'Void' },
];

export function render(root, { me }) {
  const saved = JSON.parse(sessionStorage.getItem('postage.financeFilter') || 'null');
  const f = saved || { period: period(new Date(), -1), status: '', customer: '' };
  const periodIn = h('input#f-period', { type: 'month', value: f.period, 'aria-label': 'Period' });
  const statusIn = h('select#f-status', { 'aria-label': 'Status' }, STATUSES.map((s) => h('option', { value: s.id, selected: s.id === f.status }, s.label)));
  const { input: custIn, list: custList } = customerSearch('f-customer', f.customerText ?? f.customer);
  const exportBtn = h('button.btn#export', { type: 'button', onclick: () => exportPeriod(periodIn.value) }, 'Export period (CSV)');
  const summary = h('div.kpis#finance-kpis');
  const list = h('div#invoice-list');
  const bulk = h('span#bulk');
  const unbilled = h('div#unbilled');
  const revenue = card('Revenue', { id: 'revenue-card', wide: true, sub: 'rated usage: the last three complete months, and this month so far with its projection' }, h('div#revenue'));
  // The customer filter takes a name or an id: the text resolves to one
  // customer's id (GET /api/v1/customers?q=), or says what matched.
  const apply = async () => {
    const text = custIn.value.trim();
    let customer = '';
    if (text) {
      try {
        const r = await resolveCustomer(text);
        if (!r.id) {
          mount(summary);
          mount(list, empty(r.matches.length ? `${count(r.matches.length)} customers match “${text}”` : `No customer matches “${text}”`,
            r.matches.length ? `Pick one: ${r.matches.slice(0, 5).map((c) => `${c.name} (${c.id})`).join(', ')}${r.matches.length > 5 ? ', …' : ''}.` : 'Type part of a customer’s name or id.'));
          return;
        }
        customer = r.id;
      } catch (err) { mount(list, errorBox(err, apply)); return; }
    }
    const nf = { period: periodIn.value, status: statusIn.value, customer, customerText: text };
    sessionStorage.setItem('postage.financeFilter', JSON.stringify(nf));
    loadInvoices(list, summary, nf, false, {}, bulk);
  };
  const runBtn = h('button.btn#run-period', { type: 'button', onclick: () => runPeriod(periodIn.value, apply) }, 'Run invoices');
  mount(root,
    h('div.page-head', h('div', h('h1', 'Finance'), h('p.muted', 'Invoices by period and status, approvals, voids and exports.')), h('div.actions', runBtn, exportBtn)),
    h('div.stack', revenue,
      h('form.filters', { onsubmit: (e) => { e.preventDefault(); apply(); } },
        h('label', 'Period', periodIn), h('label', 'Status', statusIn), h('label.grow', 'Customer', custIn, custList),
        h('button.btn.primary', { type: 'submit' }, 'Show invoices')),
      summary,
      card('Invoices', { id: 'invoices-card', wide: true, actions: bulk }, list),
      card('Unbilled usage', { id: 'unbilled-card', wide: true, sub: 'usage no invoice bills: unknown customers, no rate card' }, unbilled)));
  apply();
  loadUnbilled(unbilled);
  loadRevenue(revenue.querySelector('#revenue'));
}

// loadRevenue draws the book's monthly revenue and the running month's
// forecast (reports API), in the currency with the most revenue.
function loadRevenue(el) {
  load(el, () => Promise.all([api.get('/api/v1/reports/revenue', { group_by: 'month' }), api.get('/api/v1/reports/forecast')]), ([rev, fc]) => {
    const totals = [...(fc.totals || []), ...(rev.totals || [])];
    if (totals.length === 0) return empty('No revenue yet', 'Revenue appears once customers send messages.');
    const cur = totals.reduce((a, t) => (compareDecimal(t.projected_amount ?? t.amount ?? '0', a.projected_amount ?? a.amount ?? '0') > 0 ? t : a)).currency;
    const months = (rev.rows || []).filter((r) => r.currency === cur);
    const f = (fc.totals || []).find((t) => t.currency === cur) || { amount_to_date: '0', projected_amount: '0' };
    const labels = [...months.map((m) => monthName(m.key)), `${monthName(fc.month)} so far`];
    const chart = stackedBars(labels, [
      { label: 'Revenue', color: '#3056d3', values: [...months.map((m) => Number(m.amount)), Number(f.amount_to_date)] },
      { label: 'Projected rest of month', color: '#a5b8f3', values: [...months.map(() => 0), Math.max(0, Number(f.projected_amount) - Number(f.amount_to_date))] },
    ], { height: 340, label: `Revenue per month in ${cur}` });
    const last = months[months.length - 1];
    const prev = months[months.length - 2];
    const change = last && prev && compareDecimal(prev.amount, '0') !== 0
      ? percent(((Number(last.amount) - Number(prev.amount)) * 100 / Number(prev.amount)).toFixed(2)) + ` on ${monthName(prev.key)}` : '';
    return h('div.revenue',
      chart,
      h('div.revenue-kpis',
        kpi(`${monthName(fc.month)} so far`, h('span#kpi-mtd', moneyCell(money(f.amount_to_date, cur))), `${count(f.quantity_to_date)} messages · ${count(f.customers)} customers`),
        kpi(`Projected for ${monthName(fc.month)}`, h('span#kpi-projected', moneyCell(money(f.projected_amount, cur))), 'linear run-rate, rated with tiers'),
        last ? kpi(monthName(last.key), moneyCell(money(last.amount, cur)), change || `${count(last.quantity)} messages`) : null));
  });
}

// MAX bounds how many invoices one filter loads (1,000 a request): the
// headline figures add up everything loaded, the table shows 100 at a time.
const MAX = 5000;

async function loadInvoices(el, summary, f, quiet = false, state = {}, bulk = null) {
  if (!quiet) { mount(el, loading('Loading invoices…')); mount(summary); if (bulk) mount(bulk); }
  const reload = () => loadInvoices(el, summary, f, true, state, bulk);
  try {
    const rows = [];
    let cursor = '';
    do {
      const resp = await api.get('/api/v1/invoices', { period: f.period, status: f.status, customer: f.customer, limit: 1000, cursor });
      rows.push(...items(resp).map(invoice));
      cursor = resp.next_cursor || '';
    } while (cursor && rows.length < MAX);
    if (rows.length === 0) {
      mount(summary);
      mount(el, empty('No invoices match', `Nothing for ${monthName(f.period) || 'this period'}${f.status ? ` with status ${f.status}` : ''}${f.customer ? ` for ${f.customer}` : ''}. Invoices are created by the monthly run.`));
      return;
    }
    drawSummary(summary, rows, Boolean(cursor));
    if (bulk) mount(bulk, approveAll(rows.filter((r) => r.status === 'draft'), reload));
    mount(el, invoiceTable(rows, reload, state),
      cursor ? h('p.help', `Only the first ${count(rows.length)} invoices are loaded: narrow the filter to see the rest.`) : null);
  } catch (err) {
    if (quiet) notify(err.message, 'error');
    else mount(el, errorBox(err, () => loadInvoices(el, summary, f, false, state, bulk)));
  }
}

// drawSummary shows the headline figures: what finalized invoices bill
// (Billed) apart from what drafts would bill once approved (In drafts);
// void invoices count in neither.
function drawSummary(el, rows, partial) {
  const by = (s) => rows.filter((r) => r.status === s);
  const finalized = rows.filter((r) => r.status === 'finalized' || r.status === 'issued' || r.status === 'paid');
  const amounts = (id, totals) => h(`div.kpi-multi#${id}`, totals.length ? totals.map((t) => h('div', moneyCell(money(t.amount, t.currency)))) : '—');
  mount(el,
    kpi('Invoices', h('span#kpi-invoices', count(rows.length)), partial ? 'first ones loaded' : 'matching the filter'),
    kpi('Drafts', h('span#kpi-drafts', count(by('draft').length)), 'awaiting approval'),
    kpi('Finalized', h('span#kpi-finalized', count(finalized.length)), 'numbered and frozen'),
    kpi('Billed', amounts('kpi-billed', moneyTotals(finalized)), 'finalized invoices'),
    kpi('In drafts', amounts('kpi-billed-draft', moneyTotals(by('draft'))), 'not billed until approved'));
}

function invoiceTable(rows, reload, state) {
  return table([
    { key: 'number', label: 'Invoice', sort: 'text', cls: 'nowrap', render: (r) => invoiceLink(r) },
    { key: 'customer_id', label: 'Customer', sort: 'text', render: (r) => h('a', { href: `#/business/${encodeURIComponent(r.customer_id)}` }, r.customer_name || r.customer_id) },
    { key: 'period', label: 'Period', sort: 'text', wide: true, render: (r) => monthName(r.period) },
    { key: 'status', label: 'Status', sort: 'text', render: (r) => badge(humanize(r.status), r.status) },
    { key: 'issued_at', label: 'Issued', sort: 'text', wide: true, render: (r) => (r.status === 'draft' ? '—' : shortDate(r.issued_at)) },
    { key: 'total', label: 'Total', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.total, r.currency)) },
    { key: 'actions', label: 'Actions', cls: 'actions-cell', render: (r) => h('span.row-actions', actions(r, reload), invoiceDownloads(r, `/api/v1/invoices/${encodeURIComponent(r.id)}`)) },
  ], rows, { caption: 'Invoices', stack: true, pageSize: 100, state, rowAttrs: (r) => ({ dataset: { invoice: r.id, status: r.status } }) });
}

// approveAll approves every draft of the list, one request each, after a
// confirmation that states how many and how much.
function approveAll(drafts, reload) {
  if (drafts.length < 2) return null;
  const totals = moneyTotals(drafts).map((t) => money(t.amount, t.currency)).join(', ');
  const btn = h('button.btn.small#approve-all', {
    type: 'button',
    onclick: async () => {
      const ok = await confirm({
        title: `Approve ${count(drafts.length)} drafts?`,
        body: h('div', h('p', `Each gets the next invoice number and can never change again. Together: ${totals}.`),
          h('p.muted', 'Drafts are approved one by one; if one fails, the others stay approved.')),
        ok: `Approve ${count(drafts.length)} invoices`,
      });
      if (!ok) return;
      btn.disabled = true;
      let done = 0;
      const failed = [];
      for (const inv of drafts) {
        btn.textContent = `Approving ${done + 1} of ${drafts.length}…`;
        try {
          await api.post(`/api/v1/invoices/${encodeURIComponent(inv.id)}/approve`);
          done++;
        } catch (err) {
          if (err.code === 'unauthorized') return;
          failed.push(`${inv.customer_name || inv.customer_id}: ${err.message}`);
        }
      }
      notify(failed.length ? `${done} approved; ${failed.length} failed (${failed[0]})` : `${done} invoices approved`, failed.length ? 'error' : 'ok');
      reload();
    },
  }, `Approve all ${count(drafts.length)} drafts`);
  return btn;
}

function actions(inv, reload) {
  const out = [];
  const who = `${inv.customer_name || inv.customer_id}, ${monthName(inv.period)}`;
  if (inv.status === 'draft') {
    out.push(h('button.btn.small.primary', {
      type: 'button', dataset: { action: 'approve' },
      onclick: async () => {
        const ok = await confirm({
          title: 'Approve this invoice?',
          body: h('div', h('p', `The draft for ${who} (${money(inv.total, inv.currency)}) gets the next invoice number and can never change again.`),
            h('p.muted', 'A mistake after this needs a void and a new invoice.')),
          ok: 'Approve and number it',
        });
        if (!ok) return;
        try {
          const res = await api.post(`/api/v1/invoices/${encodeURIComponent(inv.id)}/approve`);
          notify(res?.number ? `Approved: invoice ${res.number}` : 'Invoice approved');
          reload();
        } catch (err) { notify(err.message, 'error'); }
      },
    }, 'Approve'));
  }
  if (inv.status === 'finalized' || inv.status === 'issued') {
    const reason = h('textarea#void-reason', { rows: 2, placeholder: 'Reason (shown on the credit record)', required: true });
    out.push(h('button.btn.small.danger-ghost', {
      type: 'button', dataset: { action: 'void' },
      onclick: async () => {
        reason.value = '';
        const ok = await confirm({
          title: `Void invoice ${inv.number}?`,
          body: h('div', h('p', `${who}, ${money(inv.total, inv.currency)}. Voiding cannot be undone; a new draft for the same month replaces it, ready to correct and approve.`),
            h('label.block', 'Reason', reason)),
          ok: 'Void invoice', danger: true,
        });
        if (!ok) return;
        try {
          const res = await api.post(`/api/v1/invoices/${encodeURIComponent(inv.id)}/void`, { reason: reason.value.trim() || 'voided from the dashboard' });
          notify(`Invoice ${inv.number} voided${res?.reissued?.id ? '; a new draft replaces it' : ''}`);
          reload();
        } catch (err) { notify(err.message, 'error'); }
      },
    }, 'Void'));
  }
  return out;
}

async function runPeriod(p, reload) {
  if (!p) { notify('Pick a period first.', 'error'); return; }
  const ok = await confirm({
    title: `Run invoices for ${monthName(p)}?`,
    body: 'Creates or refreshes a draft for every customer with usage in the month. Finalized invoices never change; drafts past their grace period are finalized.',
    ok: 'Run now',
  });
  if (!ok) return;
  try {
    const run = await api.post('/api/v1/invoice-runs', { period: p });
    notify(run?.customers != null
      ? `Run finished: ${run.customers} customers, ${run.created} new drafts, ${run.refreshed} refreshed, ${run.finalized} finalized`
      : 'Run finished');
    reload();
  } catch (err) { notify(err.message, 'error'); }
}

async function exportPeriod(p) {
  if (!p) { notify('Pick a period first.', 'error'); return; }
  try {
    const f = await api.download(`/api/v1/invoices.csv${api.query({ period: p })}`, `invoices-${p}.csv`, 'text/csv');
    notify(`Downloaded ${f.name}`);
  } catch (err) { notify(err.message, 'error'); }
}

function loadUnbilled(el) {
  load(el, () => api.get('/api/v1/reports/unbilled'), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No unbilled usage', 'Every message in the recent months belongs to a customer with a rate card.');
    return table([
      { key: 'customer_id', label: 'Customer id', sort: 'text' },
      { key: 'month', label: 'Month', sort: 'text', render: (r) => monthName(r.month) },
      { key: 'reason', label: 'Reason', sort: 'text', render: (r) => humanize(r.reason) },
      { key: 'detail', label: 'Detail', render: (r) => h('span.muted', r.detail || '') },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
    ], rows, { sortKey: 'quantity', caption: 'Unbilled usage', stack: true, footer: { customer_id: 'Total', quantity: count(resp.totals?.quantity ?? rows.reduce((a, r) => a + Number(r.quantity || 0), 0)) } });
  });
}
