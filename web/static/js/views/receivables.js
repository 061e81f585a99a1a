// Receivables view (#/receivables): what finalized invoices still owe.
// The aging report (current, 1–30, 31–60, 61–90, over 90 days past due)
// per customer and in total, the invoices with a balance and their
// payment status, recording a payment, issuing a credit note, recording a
// refund of what the customer is owed or writing a balance off (each in a
// dialog), and the latest payments, refunds and credit notes. Every figure comes from the API (docs/BILLING.md).

import * as api from '../api.js';
import { h, mount, load, card, kpi, table, moneyCell, empty, badge, notify, confirm } from '../dom.js';
import { count, money, humanize, monthName, shortDate, addDecimal, compareDecimal } from '../format.js';
import { items } from '../shapes.js';
import { stackedBars, color } from '../charts.js';
import { customerSearch, resolveCustomer } from '../customers.js';

const STATUSES = [
  { id: 'outstanding', label: 'With a balance' },
  { id: 'overdue', label: 'Overdue' },
  { id: 'open', label: 'Open' },
  { id: 'partially_paid', label: 'Partially paid' },
  { id: 'uncollectible', label: 'Uncollectible' },
  { id: 'paid', label: 'Paid' },
  { id: '', label: 'All' },
];

const BUCKETS = [
  { key: 'current', label: 'Current' },
  { key: 'days_1_30', label: '1–30 days' },
  { key: 'days_31_60', label: '31–60 days' },
  { key: 'days_61_90', label: '61–90 days' },
  { key: 'days_over_90', label: 'Over 90 days' },
];

// statusBadge maps a payment status to the badge colours the page has.
export function statusBadge(status) {
  const kind = { paid: 'paid', overdue: 'void', uncollectible: 'void', partially_paid: 'draft' }[status] || 'open';
  return badge(humanize(status), kind);
}

/** overdueTotals adds the past-due buckets of aging rows, per currency. */
export function overdueTotals(rows) {
  return rows.map((r) => ({ currency: r.currency, amount: addDecimal(r.days_1_30, r.days_31_60, r.days_61_90, r.days_over_90) }));
}

export function render(root) {
  const saved = JSON.parse(sessionStorage.getItem('postage.receivablesFilter') || 'null') || { status: 'outstanding', customerText: '' };
  const statusIn = h('select#r-status', { 'aria-label': 'Payment status' }, STATUSES.map((s) => h('option', { value: s.id, selected: s.id === saved.status }, s.label)));
  const { input: custIn, list: custList } = customerSearch('r-customer', saved.customerText);
  const kpis = h('div.kpis#recv-kpis');
  const aging = h('div#aging');
  const recv = h('div#receivables');
  const payments = h('div#payments');
  const refunds = h('div#refunds');
  const credits = h('div#credit-notes');
  const agingBtn = h('button.btn#aging-csv', { type: 'button', onclick: () => download('/api/v1/receivables/aging?format=csv', 'aging.csv', 'text/csv') }, 'Download aging (CSV)');
  const refresh = () => {
    loadAging(aging, kpis);
    loadReceivables(recv, filter, refresh);
    loadPayments(payments);
    loadRefunds(refunds);
    loadCreditNotes(credits, refresh);
  };
  let filter = { status: saved.status, customer: '' };
  const apply = async () => {
    const text = custIn.value.trim();
    let customer = '';
    if (text) {
      const r = await resolveCustomer(text).catch((err) => { notify(err.message, 'error'); return null; });
      if (!r) return;
      if (!r.id) {
        mount(recv, empty(r.matches.length ? `${count(r.matches.length)} customers match “${text}”` : `No customer matches “${text}”`,
          r.matches.length ? `Pick one: ${r.matches.slice(0, 5).map((c) => `${c.name} (${c.id})`).join(', ')}.` : 'Type part of a customer’s name or id.'));
        return;
      }
      customer = r.id;
    }
    filter = { status: statusIn.value, customer };
    sessionStorage.setItem('postage.receivablesFilter', JSON.stringify({ status: statusIn.value, customerText: text }));
    loadReceivables(recv, filter, refresh);
  };
  mount(root,
    h('div.page-head', h('div', h('h1', 'Receivables'), h('p.muted', 'What finalized invoices still owe, by how late: payments, credit notes, refunds and write-offs.')),
      h('div.actions', agingBtn)),
    h('div.stack',
      kpis,
      card('Aging', { id: 'aging-card', wide: true, sub: 'balances by days past the due date, as of today (written-off invoices left out)' }, aging),
      h('form.filters#recv-filters', { onsubmit: (e) => { e.preventDefault(); apply(); } },
        h('label', 'Status', statusIn), h('label.grow', 'Customer', custIn, custList),
        h('button.btn.primary', { type: 'submit' }, 'Show invoices')),
      card('Invoices owed', { id: 'receivables-card', wide: true, sub: 'finalized invoices, newest first' }, recv),
      card('Payments', { id: 'payments-card', wide: true, sub: 'the latest recorded, newest first' }, payments),
      card('Refunds', { id: 'refunds-card', wide: true, sub: 'paid back outside postage, the latest recorded, newest first' }, refunds),
      card('Credit notes', { id: 'credit-notes-card', wide: true, sub: 'the latest issued, newest first' }, credits)));
  loadAging(aging, kpis);
  apply();
  loadPayments(payments);
  loadRefunds(refunds);
  loadCreditNotes(credits, refresh);
}

async function download(path, fallback, accept) {
  try {
    const f = await api.download(path, fallback, accept);
    notify(`Downloaded ${f.name}`);
  } catch (err) { notify(why(err), 'error'); }
}

// loadAging draws the headline figures (per currency: what is owed, how
// much of it is overdue), a chart of the buckets in the currency owed most,
// and the aging table per customer.
function loadAging(el, kpis) {
  mount(kpis);
  load(el, () => api.get('/api/v1/receivables/aging'), (rep) => {
    const totals = rep.totals || [];
    const cell = (id, rows) => h(`div.kpi-multi#${id}`, rows.length ? rows.map((t) => h('div', moneyCell(money(t.amount, t.currency)))) : '—');
    mount(kpis,
      kpi('Outstanding', cell('kpi-outstanding', totals.map((t) => ({ currency: t.currency, amount: t.total }))), `${count(totals.reduce((a, t) => a + t.invoices, 0))} invoices with a balance`),
      kpi('Not yet due', cell('kpi-current', totals.map((t) => ({ currency: t.currency, amount: t.current }))), 'current'),
      kpi('Overdue', cell('kpi-overdue', overdueTotals(totals)), 'past the due date'),
      kpi('As of', h('span#kpi-asof', shortDate(rep.as_of)), 'UTC'));
    const rows = rep.customers || [];
    if (rows.length === 0) return empty('Nothing is owed', 'Every finalized invoice is paid, credited or written off.');
    const top = [...totals].sort((a, b) => compareDecimal(b.total, a.total))[0];
    const chart = stackedBars(BUCKETS.map((b) => b.label), [
      { label: `Owed in ${top.currency}`, color: color(0), values: BUCKETS.map((b) => Number(top[b.key])) },
    ], { height: 220, label: `Receivables by days past due in ${top.currency}` });
    const cols = [
      { key: 'customer_name', label: 'Customer', sort: 'text', value: (r) => r.customer_name || r.customer_id,
        render: (r) => h('a', { href: `#/business/${encodeURIComponent(r.customer_id)}` }, r.customer_name || r.customer_id, h('span.code', r.customer_id)) },
      ...BUCKETS.map((b) => ({ key: b.key, label: b.label, num: true, sort: 'decimal', render: (r) => moneyCell(money(r[b.key], r.currency)) })),
      { key: 'total', label: 'Total', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.total, r.currency)) },
      { key: 'invoices', label: 'Invoices', num: true, sort: 'number', render: (r) => count(r.invoices) },
    ];
    const foot = totals.length === 1 ? Object.fromEntries([['customer_name', 'Total'], ...BUCKETS.map((b) => [b.key, money(totals[0][b.key], totals[0].currency)]),
      ['total', money(totals[0].total, totals[0].currency)], ['invoices', count(totals[0].invoices)]]) : null;
    return h('div', chart, table(cols, rows, { sortKey: 'total', caption: 'Aging per customer', stack: true, footer: foot,
      rowAttrs: (r) => ({ dataset: { customer: r.customer_id, currency: r.currency } }) }));
  });
}

// loadReceivables lists the invoices of the filter with their balance
// and the actions finance takes on them.
function loadReceivables(el, f, refresh) {
  const params = { limit: 500, customer: f.customer };
  if (f.status === 'outstanding') params.outstanding = 'true';
  else params.status = f.status;
  load(el, () => api.get('/api/v1/receivables', params), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No invoices match', 'Finalized invoices appear here with what they still owe.');
    return table([
      { key: 'number', label: 'Invoice', sort: 'text', cls: 'nowrap', render: (r) => h('span', { title: monthName(r.period) }, r.number) },
      { key: 'customer_name', label: 'Customer', sort: 'text', value: (r) => r.customer_name || r.customer_id, render: (r) => r.customer_name || r.customer_id },
      { key: 'due_date', label: 'Due', sort: 'text', cls: 'nowrap', render: (r) => shortDate(r.due_date) },
      { key: 'total', label: 'Total', num: true, sort: 'decimal', wide: true, render: (r) => moneyCell(money(r.total, r.currency)) },
      { key: 'paid', label: 'Paid', num: true, sort: 'decimal', wide: true, render: (r) => moneyCell(money(r.paid, r.currency)) },
      { key: 'credited', label: 'Credited', num: true, sort: 'decimal', wide: true, render: (r) => moneyCell(money(r.credited, r.currency)) },
      { key: 'refunded', label: 'Refunded', num: true, sort: 'decimal', wide: true, render: (r) => moneyCell(money(r.refunded, r.currency)) },
      { key: 'balance', label: 'Balance', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.balance, r.currency)) },
      { key: 'status', label: 'Status', sort: 'text', render: (r) => h('span', statusBadge(r.status), r.days_past_due > 0 ? h('div.muted', `${r.days_past_due} days late`) : null) },
      { key: 'actions', label: 'Actions', cls: 'actions-cell', render: (r) => h('span.row-actions', actions(r, refresh)) },
    ], rows, { sortKey: 'due_date', sortDir: 'asc', caption: 'Invoices owed', stack: true, pageSize: 100,
      rowAttrs: (r) => ({ dataset: { invoice: r.invoice_id, status: r.status } }) });
  });
}

const METHODS = ['bank_transfer', 'card', 'direct_debit', 'cash', 'check', 'other'];

function today() { return new Date().toISOString().slice(0, 10); }

function actions(r, refresh) {
  const owes = compareDecimal(r.balance, '0') > 0;
  const out = [];
  if (owes) {
    out.push(h('button.btn.small.primary', { type: 'button', dataset: { action: 'pay' }, title: 'Record a payment', onclick: () => recordPayment(r, refresh) }, 'Pay'));
  }
  if (compareDecimal(r.balance, '0') < 0) {
    out.push(h('button.btn.small', { type: 'button', dataset: { action: 'refund' }, title: 'Record a refund of what the customer is owed', onclick: () => recordRefund(r, refresh) }, 'Refund'));
  }
  out.push(h('button.btn.small', { type: 'button', dataset: { action: 'credit' }, title: 'Issue a credit note', onclick: () => creditNote(r, refresh) }, 'Credit'));
  if (owes && r.status !== 'uncollectible') {
    out.push(h('button.btn.small.danger-ghost', { type: 'button', dataset: { action: 'write-off' }, title: 'Write the balance off as uncollectible', onclick: () => writeOff(r, refresh) }, 'Write off'));
  }
  return out;
}

// why says why the API refused: a refusal of a payment or credit note
// (overpayment, currency_mismatch, credit_exceeds_remaining, …) in the
// API's own words.
export function why(err) {
  const d = err?.problem?.detail;
  if (err?.status === 409 && d) return d[0].toUpperCase() + d.slice(1) + (/[.!?]$/.test(d) ? '' : '.');
  return err?.message || String(err);
}

// ask shows a dialog with fields and resolves true when confirmed.
function ask(title, fields, ok, danger = false) {
  return confirm({ title, body: h('div', fields), ok, danger });
}

async function recordPayment(r, refresh) {
  const amount = h('input#pay-amount', { type: 'text', inputmode: 'decimal', value: r.balance, required: true });
  const date = h('input#pay-date', { type: 'date', value: today(), max: today(), required: true });
  const method = h('select#pay-method', METHODS.map((m) => h('option', { value: m }, humanize(m))));
  const reference = h('input#pay-reference', { type: 'text', maxlength: 200, placeholder: 'bank or processor reference' });
  const ok = await ask(`Record a payment on ${r.number}`, [
    h('p', `${r.customer_name || r.customer_id} owes ${money(r.balance, r.currency)} of ${money(r.total, r.currency)}.`),
    h('label.block', `Amount (${r.currency})`, amount), h('label.block', 'Received on', date),
    h('label.block', 'Method', method), h('label.block', 'Reference', reference),
  ], 'Record payment');
  if (!ok) return;
  try {
    const res = await api.post(`/api/v1/invoices/${encodeURIComponent(r.invoice_id)}/payments`, {
      amount: amount.value.trim(), currency: r.currency, date: date.value, method: method.value, reference: reference.value.trim(),
    });
    notify(`Payment of ${money(res.payment.amount, res.payment.currency)} recorded: ${humanize(res.receivable.status).toLowerCase()}, ${money(res.receivable.balance, res.receivable.currency)} left`);
    refresh();
  } catch (err) { notify(why(err), 'error'); }
}

// recordRefund records money paid back to the customer outside postage,
// at most what the invoice owes the customer (minus its balance).
async function recordRefund(r, refresh) {
  const owed = r.balance.replace(/^-/, '');
  const amount = h('input#refund-amount', { type: 'text', inputmode: 'decimal', value: owed, required: true });
  const date = h('input#refund-date', { type: 'date', value: today(), max: today(), required: true });
  const method = h('select#refund-method', METHODS.map((m) => h('option', { value: m }, humanize(m))));
  const reference = h('input#refund-reference', { type: 'text', maxlength: 200, placeholder: 'bank or processor reference' });
  const ok = await ask(`Record a refund on ${r.number}`, [
    h('p', `${r.customer_name || r.customer_id} is owed ${money(owed, r.currency)} on ${r.number}. Record the money paid back (postage moves no money).`),
    h('label.block', `Amount (${r.currency})`, amount), h('label.block', 'Paid back on', date),
    h('label.block', 'Method', method), h('label.block', 'Reference', reference),
  ], 'Record refund');
  if (!ok) return;
  try {
    const res = await api.post(`/api/v1/invoices/${encodeURIComponent(r.invoice_id)}/refunds`, {
      amount: amount.value.trim(), currency: r.currency, date: date.value, method: method.value, reference: reference.value.trim(),
    });
    notify(`Refund of ${money(res.refund.amount, res.refund.currency)} recorded: balance ${money(res.receivable.balance, res.receivable.currency)}`);
    refresh();
  } catch (err) { notify(why(err), 'error'); }
}

async function creditNote(r, refresh) {
  const amount = h('input#credit-amount', { type: 'text', inputmode: 'decimal', required: true, placeholder: '0.00' });
  const description = h('input#credit-description', { type: 'text', maxlength: 200, placeholder: 'what the credit is for' });
  const reason = h('textarea#credit-reason', { rows: 2, required: true, placeholder: 'Reason (printed on the credit note)' });
  const ok = await ask(`Credit note for ${r.number}`, [
    h('p', `A credit note reduces what ${r.number} asks for by the amount and its tax. It is numbered, sent with its own PDF, and never changes.`),
    h('label.block', `Amount before tax (${r.currency})`, amount), h('label.block', 'Description', description), h('label.block', 'Reason', reason),
    h('p.muted', 'Whole lines or part of a line’s quantity: postage creditnotes create, or the API.'),
  ], 'Issue credit note');
  if (!ok) return;
  try {
    const cn = await api.post(`/api/v1/invoices/${encodeURIComponent(r.invoice_id)}/credit-notes`, {
      reason: reason.value.trim(), lines: [{ amount: amount.value.trim(), description: description.value.trim() }],
    });
    notify(`Credit note ${cn.number} issued: ${money(cn.total, cn.currency)}`);
    refresh();
  } catch (err) { notify(why(err), 'error'); }
}

async function writeOff(r, refresh) {
  const reason = h('textarea#writeoff-reason', { rows: 2, required: true, placeholder: 'Reason' });
  const ok = await ask(`Write off ${r.number}?`, [
    h('p', `${money(r.balance, r.currency)} of ${r.customer_name || r.customer_id} is written off as uncollectible and leaves the aging report. A payment that still arrives is recorded as usual.`),
    h('label.block', 'Reason', reason),
  ], 'Write off', true);
  if (!ok) return;
  try {
    await api.post(`/api/v1/invoices/${encodeURIComponent(r.invoice_id)}/uncollectible`, { reason: reason.value.trim() });
    notify(`${r.number} written off`);
    refresh();
  } catch (err) { notify(why(err), 'error'); }
}

function loadPayments(el) {
  load(el, () => api.get('/api/v1/payments', { limit: 100 }), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No payments yet', 'Payments recorded against invoices appear here.');
    return table([
      { key: 'date', label: 'Date', sort: 'text', render: (r) => shortDate(r.date) },
      { key: 'invoice_number', label: 'Invoice', sort: 'text', cls: 'nowrap' },
      { key: 'customer_id', label: 'Customer', sort: 'text' },
      { key: 'method', label: 'Method', sort: 'text', wide: true, render: (r) => humanize(r.method) },
      { key: 'reference', label: 'Reference', wide: true, render: (r) => h('span.muted', r.reference || '') },
      { key: 'amount', label: 'Amount', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.amount, r.currency)) },
    ], rows, { caption: 'Payments', stack: true, pageSize: 25, rowAttrs: (r) => ({ dataset: { payment: r.id } }) });
  });
}

function loadRefunds(el) {
  load(el, () => api.get('/api/v1/refunds', { limit: 100 }), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No refunds yet', 'Refunds of what customers are owed after a credit note appear here.');
    return table([
      { key: 'date', label: 'Date', sort: 'text', render: (r) => shortDate(r.date) },
      { key: 'invoice_number', label: 'Invoice', sort: 'text', cls: 'nowrap' },
      { key: 'customer_id', label: 'Customer', sort: 'text' },
      { key: 'method', label: 'Method', sort: 'text', wide: true, render: (r) => humanize(r.method) },
      { key: 'reference', label: 'Reference', wide: true, render: (r) => h('span.muted', r.reference || '') },
      { key: 'amount', label: 'Amount', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.amount, r.currency)) },
    ], rows, { caption: 'Refunds', stack: true, pageSize: 25, rowAttrs: (r) => ({ dataset: { refund: r.id } }) });
  });
}

// voidCreditNote voids a credit note with a reason: it keeps its number
// and says VOID; its invoice owes its total again.
async function voidCreditNote(cn, refresh) {
  const reason = h('textarea#void-cn-reason', { rows: 2, required: true, placeholder: 'Reason (printed on the void credit note)' });
  const ok = await ask(`Void credit note ${cn.number}?`, [
    h('p', `${cn.number} keeps its number and says VOID; invoice ${cn.invoice_number} owes its ${money(cn.total, cn.currency)} again. Refused when that money was already refunded.`),
    h('label.block', 'Reason', reason),
  ], 'Void credit note', true);
  if (!ok) return;
  try {
    const res = await api.post(`/api/v1/credit-notes/${encodeURIComponent(cn.id)}/void`, { reason: reason.value.trim() });
    notify(`${res.credit_note.number} voided: ${res.receivable.number} owes ${money(res.receivable.balance, res.receivable.currency)}`);
    refresh();
  } catch (err) { notify(why(err), 'error'); }
}

function loadCreditNotes(el, refresh) {
  load(el, () => api.get('/api/v1/credit-notes', { limit: 100 }), (resp) => {
    const rows = items(resp);
    if (rows.length === 0) return empty('No credit notes yet', 'Credit notes issued against invoices appear here.');
    return table([
      { key: 'number', label: 'Credit note', sort: 'text', cls: 'nowrap' },
      { key: 'issue_date', label: 'Issued', sort: 'text', render: (r) => shortDate(r.issue_date) },
      { key: 'invoice_number', label: 'Invoice', sort: 'text', cls: 'nowrap' },
      { key: 'customer_id', label: 'Customer', sort: 'text', render: (r) => r.customer?.name || r.customer_id },
      { key: 'reason', label: 'Reason', wide: true, render: (r) => h('span.muted', r.voided_at ? `${r.reason} — void: ${r.void_reason}` : r.reason) },
      { key: 'status', label: 'Status', sort: 'text', value: (r) => (r.voided_at ? 'void' : 'issued'), render: (r) => (r.voided_at ? badge('Void', 'void') : badge('Issued', 'paid')) },
      { key: 'total', label: 'Total', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.total, r.currency)) },
      { key: 'docs', label: 'Documents', render: (r) => h('span.row-actions',
        ['pdf', 'csv'].map((f) => h('button.btn.small.ghost', {
          type: 'button', dataset: { download: f },
          onclick: () => download(`/api/v1/credit-notes/${encodeURIComponent(r.id)}.${f}`, `${r.number}.${f}`, f === 'pdf' ? 'application/pdf' : 'text/csv'),
        }, f.toUpperCase())),
        r.voided_at ? null : h('button.btn.small.danger-ghost', { type: 'button', dataset: { action: 'void-credit-note' }, title: 'Void this credit note', onclick: () => voidCreditNote(r, refresh) }, 'Void')) },
    ], rows, { caption: 'Credit notes', stack: true, pageSize: 25, rowAttrs: (r) => ({ dataset: { creditNote: r.id, status: r.voided_at ? 'void' : 'issued' } }) });
  });
}
