// Readers for API answers. They accept the documented field names (and the
// few spellings seen while the API settled) so each view works on one
// normalised shape. Pure functions: the browser test checks them too.

import { addDecimal, humanize, subDecimal } from './format.js';

// Country names come from the API (GET /api/v1/countries), the one source
// the documents and the CLI use too, not from the browser's own data,
// which names some countries differently ("Türkiye" for the card's
// "Turkey").
let countryNames = new Map();

/** setCountryNames records the API's names: [{code, name}]. */
export function setCountryNames(list) {
  countryNames = new Map((list || []).map((c) => [c.code, c.name]));
}

/** countryName shows "DE" as "Germany"; market names and unknown codes stay as they are. */
export function countryName(code) {
  if (!code) return 'Unknown';
  return countryNames.get(code) || code;
}

/**
 * categoryLabel names a rated category and, when the card billed messages
 * sent under other categories as it, those: "Notification — marketing,
 * utility, authentication".
 */
export function categoryLabel(category, messageCategories) {
  const name = humanize(category);
  const sent = (messageCategories || []).filter(Boolean);
  if (sent.length === 0) return name;
  return `${name} — ${sent.map((c) => String(c).replace(/_/g, ' ')).join(', ')}`;
}

/** items returns the array of a list answer ({data}, {rows}, {points}, or an array). */
export function items(resp, ...keys) {
  if (Array.isArray(resp)) return resp;
  for (const k of [...keys, 'data', 'rows', 'points', 'items', 'usage', 'invoices', 'results']) {
    if (Array.isArray(resp?.[k])) return resp[k];
  }
  return [];
}

/** qty reads a quantity (number or digit string) as a number. */
export function qty(r) {
  const v = r?.quantity ?? r?.count ?? r?.messages ?? r?.events ?? 0;
  return Number(v) || 0;
}

/** usageRows normalises usage rows to {start, country, category, quantity}. */
export function usageRows(resp) {
  return items(resp).map((r) => ({
    start: r.start ?? r.window_start ?? r.time ?? r.from ?? r.date ?? '',
    country: r.country ?? '',
    category: r.category ?? '',
    quantity: qty(r),
  }));
}

/**
 * summarise folds usage rows into what the business view draws: totals by
 * day and category, by country, by category, and the grand total.
 */
export function summarise(rows) {
  const days = new Map();
  const byCountry = new Map();
  const byCategory = new Map();
  let total = 0;
  for (const r of rows) {
    const day = String(r.start).slice(0, 10);
    if (!days.has(day)) days.set(day, new Map());
    const d = days.get(day);
    d.set(r.category, (d.get(r.category) || 0) + r.quantity);
    byCountry.set(r.country, (byCountry.get(r.country) || 0) + r.quantity);
    byCategory.set(r.category, (byCategory.get(r.category) || 0) + r.quantity);
    total += r.quantity;
  }
  const sortDesc = (m) => [...m.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  return {
    total,
    days: [...days.keys()].sort(),
    perDay: days,
    countries: sortDesc(byCountry).map(([key, quantity]) => ({ key, quantity, share: total ? (quantity * 100) / total : 0 })),
    categories: sortDesc(byCategory).map(([key, quantity]) => ({ key, quantity, share: total ? (quantity * 100) / total : 0 })),
  };
}

/** invoice normalises an invoice to the fields the views show. */
export function invoice(r) {
  const lines = (r.lines || []).map((l) => ({
    ...l,
    market: l.market ?? l.country ?? '',
    category: l.category ?? '',
    quantity: l.quantity ?? 0,
    unit_price: l.unit_price ?? l.price ?? '',
    amount: l.amount ?? l.total ?? '0',
    description: l.description ?? '',
    kind: l.kind ?? l.type ?? '',
  }));
  return {
    ...r,
    id: r.id ?? r.invoice_id ?? r.number,
    number: r.number || '',
    customer_id: r.customer_id ?? r.customer?.id ?? '',
    customer_name: r.customer_name ?? r.customer?.name ?? '',
    period: r.period ?? r.month ?? String(r.period_start ?? '').slice(0, 7),
    status: r.status ?? '',
    currency: r.currency ?? '',
    total: r.total ?? r.amount ?? r.total_amount ?? addDecimal(...lines.map((l) => l.amount)),
    issued_at: r.issued_at ?? r.finalized_at ?? r.created_at ?? '',
    lines,
  };
}

/**
 * lineMoney reads what a usage line costs before and after its discount:
 * {list, discount, net, known}. A discounted line carries list_amount and
 * discount_amount (list − discount = net); an undiscounted one costs its
 * amount at list. known is false for a discounted line of an invoice
 * finalized before lines carried their list amount: only its percentage
 * and net are known.
 */
export function lineMoney(l) {
  const net = l.amount ?? '0';
  const discounted = l.discount != null && l.discount !== '' && !/^[-0.]*$/.test(String(l.discount));
  if (!discounted) return { list: net, discount: '0', net, known: true, discounted };
  if (l.list_amount == null) return { list: null, discount: null, net, known: false, discounted };
  return { list: l.list_amount, discount: l.discount_amount ?? subDecimal(l.list_amount, net), net, known: true, discounted };
}

/**
 * billTotals adds up lines' list prices, discounts and net amounts exactly:
 * {list, discount, net, discounted (some line has a discount), known (every
 * discounted line says its list amount)}.
 */
export function billTotals(lines) {
  let list = '0', discount = '0', net = '0', discounted = false, known = true;
  for (const l of lines) {
    const m = lineMoney(l);
    net = addDecimal(net, m.net);
    if (m.discounted) discounted = true;
    if (!m.known) { known = false; continue; }
    list = addDecimal(list, m.list);
    discount = addDecimal(discount, m.discount);
  }
  return { list, discount, net, discounted, known };
}

/** moneyTotals sums amounts per currency: [{currency, amount, count}]. */
export function moneyTotals(rows, amountKey = 'total') {
  const m = new Map();
  for (const r of rows) {
    const c = r.currency || '';
    const t = m.get(c) || { currency: c, amount: '0', count: 0 };
    t.amount = addDecimal(t.amount, r[amountKey] ?? '0');
    t.count += 1;
    m.set(c, t);
  }
  return [...m.values()].sort((a, b) => a.currency.localeCompare(b.currency));
}
