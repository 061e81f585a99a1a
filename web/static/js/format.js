// Pure formatting and arithmetic helpers. No DOM, no network: the browser
// test imports this module and checks each function directly.
//
// Money arrives from the API as decimal strings ("1234.50") with a currency
// code. It is never turned into a float: grouping, padding, sums and
// comparisons work on the digits (BigInt with a common scale).

// Minor-unit digits of currencies that do not use 2 (ISO 4217).
const MINOR = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0,
  UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

/** minorDigits returns how many decimals a currency's amounts show. */
export function minorDigits(currency) {
  const c = String(currency || '').toUpperCase();
  return c in MINOR ? MINOR[c] : 2;
}

const DEC = /^([+-]?)(\d*)(?:\.(\d*))?$/;

/** parseDecimal splits a decimal string into sign, integer and fraction digits. */
export function parseDecimal(s) {
  const m = DEC.exec(String(s ?? '').trim());
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const int = m[2].replace(/^0+(?=\d)/, '') || '0';
  return { neg: m[1] === '-', int, frac: m[3] ?? '' };
}

/** groupDigits inserts thousands separators into a string of digits. */
export function groupDigits(digits) {
  return String(digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * formatDecimal groups the integer part and pads the fraction to at least
 * minDigits (never rounding away given digits beyond maxDigits unless asked).
 * Values that are not decimals are returned unchanged.
 */
export function formatDecimal(s, minDigits = 0, maxDigits = Infinity) {
  const d = parseDecimal(s);
  if (!d) return s == null ? '' : String(s);
  let frac = d.frac;
  if (frac.length > maxDigits) {
    const r = roundDecimal(s, maxDigits);
    return formatDecimal(r, minDigits, maxDigits);
  }
  // Drop trailing zeros beyond the minimum, then pad up to it.
  frac = frac.replace(/0+$/, '');
  if (frac.length < minDigits) frac = frac.padEnd(minDigits, '0');
  const zero = /^0*$/.test(d.int + frac);
  const sign = d.neg && !zero ? '−' : '';
  return sign + groupDigits(d.int) + (frac ? '.' + frac : '');
}

/** money formats an amount with its currency: "1,234.50 USD". */
export function money(amount, currency) {
  if (amount == null || amount === '') return '—';
  const s = formatDecimal(amount, minorDigits(currency));
  return currency ? `${s} ${currency}` : s;
}

/** unitPrice shows a price per message with up to 6 decimals. */
export function unitPrice(amount, currency) {
  if (amount == null || amount === '') return '—';
  const s = formatDecimal(amount, Math.max(2, minorDigits(currency)), 6);
  return currency ? `${s} ${currency}` : s;
}

/** count formats an integer quantity (number or digit string): "1,234,567". */
export function count(n) {
  if (n == null || n === '') return '—';
  return formatDecimal(typeof n === 'number' ? Math.round(n).toString() : n, 0);
}

/** compact shortens large counts for axis labels: 1.2k, 3.4M. */
export function compact(n) {
  const v = Number(n);
  if (!isFinite(v)) return String(n);
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1).replace(/\.0$/, '') + 'B';
  if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1).replace(/\.0$/, '') + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1).replace(/\.0$/, '') + 'k';
  return String(Math.round(v * 100) / 100);
}

// scaled reads s as an integer of 10^-scale units; anything that is not a
// decimal (an empty amount of a skipped row) counts as zero.
function scaled(s, scale) {
  const d = parseDecimal(s);
  if (!d) return 0n;
  const v = BigInt(d.int + d.frac.padEnd(scale, '0').slice(0, scale));
  return d.neg ? -v : v;
}

function scaleOf(...xs) {
  return Math.max(0, ...xs.map((x) => (parseDecimal(x)?.frac.length ?? 0)));
}

function unscale(v, scale) {
  const neg = v < 0n;
  let digits = (neg ? -v : v).toString().padStart(scale + 1, '0');
  const int = digits.slice(0, digits.length - scale);
  const frac = scale ? '.' + digits.slice(digits.length - scale) : '';
  return (neg ? '-' : '') + int + frac;
}

/** addDecimal adds decimal strings exactly: addDecimal("0.1","0.2") = "0.3". */
export function addDecimal(...xs) {
  const vals = xs.filter((x) => x != null && x !== '');
  if (vals.length === 0) return '0';
  const sc = scaleOf(...vals);
  return unscale(vals.reduce((acc, x) => acc + scaled(x, sc), 0n), sc);
}

/** subDecimal returns a - b exactly. */
export function subDecimal(a, b) {
  const sc = scaleOf(a, b);
  return unscale(scaled(a, sc) - scaled(b, sc), sc);
}

/** compareDecimal orders decimal strings exactly: -1, 0 or 1. */
export function compareDecimal(a, b) {
  const sc = scaleOf(a, b);
  const x = scaled(a, sc), y = scaled(b, sc);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** roundDecimal rounds half-even to digits decimals (as the invoices do). */
export function roundDecimal(s, digits) {
  const d = parseDecimal(s);
  if (!d) return s;
  if (d.frac.length <= digits) return s;
  const keep = BigInt(d.int + d.frac.slice(0, digits));
  const rest = d.frac.slice(digits);
  const half = '5'.padEnd(rest.length, '0');
  let up = rest > half || (rest === half && keep % 2n === 1n);
  const v = keep + (up ? 1n : 0n);
  return unscale(d.neg ? -v : v, digits);
}

/** percent formats a ratio given in percent ("12.345") as "+12.3 %". */
export function percent(p, signed = true) {
  if (p == null || p === '') return '—';
  const r = roundDecimal(String(p), 1);
  const d = parseDecimal(r);
  if (!d) return String(p);
  const body = formatDecimal(r, 1, 1).replace('−', '');
  const zero = /^0*$/.test(d.int + d.frac);
  const sign = zero ? '' : d.neg ? '−' : signed ? '+' : '';
  return `${sign}${body} %`;
}

/** signedMoney shows differences with an explicit sign: "+12.00 USD". */
export function signedMoney(amount, currency) {
  const d = parseDecimal(amount);
  if (!d || d.neg || /^0*$/.test(d.int + d.frac)) return money(amount, currency);
  return '+' + money(amount, currency);
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July',
  'August', 'September', 'October', 'November', 'December'];

/** monthName shows a "2026-03" period as "March 2026". */
export function monthName(period) {
  const m = /^(\d{4})-(\d{2})/.exec(String(period || ''));
  if (!m) return String(period ?? '');
  return `${MONTHS[Number(m[2]) - 1]} ${m[1]}`;
}

/** shortDate shows an RFC 3339 time as "3 Mar 2026" (UTC, as invoices are). */
export function shortDate(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()].slice(0, 3)} ${d.getUTCFullYear()}`;
}

/** dayLabel shows a day as "3 Mar" for chart axes. */
export function dayLabel(t) {
  const d = new Date(t);
  if (isNaN(d)) return String(t);
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()].slice(0, 3)}`;
}

/** period returns "YYYY-MM" for a Date in UTC, offset by delta months. */
export function period(date, delta = 0) {
  const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + delta, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** monthRange returns the [from, to) RFC 3339 bounds of a "YYYY-MM" period. */
export function monthRange(p) {
  const [y, m] = p.split('-').map(Number);
  const from = new Date(Date.UTC(y, m - 1, 1));
  const to = new Date(Date.UTC(y, m, 1));
  return { from: from.toISOString().replace('.000', ''), to: to.toISOString().replace('.000', '') };
}

/** titleCase turns snake_case names into words: "authentication_international" → "Authentication international". */
export function humanize(s) {
  const t = String(s ?? '').replace(/_/g, ' ').trim();
  return t ? t[0].toUpperCase() + t.slice(1) : '—';
}

const CODE_TEXT = {
  unauthorized: 'Your API key was not accepted.',
  forbidden: 'Your API key’s role is not allowed to do this.',
  not_found: 'That was not found.',
  conflict: 'That conflicts with the current state.',
  invalid: 'The request was not valid.',
  too_large: 'The request was too large.',
  unsupported_media_type: 'The request had the wrong format.',
  overloaded: 'The service is busy right now. Try again in a moment.',
  unavailable: 'The service is temporarily unavailable. Try again in a moment.',
  internal: 'Something went wrong on the server.',
};

/**
 * problemText turns an RFC 9457 problem (or a network failure) into one or
 * two sentences a person can act on. The stable code picks the headline;
 * the detail, which the API writes for people, says what exactly.
 */
export function problemText(status, problem) {
  const code = problem?.code || codeForStatus(status);
  const head = CODE_TEXT[code] || `The request failed (HTTP ${status}).`;
  let detail = problem?.detail || '';
  if (code === 'internal') {
    detail = problem?.request_id ? `Reference: ${problem.request_id}.` : '';
  }
  if (!detail) return head;
  detail = detail[0].toUpperCase() + detail.slice(1);
  if (!/[.!?]$/.test(detail)) detail += '.';
  if (code === 'invalid' || code === 'conflict' || code === 'not_found') return detail;
  return `${head} ${detail}`;
}

function codeForStatus(status) {
  switch (status) {
    case 0: return 'network';
    case 400: return 'invalid';
    case 401: return 'unauthorized';
    case 403: return 'forbidden';
    case 404: return 'not_found';
    case 409: return 'conflict';
    case 413: return 'too_large';
    case 415: return 'unsupported_media_type';
    case 429: return 'overloaded';
    case 503: return 'unavailable';
    default: return status >= 500 ? 'internal' : '';
  }
}

CODE_TEXT.network = 'Could not reach the server. Check your connection and try again.';
