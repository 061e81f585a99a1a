// The API client. The key lives in sessionStorage (gone when the tab
// closes) and travels only in the Authorization header: never in a URL,
// so it stays out of history, logs and Referer headers. Downloads are
// fetched the same way and saved through a Blob.

import { problemText } from './format.js';

const KEY = 'postage.apiKey';

export function getKey() { return sessionStorage.getItem(KEY) || ''; }
export function setKey(k) { sessionStorage.setItem(KEY, k); }
export function clearKey() { sessionStorage.removeItem(KEY); }

/** ApiError carries the problem+json answer and a plain-words message. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
    this.code = problem?.code || (status === 0 ? 'network' : '');
    this.problem = problem;
  }
}

// routes holds the operations the signed-in key may call ("GET
// /api/v1/customers/{id}/usage"), as GET /api/v1/me lists them from the
// API's own route table: every view and section asks can() before it
// shows, so the page offers what the API allows, no more and no less.
let routes = new Set();

/** setRoutes records the key's operations (the routes of GET /api/v1/me). */
export function setRoutes(list) { routes = new Set(list || []); }

/** can reports whether the key may call method on path (OpenAPI path form). */
export function can(method, path) { return routes.has(`${method} ${path}`); }

let onUnauthorized = () => {};
/** setUnauthorizedHandler is called when a signed-in key stops working. */
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

/** query builds "?a=1&b=2" from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v == null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.append(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function send(method, path, { body, key, accept } = {}) {
  const headers = { Accept: accept || 'application/json' };
  const k = key ?? getKey();
  if (k) headers.Authorization = `Bearer ${k}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new ApiError(0, null);
  }
  if (!res.ok) {
    let problem = null;
    try { problem = await res.json(); } catch { /* not JSON */ }
    const err = new ApiError(res.status, problem);
    if (res.status === 401 && key === undefined) onUnauthorized(err);
    throw err;
  }
  return res;
}

/** get returns the decoded JSON of a GET. */
export async function get(path, params) {
  const res = await send('GET', path + query(params));
  return res.json();
}

/** post sends JSON and returns the decoded answer (null for 204). */
export async function post(path, body) {
  const res = await send('POST', path, { body: body ?? {} });
  return res.status === 204 ? null : res.json();
}

/** me checks a key without storing it. */
export async function me(key) {
  const res = await send('GET', '/api/v1/me', { key });
  return res.json();
}

/**
 * download fetches a document with the key in the header (a POST of body
 * when given) and saves it under the server's file name
 * (Content-Disposition) or fallback.
 */
export async function download(path, fallback, accept, body) {
  const res = await send(body === undefined ? 'GET' : 'POST', path, { accept: accept || '*/*', body });
  const blob = await res.blob();
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(cd);
  const name = m ? decodeURIComponent(m[1]) : fallback;
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return { name, size: blob.size, type: blob.type };
}
