// The lines of a bill (the month-to-date bill, an invoice, a quote) as one
// table that adds up on screen: each line's messages × unit price, and
// where a discount applies its list price, the discount and the net
// amount, with the same three as totals.

import { h, table, moneyCell } from './dom.js';
import { count, money, unitPrice, monthName, percent } from './format.js';
import { countryName, categoryLabel, lineMoney, billTotals } from './shapes.js';

/** marketCell names a line's market, its countries and, for an adjustment, the month it corrects. */
export function marketCell(l) {
  const countries = (l.countries || []).map((c) => c.country).filter((c) => c && c !== l.market);
  return h('span', countryName(l.market),
    countries.length ? h('span.code', countries.join(' ')) : null,
    l.kind === 'adjustment' ? h('span.note', `adjustment for ${monthName(l.period)}`) : null);
}

/** categoryCell names a line's category as the card bills it, and what the messages were sent as. */
export function categoryCell(l) {
  return h('span.category', { dataset: { category: l.category } }, categoryLabel(l.category, l.message_categories),
    l.pricing_type ? h('span.note', l.description || String(l.pricing_type).replace(/_/g, ' ')) : null);
}

function unitCell(l, currency) {
  if (l.free) return 'free';
  if (l.kind === 'adjustment') return '';
  return h('span', moneyCell(unitPrice(l.unit_price, currency)), l.average || l.tiers?.length > 1 ? h('span.code', 'avg') : null);
}

function discountCell(l, currency) {
  const m = lineMoney(l);
  if (!m.discounted) return h('span.muted', '—');
  const pct = percent(l.discount, false);
  if (!m.known) return h('span', { title: 'This invoice was issued before lines recorded their list price.' }, `${pct} off`);
  return h('span', moneyCell(money('-' + m.discount, currency)), h('span.code', pct));
}

/**
 * billTable draws lines in currency: market, category, messages, unit
 * price, then list price, discount and amount when any line has a
 * discount (else the amount alone), with the totals in its last row.
 */
export function billTable(lines, currency, { caption = 'Bill lines', pageSize, sortKey = 'amount', rowAttrs } = {}) {
  const t = billTotals(lines);
  const cols = [
    { key: 'market', label: 'Market', sort: 'text', value: (l) => countryName(l.market), render: marketCell },
    { key: 'category', label: 'Category', sort: 'text', value: (l) => categoryLabel(l.category, l.message_categories), render: categoryCell },
    { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (l) => count(l.quantity) },
    { key: 'unit_price', label: 'Unit price', num: true, sort: 'decimal', render: (l) => unitCell(l, currency) },
  ];
  const footer = { market: `${count(lines.length)} ${lines.length === 1 ? 'line' : 'lines'}`, amount: moneyCell(money(t.net, currency)) };
  if (t.discounted) {
    cols.push(
      { key: 'list', label: 'List price', num: true, sort: 'decimal', value: (l) => lineMoney(l).list ?? '', render: (l) => { const m = lineMoney(l); return m.known ? moneyCell(money(m.list, currency)) : h('span.muted', '—'); } },
      { key: 'discount_amount', label: 'Discount', num: true, sort: 'decimal', value: (l) => lineMoney(l).discount ?? '', render: (l) => discountCell(l, currency) },
    );
    footer.list = t.known ? moneyCell(money(t.list, currency)) : '';
    footer.discount_amount = t.known ? moneyCell(money('-' + t.discount, currency)) : '';
  }
  cols.push({ key: 'amount', label: t.discounted ? 'Net amount' : 'Amount', num: true, sort: 'decimal', render: (l) => moneyCell(money(l.amount, currency)) });
  return table(cols, lines, { caption, stack: true, sortKey, pageSize, footer, rowAttrs });
}

/**
 * billSummary states what the lines add up to: the list price, the
 * discounts and the total when there are discounts, else the total alone.
 */
export function billSummary(lines, total, currency, { label = 'Total', id } = {}) {
  const t = billTotals(lines);
  const rows = [];
  if (t.discounted && t.known) {
    rows.push(h('div.sum-row', h('span', 'List price'), h('span.sum-list', moneyCell(money(t.list, currency)))),
      h('div.sum-row', h('span', 'Discounts'), h('span.sum-discount', moneyCell(money('-' + t.discount, currency)))));
  }
  return h('div.bill-sum', rows, h('div.bill-total', h('span', label), h('strong.sum-total', { id }, moneyCell(money(total, currency)))));
}
