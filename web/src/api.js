// Calls to the PostgREST API (or the gateway that speaks its protocol).

export class ApiError extends Error {
  constructor(message, { status = 0, code = null, details = null, hint = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.hint = hint;
  }
}

// The API's base URL: ?api=URL on the page, else VITE_API_URL at build time,
// else port 3000 of the host that served the page.
export function apiBase(location, envUrl) {
  const fromQuery = new URLSearchParams(location.search).get('api');
  const url = fromQuery || envUrl || `${location.protocol}//${location.hostname}:3000`;
  return url.replace(/\/+$/, '');
}

// An error response as the user should read it: PostgREST's
// {code, message, details, hint} when the body has it, else the HTTP status.
export function errorFromResponse(status, statusText, text) {
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON: a proxy or a crash */ }
  if (body && typeof body.message === 'string') {
    return new ApiError(body.message, { status, code: body.code ?? null, details: body.details ?? null, hint: body.hint ?? null });
  }
  return new ApiError(`The API answered ${status}${statusText ? ' ' + statusText : ''}`, { status });
}

export async function rpc(base, fn, args = {}, fetchImpl = fetch) {
  return (await rpcCall(base, fn, args, { fetchImpl })).rows;
}

// rpc with what the page shows about a call: {rows, headers, ms}. signal
// aborts it (an AbortError is thrown as is, not as an ApiError).
export async function rpcCall(base, fn, args = {}, { fetchImpl = fetch, signal } = {}) {
  const t0 = Date.now();
  let res;
  let text;
  try {
    res = await fetchImpl(`${base}/rpc/${fn}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(args),
      signal,
    });
    text = await res.text();
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(`Cannot reach the API at ${base}`, { details: String(e.message || e) });
  }
  if (!res.ok) throw errorFromResponse(res.status, res.statusText, text);
  return { rows: JSON.parse(text), headers: res.headers, ms: Date.now() - t0 };
}

// Server-Timing's durations: "model;dur=12.5, db;dur=3" -> {model: 12.5, db: 3}.
export function parseServerTiming(header) {
  const out = {};
  for (const part of String(header || '').split(',')) {
    const [name, ...params] = part.split(';').map((x) => x.trim());
    const dur = params.map((p) => /^dur=([0-9.]+)$/.exec(p)).find(Boolean);
    if (name && dur) out[name] = Number(dur[1]);
  }
  return out;
}

// Where a search's time went, from Server-Timing ({model, db, queue}) and the
// whole round trip (ms): " (queued Q ms, model M ms, database D ms, transfer
// and page T ms)", queued only where the server says (the gateway's wait for a
// database session; PostgREST does not); '' without model and db. Transfer
// and page is what is left.
export function timingSplit({ ms, model, db, queue }) {
  if (model === undefined || db === undefined) return '';
  const parts = [];
  if (queue !== undefined) parts.push(`queued ${Math.round(queue)} ms`);
  parts.push(`model ${Math.round(model)} ms`, `database ${Math.round(db)} ms`,
    `transfer and page ${Math.max(0, Math.round(ms - (queue ?? 0) - model - db))} ms`);
  return ` (${parts.join(', ')})`;
}

// Base64 of bytes (the API takes images as base64 text).
export function bytesToBase64(bytes) {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}
