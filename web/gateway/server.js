// A PostgREST-protocol gateway for the calls the imgsearch page makes, for
// machines without a postgrest binary (neither Debian nor npm ships one).
//
// It does what PostgREST does for function calls and nothing else:
// POST /rpc/fn with a JSON object of named arguments, GET /rpc/fn?arg=value,
// one transaction per request as the anonymous role (with that role's
// settings, e.g. statement_timeout), PostgREST's JSON results, error bodies,
// SQLSTATE -> HTTP status mapping and CORS. It reads the same postgrest.conf
// and PGRST_* environment variables. Usage: node gateway/server.js [postgrest.conf]
import http from 'node:http';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { errorBody, fromPgError, pgrst } from './errors.js';

// --- configuration -----------------------------------------------------------

export function parseConf(text) {
  const conf = {};
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+|\s+$/g, '');
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9_.-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new Error(`postgrest.conf: cannot parse line: ${line}`);
    let v = m[2].replace(/\s+#.*$/, '');
    if (/^".*"$/.test(v)) v = v.slice(1, -1).replace(/\\"/g, '"');
    conf[m[1]] = v;
  }
  return conf;
}

export function loadConfig(file, env = process.env) {
  const conf = file ? parseConf(fs.readFileSync(file, 'utf8')) : {};
  const get = (key, dflt) => {
    const envKey = 'PGRST_' + key.toUpperCase().replace(/-/g, '_');
    return env[envKey] ?? conf[key] ?? dflt;
  };
  return {
    dbUri: get('db-uri', 'postgresql://'),
    schemas: get('db-schemas', 'public').split(',').map((s) => s.trim()).filter(Boolean),
    anonRole: get('db-anon-role', ''),
    extraSearchPath: get('db-extra-search-path', 'public').split(',').map((s) => s.trim()).filter(Boolean),
    pool: Number(get('db-pool', '10')),
    host: get('server-host', '!4'),
    port: Number(get('server-port', '3000')),
    openapiMode: get('openapi-mode', 'follow-privileges'),
    maxBody: Number(env.GATEWAY_MAX_BODY ?? 12 * 1024 * 1024),
    // Sessions warmed up at start (each holds the model: about 200 MB).
    warm: Number(env.GATEWAY_WARM ?? 2),
  };
}

// --- HTTP helpers ------------------------------------------------------------

// PostgREST's list, and the headers api.search sets (so the page, served
// from another origin, can read them).
const EXPOSED = 'Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit, X-Search-Method, Server-Timing';

function corsHeaders(req) {
  // PostgREST with no server-cors-allowed-origins: any origin, no credentials.
  if (!req.headers.origin) return {};
  return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': EXPOSED };
}

function send(req, res, status, body, extra = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...corsHeaders(req),
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function sendError(req, res, [status, body]) {
  const extra = { 'Proxy-Status': `PostgREST; error=${body.code}` };
  if (status === 401) extra['WWW-Authenticate'] = 'Bearer';
  send(req, res, status, body, extra);
}

class HttpError extends Error {
  constructor(reply) { super(reply[1].message); this.reply = reply; }
}

// Reads the body up to limit bytes. Past it, the rest is read and dropped (up
// to a bound) so that the client, still sending, gets to read the 413.
function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const refuse = () => {
      let dropped = 0;
      req.removeAllListeners('data');
      req.on('data', (c) => { dropped += c.length; if (dropped > 8 * limit) req.destroy(); });
      reject(new HttpError(pgrst.tooLarge(limit)));
    };
    if (Number(req.headers['content-length']) > limit) return refuse();
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) refuse();
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function acceptsJson(accept) {
  if (!accept) return true;
  return accept.split(',').some((part) => {
    const type = part.split(';')[0].trim().toLowerCase();
    return type === '*/*' || type === 'application/*' || type === 'application/json';
  });
}

// --- function calls ----------------------------------------------------------

// Functions named fn in schema, with their parameters and result shape.
const FUNCTIONS_SQL = `
SELECT p.oid, p.proname, p.proretset AS retset, p.provolatile AS volatility,
       t.typtype = 'c' OR (p.prorettype = 'record'::regtype AND p.proallargtypes IS NOT NULL) AS composite,
       p.pronargs - p.pronargdefaults AS required,
       coalesce((SELECT json_agg(json_build_object('name', a.name, 'type', format_type(a.type, NULL)) ORDER BY a.n)
                   FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                               coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])))
                        WITH ORDINALITY a(type, name, mode, n)
                  WHERE a.mode IN ('i', 'b', 'v')), '[]') AS params
  FROM pg_proc p JOIN pg_type t ON t.oid = p.prorettype
 WHERE p.pronamespace = $1::regnamespace AND p.proname = $2 AND p.prokind = 'f'`;

// The anonymous role's own settings (global, then this database's).
const ROLE_SETTINGS_SQL = `
SELECT split_part(kv, '=', 1) AS name, substr(kv, strpos(kv, '=') + 1) AS value
  FROM pg_db_role_setting s, unnest(s.setconfig) kv
 WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1)
   AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
 ORDER BY s.setdatabase`;

function pickFunction(candidates, keys) {
  return candidates.filter((f) => {
    const names = f.params.map((p) => p.name);
    if (names.some((n) => n === null)) return false;         // positional-only: not callable by name
    const required = names.slice(0, f.required);
    return keys.every((k) => names.includes(k)) && required.every((n) => keys.includes(n));
  });
}

function callSql(schema, f, keys) {
  const id = pg.escapeIdentifier;
  const params = f.params.filter((p) => keys.includes(p.name));
  const cols = params.map((p) => `${id(p.name)} ${p.type}`).join(', ');
  const args = params.map((p) => `${id(p.name)} := pgrst_body.${id(p.name)}`).join(', ');
  const call = `${id(schema)}.${id(f.proname)}(${args})`;
  const from = params.length
    ? `json_to_record($1::json) AS pgrst_body(${cols}), `
    : '';
  const scalar = !f.composite;
  const source = scalar
    ? `SELECT pgrst_call.pgrst_scalar FROM ${from}LATERAL (SELECT ${call} AS pgrst_scalar) pgrst_call`
    : `SELECT pgrst_call.* FROM ${from}LATERAL ${call} pgrst_call`;
  let body;
  if (f.retset) body = scalar ? `coalesce(json_agg(t.pgrst_scalar), '[]')` : `coalesce(json_agg(t), '[]')`;
  else body = scalar ? `coalesce(json_agg(t.pgrst_scalar)->0, 'null')` : `coalesce(json_agg(t)->0, 'null')`;
  return `WITH pgrst_source AS (${source}) SELECT count(*) AS n, ${body}::text AS body,
    current_setting('response.headers', true) AS headers FROM pgrst_source t`;
}

// running, when given, is told the session's backend pid while the call runs.
async function callFunction(pool, cfg, schema, fn, args, viaJsonBody, readOnlyRequest, heldClient = null, running = null) {
  if (heldClient) return callWith(heldClient, cfg, schema, fn, args, viaJsonBody, readOnlyRequest);
  const client = await pool.connect();
  if (running) running.pid = client.processID;
  let broken = false;
  try {
    return await callWith(client, cfg, schema, fn, args, viaJsonBody, readOnlyRequest);
  } catch (err) {
    if (err.brokenSession || !(err instanceof HttpError || (typeof err.code === 'string' && err.code.length === 5))) broken = true;
    throw err;
  } finally {
    if (running) {
      running.pid = null;
      // not back into the pool before a cancel is through: it would hit another request
      await running.canceling;
    }
    client.release(broken ? true : undefined);
  }
}

// Cancels what backend pid runs (a client that went away waits for nothing):
// from a session of its own, as the same login, which may signal it.
async function cancelBackend(cfg, pid) {
  const c = new pg.Client({ connectionString: cfg.dbUri, application_name: 'imgsearch-gateway-cancel' });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch { /* gone already */ } finally {
    c.end().catch(() => {});
  }
}

async function callWith(client, cfg, schema, fn, args, viaJsonBody, readOnlyRequest) {
  const keys = Object.keys(args);
  const { rows: candidates } = await client.query(FUNCTIONS_SQL, [schema, fn]);
  const matches = pickFunction(candidates, keys);
  if (matches.length === 0) throw new HttpError(pgrst.noRpc(schema, fn, keys, viaJsonBody));
  if (matches.length > 1) {
    throw new HttpError(pgrst.ambiguousRpc(matches.map((f) =>
      `${schema}.${f.proname}(${f.params.map((p) => `${p.name} => ${p.type}`).join(', ')})`)));
  }
  const f = matches[0];
  const { rows: settings } = await client.query(ROLE_SETTINGS_SQL, [cfg.anonRole]);
  const readOnly = readOnlyRequest || f.volatility !== 'v';
  await client.query(`BEGIN ISOLATION LEVEL READ COMMITTED ${readOnly ? 'READ ONLY' : 'READ WRITE'}`);
  try {
    const searchPath = [schema, ...cfg.extraSearchPath].map(pg.escapeIdentifier).join(', ');
    const names = ['search_path', 'role'];
    const values = [searchPath, cfg.anonRole];
    for (const s of settings) { names.push(s.name); values.push(s.value); }
    await client.query('SELECT set_config(n, v, true) FROM unnest($1::text[], $2::text[]) AS s(n, v)',
      [names, values]);
    const { rows } = await client.query(callSql(schema, f, keys), keys.length ? [JSON.stringify(args)] : []);
    await client.query('COMMIT');
    return rows[0];
  } catch (err) {
    // A failed ROLLBACK leaves the session unusable: its error is no SQLSTATE.
    await client.query('ROLLBACK').catch((e) => { throw Object.assign(err, { brokenSession: e }); });
    throw err;
  }
}

// The headers a function set in response.headers (PostgREST's format: a
// JSON array of {name: value} objects); anything else is ignored.
export function responseHeaders(text) {
  const out = {};
  let list;
  try { list = JSON.parse(text || '[]'); } catch { return out; }
  if (!Array.isArray(list)) return out;
  for (const o of list) {
    if (!o || typeof o !== 'object') continue;
    for (const [k, v] of Object.entries(o)) {
      if (/^[A-Za-z0-9-]+$/.test(k) && typeof v === 'string' && !/[\r\n]/.test(v)) out[k] = v;
    }
  }
  return out;
}

// The search the gateway runs in each session it opens at start, so that the
// model (libtorch and its weights: seconds to load) is loaded and has run
// before the first request. A 32x32 grey PNG.
const WARMUP_IMAGE = 'iVBORw0KGgoAAAANSUhEUgAAACAAAAAgCAIAAAD8GO2jAAAAKUlEQVR4nO3NMQEAAAjDMED5pGMCvlRA00nqs3m9AwAAAAAAAAAAgMMWvj0BwDVKG0sAAAAASUVORK5CYII=';

const WARMUP_WAIT_MS = 30000;

// --- request handling ----------------------------------------------------------

export function createGateway(cfg) {
  // Sessions stay open (idleTimeoutMillis 0; the library's default drops them
  // after 10 s idle): a new session loads the model again, seconds of work.
  const pool = new pg.Pool({
    connectionString: cfg.dbUri, max: cfg.pool, idleTimeoutMillis: 0, application_name: 'imgsearch-gateway',
  });
  pool.on('error', () => {});   // an idle client that died is dropped; the next request reconnects

  // Opens cfg.warm sessions and runs a small search in each (as web_anon,
  // like a request), so that the first searches find the model loaded. A
  // failure (no database yet, no api.search) only leaves them cold.
  // Requests wait for it (at most WARMUP_WAIT_MS): else the first ones
  // would open more sessions, cold ones.
  async function warmUp() {
    const n = Math.min(cfg.warm, cfg.pool);
    const clients = [];
    for (let i = 0; i < n; i++) clients.push(await pool.connect().catch(() => null));
    await Promise.all(clients.filter(Boolean).map(async (client) => {
      let broken = false;
      try {
        await callFunction(null, cfg, cfg.schemas[0], 'search', { image: WARMUP_IMAGE, k: 1 }, true, false, client);
      } catch (err) {
        if (err.brokenSession || !(err instanceof HttpError || (typeof err.code === 'string' && err.code.length === 5))) broken = true;
      } finally {
        client.release(broken ? true : undefined);
      }
    }));
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://gateway');
    const method = req.method;

    if (method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method']) {
      const requested = (req.headers['access-control-request-headers'] || '')
        .split(',').map((h) => h.trim()).filter(Boolean);
      res.writeHead(200, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'GET, POST, PATCH, PUT, DELETE, OPTIONS',
        'Access-Control-Allow-Headers': ['Authorization', ...requested].join(', '),
        'Access-Control-Max-Age': '86400',
        'Content-Length': '0',
      });
      return res.end();
    }

    let parts;
    try {
      parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      return sendError(req, res, pgrst.invalidPath());   // a malformed %-escape
    }
    if (parts.length === 0) return sendError(req, res, pgrst.rootDisabled());
    if (parts[0] !== 'rpc') {
      return sendError(req, res, parts.length === 1
        ? pgrst.tableNotFound(cfg.schemas[0], parts[0]) : pgrst.invalidPath());
    }
    if (parts.length !== 2) return sendError(req, res, pgrst.invalidPath());
    const fn = parts[1];

    // Schema negotiation: Accept-Profile for GET, Content-Profile for POST.
    const profile = method === 'POST' ? req.headers['content-profile'] : req.headers['accept-profile'];
    const schema = profile ?? cfg.schemas[0];
    if (!cfg.schemas.includes(schema)) return sendError(req, res, pgrst.unacceptableSchema(schema, cfg.schemas));
    if (!acceptsJson(req.headers.accept)) return sendError(req, res, pgrst.mediaType([req.headers.accept]));

    let args;
    let viaJsonBody = false;
    if (method === 'GET' || method === 'HEAD') {
      args = {};
      for (const [k, v] of url.searchParams) args[k] = v;
    } else if (method === 'POST') {
      const type = (req.headers['content-type'] || 'application/json').split(';')[0].trim().toLowerCase();
      if (type !== 'application/json') {
        req.resume();
        return sendError(req, res, pgrst.contentType(type));
      }
      const text = await readBody(req, cfg.maxBody);
      viaJsonBody = true;
      if (text.trim() === '') args = {};
      else {
        try { args = JSON.parse(text); } catch { return sendError(req, res, pgrst.invalidBody()); }
        if (args === null || typeof args !== 'object' || Array.isArray(args)) {
          return sendError(req, res, pgrst.invalidBody());
        }
      }
    } else {
      req.resume();
      return sendError(req, res, pgrst.invalidRpcMethod(method));
    }

    await warming;
    // A client that leaves before the answer (the page's Cancel) stops the
    // statement: under load its search would hold a session for nothing.
    const running = { pid: null, canceling: null };
    const onClose = () => {
      if (!res.writableFinished && running.pid) running.canceling = cancelBackend(cfg, running.pid);
    };
    res.on('close', onClose);
    const row = await callFunction(pool, cfg, schema, fn, args, viaJsonBody, method !== 'POST', null, running);
    const n = Number(row.n);
    send(req, res, 200, row.body, {
      ...responseHeaders(row.headers),
      'Content-Range': n > 0 ? `0-${n - 1}/*` : '*/*',
    });
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (res.headersSent) return res.destroy();
      if (err instanceof HttpError) {
        return sendError(req, res, err.reply);
      }
      // SQLSTATEs, and connection failures (ECONNREFUSED...): 503 as PostgREST
      if (typeof err.code === 'string') return sendError(req, res, fromPgError(err));
      console.error('gateway:', err);
      sendError(req, res, [500, errorBody('PGRSTX00', 'Internal error', String(err.message))]);
    });
  });
  const t0 = Date.now();
  const warming = Promise.race([
    warmUp().then(() => console.log(`gateway: ${cfg.warm} sessions warmed up in ${Date.now() - t0} ms`)),
    new Promise((resolve) => { setTimeout(resolve, WARMUP_WAIT_MS).unref(); }),
  ]);
  // An idle connection outlives its clients' reuse of it: with Node's 5 s a
  // client (undici) could send a request just as the server closed the socket,
  // and get "fetch failed" (seen under load).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on('close', () => pool.end());
  return server;
}

function listenHost(host) {
  // PostgREST's special hosts: !4 any IPv4, !6 any IPv6, * any.
  if (host === '!4' || host === '*4') return '0.0.0.0';
  if (host === '!6' || host === '*6' || host === '*') return '::';
  return host;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const cfg = loadConfig(process.argv[2]);
  if (!cfg.anonRole) {
    console.error('gateway: db-anon-role is not set');
    process.exit(2);
  }
  const server = createGateway(cfg);
  server.listen(cfg.port, listenHost(cfg.host), () => {
    console.log(`gateway: listening on ${cfg.host}:${server.address().port}, schemas ${cfg.schemas.join(',')}, anon role ${cfg.anonRole}`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
