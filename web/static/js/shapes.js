// Readers for API answers. They accept the documented field names (and the
// few spellings seen while the API settled) so each view works on one
// normalised shape. Pure functions: the browser test checks them too.

import { addDecimal } from './format.js';

let regionNames = null;
try { regionNames = new Intl.DisplayNames(['en'], { type: 'region' }); } catch { /* old browser */ }

/** countryName shows "DE" as "Germany"; unknown or empty codes stay as they are. */
export function countryName(code) {
  if (!code) return 'Unknown';
  if (!/^[A-Z]{2}$/.test(code)) return code;
  try { return regionNames?.of(code) || code; } catch { return code; }
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
