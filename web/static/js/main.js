// The application shell: sign-in, the header and navigation, and a hash
// router that shows only the views the key may use: GET /api/v1/me lists
// the operations the key's role may call, from the API's route table, and
// each view needs one of them. Routes:
//   #/business            the signed-in customer's own usage and bill
//   #/business/<id>       one customer (finance, sales, admin)
//   #/invoice/<id>        one invoice's lines and totals
//   #/finance             invoices, approvals, exports, unbilled usage
//   #/receivables         what finalized invoices owe: aging, payments, credit notes
//   #/sales, #/sales/quote  what-if simulations and the quote builder
//   #/margin, #/margin/<YYYY-MM>  margin and upstream price changes

import * as api from './api.js';
import { h, mount, notify } from './dom.js';
import { destroyAll } from './charts.js';
import { humanize } from './format.js';
import { setCountryNames, items } from './shapes.js';
import * as business from './views/business.js';
import * as finance from './views/finance.js';
import * as sales from './views/sales.js';
import * as invoiceView from './views/invoice.js';
import * as margin from './views/margin.js';
import * as receivables from './views/receivables.js';

/**
 * VIEWS lists every view, the API operation it needs (the view opens when
 * the key may call it) and how it is drawn; nav: false views are opened
 * from links, not tabs.
 */
const VIEWS = [
  { id: 'business', label: () => business.title(), needs: () => api.can('GET', '/api/v1/customers/{id}/usage'), view: business },
  { id: 'finance', label: () => 'Finance', needs: () => api.can('GET', '/api/v1/invoices'), view: finance },
  { id: 'receivables', label: () => 'Receivables', needs: () => api.can('GET', '/api/v1/receivables'), view: receivables },
  { id: 'sales', label: () => 'Sales', needs: () => api.can('POST', '/api/v1/quotes') || api.can('POST', '/api/v1/simulations'), view: sales },
  { id: 'invoice', label: () => 'Invoice', nav: false, needs: () => api.can('GET', '/api/v1/invoices/{id}'), view: invoiceView },
  { id: 'margin', label: () => 'Margin', needs: () => api.can('GET', '/api/v1/reports/margin'), view: margin },
];

const app = document.getElementById('app');
let me = null;

function allowed() { return VIEWS.filter((v) => v.needs()); }

// home is where a key lands: a customer on its business view, finance on
// invoices, sales on its tools, each only when the key may open it.
function home(role) {
  const order = { customer: ['business'], finance: ['finance', 'business'], admin: ['finance', 'business', 'sales'], sales: ['sales', 'business'] }[role] || [];
  const v = order.map((id) => VIEWS.find((x) => x.id === id)).find((x) => x?.needs());
  return v ? `#/${v.id}` : '#/';
}

// signedIn keeps what the page needs of the key: its operations, and the
// country names (one source for every view, from the API).
async function signedIn(who) {
  me = who;
  api.setRoutes(who.routes);
  if (api.can('GET', '/api/v1/countries')) {
    try { setCountryNames(items(await api.get('/api/v1/countries'))); } catch { /* codes stand in for names */ }
  }
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  return { id: parts[0] || '', args: parts.slice(1) };
}

function signIn(message) {
  destroyAll();
  me = null;
  api.setRoutes([]);
  document.title = 'Sign in · postage';
  const input = h('input#key', {
    type: 'password', name: 'key', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'pst_…', 'aria-describedby': 'key-help',
  });
  const err = h('p#signin-error.form-error', { role: 'alert' }, message || '');
  const btn = h('button.btn.primary.block', { type: 'submit' }, 'Sign in');
  // method post: if the script ever failed, a plain submit must not put
  // the key in the address as a GET query would.
  const form = h('form.signin-form', {
    method: 'post', action: '/',
    onsubmit: async (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) { err.textContent = 'Enter your API key.'; return; }
      btn.disabled = true;
      btn.textContent = 'Checking…';
      err.textContent = '';
      try {
        const who = await api.me(key);
        api.setKey(key);
        await signedIn(who);
        // Stay on the address asked for if this key may see it (a reload
        // after the key expired); otherwise go to the role's home.
        const asked = parseHash().id;
        if (!allowed().some((v) => v.id === asked)) history.replaceState(null, '', home(me.role));
        route();
      } catch (e2) {
        err.textContent = e2.message;
        btn.disabled = false;
        btn.textContent = 'Sign in';
        input.select();
      }
    },
  },
  h('label', { for: 'key' }, 'API key'), input,
  h('p#key-help.help', 'Your key stays in this browser tab only and is forgotten when you close it or sign out.'),
  err, btn,
  h('p.help.center', 'No key yet? Ask your administrator.'));
  mount(app, h('main.signin', h('div.signin-card',
    h('div.brand.large', h('span.logo', { 'aria-hidden': 'true' }), 'postage'),
    h('h1', 'Sign in'),
    h('p.muted', 'Usage, invoices and pricing for your messaging account.'),
    form)));
  input.focus();
}

function shell(active) {
  const nav = h('nav.tabs', { 'aria-label': 'Views' }, allowed().filter((v) => v.nav !== false).map((v) =>
    h('a', { href: `#/${v.id}`, class: v.id === active ? 'active' : null, 'aria-current': v.id === active ? 'page' : null, dataset: { view: v.id } }, v.label())));
  const who = h('div.who', h('span.who-name', me.name || me.key_id), h('span.role', { dataset: { role: me.role } }, humanize(me.role)),
    h('button.btn.ghost.small#signout', { type: 'button', onclick: signOut }, 'Sign out'));
  const view = h('main#view.view', { tabindex: '-1' });
  mount(app, h('header.top', h('div.top-inner', h('a.brand', { href: home(me.role) }, h('span.logo', { 'aria-hidden': 'true' }), 'postage'), nav, who)), view,
    h('footer.foot', 'postage · amounts in each invoice’s currency · times in UTC'));
  return view;
}

function signOut() {
  // Forget everything this tab kept: the key, the last customer, filters.
  sessionStorage.clear();
  history.replaceState(null, '', location.pathname);
  signIn();
}

function forbidden(view, v) {
  mount(view, h('div.page-head', h('h1', 'Not available')),
    h('div.state.error#forbidden', { role: 'alert' }, h('div.state-icon', '!'),
      h('div', h('strong', `The ${v.label()} view is not available to ${me.role} keys.`),
        h('p', 'Ask an administrator for a key with the right role if you need it.'),
        h('a.btn.small', { href: home(me.role) }, 'Go to your dashboard'))));
}

function route() {
  if (!me) return;
  destroyAll();
  document.getElementById('toasts')?.replaceChildren();
  const { id, args } = parseHash();
  const views = allowed();
  if (!id) {
    if (views.length) { location.replace(home(me.role)); return; }
  }
  const v = VIEWS.find((x) => x.id === id);
  const el = shell(v?.id);
  if (views.length === 0) {
    mount(el, h('div.state.empty#no-views', h('div.state-icon', 'i'), h('div', h('strong', `${humanize(me.role)} keys have no dashboard views.`),
      h('p', 'This key can call the API (for example to send events), but there is nothing to show it here.'))));
    return;
  }
  if (!v) { location.replace(home(me.role)); return; }
  document.title = `${v.label()} · postage`;
  if (!v.needs()) { forbidden(el, v); return; }
  v.view.render(el, { me, args });
}

api.setUnauthorizedHandler(() => {
  api.clearKey();
  signIn('Your API key was not accepted any more. Sign in again.');
});

window.addEventListener('hashchange', route);
// A blocked script or style is a bug in the page: say so where the
// browser tests (and developers) look.
document.addEventListener('securitypolicyviolation', (e) => {
  console.error(`Content-Security-Policy blocked ${e.blockedURI || 'inline code'} (${e.violatedDirective})`);
});
window.addEventListener('unhandledrejection', (e) => {
  if (e.reason instanceof api.ApiError) { notify(e.reason.message, 'error'); e.preventDefault(); }
});

async function start() {
  const key = api.getKey();
  if (!key) { signIn(); return; }
  try {
    await signedIn(await api.me(key));
    route();
  } catch (e) {
    if (e.code === 'unauthorized') api.clearKey();
    signIn(e.message);
  }
}

start();
