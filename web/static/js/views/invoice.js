// Invoice view (#/invoice/<id>): one invoice as it adds up — its lines
// with list price, discount and net amount where a discount applies, the
// adjustments for earlier months, the totals, and its PDF and CSV. Opened
// from the invoice lists of the finance and business views.

import * as api from '../api.js';
import { h, mount, card, badge, loading, errorBox, moneyCell } from '../dom.js';
import { humanize, monthName, shortDate, money } from '../format.js';
import { invoice, billTotals } from '../shapes.js';
import { billTable } from '../bill.js';
import { invoiceDownloads } from './business.js';

export function render(root, { args }) {
  const id = args[0] || '';
  mount(root, loading('Loading invoice…'));
  api.get(`/api/v1/invoices/${encodeURIComponent(id)}`).then((resp) => {
    mount(root, invoicePage(invoice(resp)));
  }).catch((err) => mount(root, h('div.page-head', h('h1', 'Invoice')), errorBox(err, () => render(root, { args }), 'Could not load this invoice')));
}

function invoicePage(inv) {
  const cur = inv.currency;
  const usage = inv.lines.filter((l) => l.kind !== 'adjustment');
  const adjustments = inv.lines.filter((l) => l.kind === 'adjustment');
  const customer = inv.customer?.name || inv.customer_id;
  const who = api.can('GET', '/api/v1/customers/{id}/usage')
    ? h('a', { href: `#/business/${encodeURIComponent(inv.customer_id)}` }, customer) : customer;
  const head = h('div.page-head',
    h('div', h('h1', inv.number ? `Invoice ${inv.number}` : 'Draft invoice', ' ', badge(humanize(inv.status), inv.status)),
      h('p.muted', who, ` · ${monthName(inv.period)} · ${cur}`)),
    h('div.actions', invoiceDownloads(inv, `/api/v1/invoices/${encodeURIComponent(inv.id)}`)));
  const facts = [
    ['Customer', `${customer} (${inv.customer_id})`],
    ['Period', monthName(inv.period)],
    ['Rate card', `${inv.card_id} v${inv.card_version}`],
    ['Usage counted up to', inv.usage_cutoff ? `${shortDate(inv.usage_cutoff)} ${String(inv.usage_cutoff).slice(11, 16)} UTC` : '—'],
  ];
  if (inv.finalized_at) facts.push(['Finalized', shortDate(inv.finalized_at)]);
  if (inv.status === 'draft' && inv.finalize_after) facts.push(['Finalizes after', shortDate(inv.finalize_after)]);
  if (inv.status === 'void') facts.push(['Void', `${inv.void_reason || 'voided'}${inv.replaced_by ? ' · replaced by a new invoice' : ''}`]);
  const factList = h('dl.facts#invoice-facts', facts.flatMap(([k, v]) => [h('dt', k), h('dd', v)]));

  const t = billTotals(usage);
  const sums = [];
  if (t.discounted && t.known) {
    sums.push(['List price', t.list, 'sum-list'], ['Discounts', '-' + t.discount, 'sum-discount']);
  }
  sums.push(['Subtotal', inv.subtotal ?? t.net, 'sum-subtotal']);
  if (adjustments.length) sums.push(['Adjustments for earlier months', inv.adjustments ?? '0', 'sum-adjustments']);
  const totals = h('div.bill-sum#invoice-totals',
    sums.map(([label, amount, cls]) => h('div.sum-row', h('span', label), h(`span.${cls}`, moneyCell(money(amount, cur))))),
    h('div.bill-total', h('span', `Total ${cur}`), h('strong#invoice-total.sum-total', moneyCell(money(inv.total, cur)))));

  return h('div.stack',
    head,
    card('Details', { id: 'invoice-details', wide: true }, factList),
    card(`Usage ${monthName(inv.period)}`, { id: 'invoice-lines', wide: true, sub: `${usage.length} ${usage.length === 1 ? 'line' : 'lines'}` },
      usage.length ? billTable(usage, cur, { caption: 'Invoice lines', sortKey: null }) : h('p.muted', 'No usage in this month.')),
    adjustments.length ? card('Adjustments for earlier months', { id: 'invoice-adjustments', wide: true, sub: 'usage that arrived after those months were invoiced' },
      billTable(adjustments, cur, { caption: 'Adjustment lines', sortKey: null })) : null,
    card('Totals', { id: 'invoice-totals-card', wide: true }, totals));
}
