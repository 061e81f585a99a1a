// Margin view (sales, finance): revenue minus the upstream's cost by
// customer, market, category or line, for the month to date and its
// projection, with lines priced below cost flagged; and what a proposed
// version of the cost card (an upstream price change) would do to margin.
//   #/margin              the running month
//   #/margin/<YYYY-MM>    another month

import * as api from '../api.js';
import { h, mount, card, kpi, table, moneyCell, empty, badge, notify, loading, errorBox, load } from '../dom.js';
import { count, money, signedMoney, percent, humanize, monthName, period } from '../format.js';
import { items, countryName } from '../shapes.js';

const GROUPS = [
  ['customer', 'Customer'],
  ['line', 'Customer, market and category'],
  ['market', 'Market'],
  ['category', 'Category'],
];

export function render(root, { args }) {
  const month = /^\d{4}-\d{2}$/.test(args[0] || '') ? args[0] : period(new Date());
  const monthIn = h('input#margin-month', { type: 'month', value: month, max: period(new Date()) });
  const groupIn = h('select#margin-group', GROUPS.map(([v, label]) => h('option', { value: v }, label)));
  const report = h('div#margin-report.stack');
  const sim = h('div#margin-sim');
  let simCard = '';
  const draw = () => {
    const q = { month: monthIn.value, group_by: groupIn.value };
    load(report, () => api.get('/api/v1/reports/margin', q), (rep) => {
      // The simulator proposes versions of the cost card the report names.
      if (rep.cost_card.card_id !== simCard) {
        simCard = rep.cost_card.card_id;
        simulator(sim, simCard);
      }
      return marginReport(rep, q);
    });
  };
  monthIn.addEventListener('change', () => {
    if (monthIn.value) history.replaceState(null, '', `#/margin/${monthIn.value}`);
    draw();
  });
  groupIn.addEventListener('change', draw);
  mount(root,
    h('div.page-head', h('div', h('h1', 'Margin'),
      h('p.muted', 'Revenue at each customer’s card minus what the same messages cost upstream, at the cost card in effect.'))),
    h('div.filters#margin-filters', h('label', 'Month', monthIn), h('label', 'Group by', groupIn)),
    report, sim);
  draw();
}

function deltaClass(d) {
  const s = String(d ?? '0');
  if (/^-/.test(s) && /[1-9]/.test(s)) return 'down';
  if (/[1-9]/.test(s)) return 'up';
  return 'flat';
}

// hundredfold turns a fraction ("0.6500") into percent ("65.00") on its
// digits.
function hundredfold(f) {
  const [i, frac = ''] = String(f).split('.');
  const d = (frac + '00');
  return `${String(Number(i + d.slice(0, 2)))}.${d.slice(2) || '0'}`;
}

function marginCell(amount, currency, negative) {
  return h('span', { class: negative ? 'down' : deltaClass(amount) }, moneyCell(signedMoney(amount, currency)));
}

/** marginReport draws the answer of GET /api/v1/reports/margin. */
export function marginReport(rep, q) {
  const rows = rep.rows || [];
  const totals = rep.totals || [];
  const past = rep.elapsed_fraction === '1.0000';
  const kpis = h('div.kpis#margin-kpis', totals.flatMap((t) => [
    kpi(`Revenue${totals.length > 1 ? ` (${t.currency})` : ''}`, moneyCell(money(t.revenue, t.currency)),
      `${count(t.customers)} customers · ${count(t.quantity)} messages`, { dataset: { kpi: 'revenue', currency: t.currency } }),
    kpi('Upstream cost', moneyCell(money(t.cost, t.currency)), `at ${rep.cost_card.card_id} v${rep.cost_card.version}`, { dataset: { kpi: 'cost', currency: t.currency } }),
    kpi('Margin', marginCell(t.margin, t.currency, String(t.margin).startsWith('-')), t.margin_percent == null ? '' : `${percent(t.margin_percent, false)} of revenue`,
      { dataset: { kpi: 'margin', currency: t.currency } }),
    past ? null : kpi('Projected margin', marginCell(t.projected_margin, t.currency, String(t.projected_margin).startsWith('-')),
      `of ${money(t.projected_revenue, t.currency)} projected revenue`, { dataset: { kpi: 'projected', currency: t.currency } }),
    kpi('Below cost', count(t.negative_rows), t.negative_rows ? 'rows priced under what they cost' : 'no row under cost', { dataset: { kpi: 'negative', currency: t.currency } }),
  ]));
  const csv = h('button.btn.small.ghost#margin-csv', {
    type: 'button',
    onclick: async () => {
      try {
        const f = await api.download(`/api/v1/reports/margin${api.query({ ...q, format: 'csv' })}`, `margin-${q.month}-${q.group_by}.csv`, 'text/csv');
        notify(`Downloaded ${f.name}`);
      } catch (err) { notify(err.message, 'error'); }
    },
  }, 'Download CSV');
  const cols = [];
  if (q.group_by === 'customer' || q.group_by === 'line') {
    cols.push({ key: 'name', label: 'Customer', sort: 'text', value: (r) => r.name || r.customer_id, render: (r) => h('span', r.name || r.customer_id, h('span.code', r.customer_id)) });
  }
  if (q.group_by === 'market' || q.group_by === 'line') cols.push({ key: 'market', label: 'Market', sort: 'text', render: (r) => countryName(r.market) });
  if (q.group_by === 'category' || q.group_by === 'line') cols.push({ key: 'category', label: 'Category', sort: 'text', render: (r) => humanize(r.category) });
  cols.push(
    { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
    { key: 'revenue', label: 'Revenue', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.revenue, r.currency)) },
    { key: 'cost', label: 'Cost', num: true, sort: 'decimal', render: (r) => moneyCell(money(r.cost, r.currency)) },
    { key: 'margin', label: 'Margin', num: true, sort: 'decimal', render: (r) => h('span', marginCell(r.margin, r.currency, r.negative), r.negative ? badge('below cost', 'void') : null) },
    { key: 'margin_percent', label: 'Margin %', num: true, sort: 'decimal', value: (r) => r.margin_percent ?? '', render: (r) => (r.margin_percent == null ? '–' : percent(r.margin_percent, false)) },
  );
  if (!past) {
    cols.push({ key: 'projected_margin', label: 'Projected', num: true, sort: 'decimal', wide: true, render: (r) => marginCell(r.projected_margin, r.currency, r.projected_negative) });
  }
  const sub = `${monthName(rep.month)}${past ? '' : ` · ${percent(hundredfold(rep.elapsed_fraction), false)} elapsed, projected to the whole month`}`;
  const main = rows.length === 0
    ? empty('No billed usage this month', 'Margins appear once customers with a rate card send messages.')
    : table(cols, rows, {
      sortKey: 'margin', sortDir: 'asc', caption: 'Margin', stack: true, pageSize: 100,
      rowAttrs: (r) => ({ class: r.negative ? 'negative' : null, dataset: { customer: r.customer_id || '', market: r.market || '', category: r.category || '', negative: String(r.negative) } }),
    });
  const excluded = [];
  if ((rep.not_comparable || []).length) {
    excluded.push(card('Not comparable', { id: 'margin-not-comparable', sub: 'revenue and cost cannot be subtracted' },
      table([
        { key: 'customer_id', label: 'Customer', render: (r) => h('span', r.name || r.customer_id, h('span.code', r.customer_id)) },
        { key: 'revenue', label: 'Revenue', num: true, render: (r) => (r.revenue ? moneyCell(money(r.revenue, r.currency)) : '–') },
        { key: 'cost', label: 'Cost', num: true, render: (r) => (r.cost ? moneyCell(money(r.cost, r.cost_currency)) : '–') },
        { key: 'detail', label: 'Why', render: (r) => r.detail },
      ], rep.not_comparable, { caption: 'Customers not comparable', stack: true })));
  }
  if ((rep.unbilled || []).length) {
    excluded.push(card('Billed to nobody', { id: 'margin-unbilled', sub: 'usage no invoice bills, at what it costs' },
      table([
        { key: 'customer_id', label: 'Customer id', render: (r) => h('span.code', r.customer_id) },
        { key: 'quantity', label: 'Messages', num: true, render: (r) => count(r.quantity) },
        { key: 'cost', label: 'Cost', num: true, render: (r) => (r.cost ? moneyCell(money(r.cost, r.cost_currency)) : '–') },
        { key: 'reason', label: 'Why', render: (r) => humanize(r.reason) },
      ], rep.unbilled, { caption: 'Unbilled usage at cost', stack: true })));
  }
  return h('div.stack', kpis,
    card(`Margin by ${GROUPS.find(([v]) => v === q.group_by)[1].toLowerCase()}`, { id: 'margin-rows', wide: true, sub, actions: csv }, main),
    ...excluded);
}

// ---- what an upstream price change does ----

function simulator(root, cardID) {
  const versionIn = h('select#msim-version', { required: true });
  const fromIn = h('input#msim-from', { type: 'month', required: true, value: period(new Date(), -1) });
  const toIn = h('input#msim-to', { type: 'month', required: true, value: period(new Date(), -1) });
  const runBtn = h('button.btn.primary#msim-run', { type: 'submit' }, 'Simulate');
  const out = h('div#msim-result');
  const form = h('form.panel.form-grid#msim-form', {
    onsubmit: async (e) => {
      e.preventDefault();
      if (!versionIn.value) { notify('Pick a version of the cost card.', 'error'); return; }
      if (fromIn.value > toIn.value) { notify('The first month must not be after the last.', 'error'); return; }
      const req = { card_id: cardID, version: Number(versionIn.value), from: fromIn.value, to: toIn.value, breakdown: false };
      runBtn.disabled = true;
      mount(out, loading(`Re-rating ${monthName(req.from)} – ${monthName(req.to)} at ${cardID} v${req.version}…`));
      try {
        mount(out, simulationResult(await api.post('/api/v1/simulations/margin', req)));
      } catch (err) {
        mount(out, errorBox(err, null, 'The simulation did not run'));
      } finally { runBtn.disabled = false; }
    },
  },
  h('label.span2', 'Proposed cost card version', versionIn, h('span.help', 'A draft version of the upstream’s prices shows their effect before they apply.')),
  h('label', 'From month', fromIn),
  h('label', 'To month', toIn),
  h('div.form-actions', runBtn));
  mount(root, card('Upstream price change', { id: 'msim-panel', sub: 'margin of real past usage at a proposed cost card' }, form), out);
  mount(out, empty('No simulation yet', 'Pick a version of the cost card, such as a draft of new upstream prices, and a range of past months.'));
  api.get(`/api/v1/ratecards/${encodeURIComponent(cardID)}/versions`).then((resp) => {
    const vs = items(resp);
    mount(versionIn, vs.map((v) => h('option', { value: String(v.number), selected: v.status === 'draft' },
      `${cardID} v${v.number} · ${v.status}${v.effective_from ? ` from ${monthName(v.effective_from)}` : ''}`)));
  }).catch((err) => mount(out, errorBox(err, () => simulator(root, cardID), 'The cost card could not be loaded')));
}

/** simulationResult draws the answer of POST /api/v1/simulations/margin. */
export function simulationResult(res) {
  const totals = res.totals || [];
  const customers = res.customers || [];
  if (customers.length === 0) return empty('No usage in these months', 'Pick months with traffic.');
  const kpis = h('div.kpis#msim-kpis', totals.flatMap((t) => [
    kpi(`Current margin${totals.length > 1 ? ` (${t.currency})` : ''}`, marginCell(t.current_margin, t.currency, String(t.current_margin).startsWith('-')),
      t.current_margin_percent == null ? '' : `${percent(t.current_margin_percent, false)} of ${money(t.revenue, t.currency)}`, { dataset: { kpi: 'current', currency: t.currency } }),
    kpi('Proposed margin', marginCell(t.proposed_margin, t.currency, String(t.proposed_margin).startsWith('-')),
      t.proposed_margin_percent == null ? '' : `${percent(t.proposed_margin_percent, false)} of ${money(t.proposed_revenue, t.currency)}`, { dataset: { kpi: 'proposed', currency: t.currency } }),
    kpi('Change', marginCell(t.difference, t.currency, false),
      `cost ${money(t.current_cost, t.currency)} → ${money(t.proposed_cost, t.currency)}${t.proposed_revenue !== t.revenue ? ` · revenue ${money(t.revenue, t.currency)} → ${money(t.proposed_revenue, t.currency)} (cost-plus follows)` : ''}`,
      { dataset: { kpi: 'difference', currency: t.currency } }),
    kpi('Turning negative', count(t.turns_negative), `${count(t.negative)} customers below cost`, { dataset: { kpi: 'turns', currency: t.currency } }),
  ]));
  return h('div.stack', kpis, card('Customers', { id: 'msim-customers', wide: true, sub: `${monthName(res.from)} – ${monthName(res.to)} · ${res.card_id} v${res.proposed_version}` },
    table([
      { key: 'name', label: 'Customer', sort: 'text', value: (r) => r.name || r.customer_id, render: (r) => h('span', r.name || r.customer_id, h('span.code', r.customer_id)) },
      { key: 'quantity', label: 'Messages', num: true, sort: 'number', render: (r) => count(r.quantity) },
      { key: 'revenue', label: 'Revenue', num: true, sort: 'decimal', render: (r) => (r.skipped ? '–' : moneyCell(money(r.revenue, r.currency))) },
      { key: 'proposed_revenue', label: 'Proposed revenue', num: true, sort: 'decimal', render: (r) => (r.skipped ? '–' : moneyCell(money(r.proposed_revenue, r.currency))) },
      { key: 'current_margin', label: 'Margin now', num: true, sort: 'decimal', render: (r) => (r.skipped ? '–' : marginCell(r.current_margin, r.currency, String(r.current_margin).startsWith('-'))) },
      { key: 'proposed_margin', label: 'Proposed', num: true, sort: 'decimal', render: (r) => (r.skipped ? '–' : marginCell(r.proposed_margin, r.currency, r.negative)) },
      { key: 'difference', label: 'Change', num: true, sort: 'decimal', render: (r) => (r.skipped ? h('span.muted', { title: r.skipped }, r.skipped) : h('span', marginCell(r.difference, r.currency, false), r.turns_negative ? badge('turns negative', 'void') : null)) },
    ], customers, { sortKey: 'difference', sortDir: 'asc', caption: 'Margin simulation by customer', stack: true, pageSize: 50, rowAttrs: (r) => ({ dataset: { customer: r.customer_id, turns: String(r.turns_negative) } }) })));
}
