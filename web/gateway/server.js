// A PostgREST-protocol gateway for the calls the imgsearch page makes, for
// machines without a postgrest binary (neither Debian nor npm ships one).
//
// It does what PostgREST does for function calls and nothing else:
// POST /rpc/fn with a JSON object of named arguments, GET /rpc/fn?arg=value,
// one transaction per request as the anonymous role (with that role's
// settings, e.g. statement_timeout), PostgREST's JSON results, error bodies,
// SQLSTATE -> HTTP status mapping and CORS. It reads the same postgrest.conf
// and PGRST_* environment variables. Usage: node gateway/server.js [postgrest.conf]
//
// Serving a burst: it holds db-pool sessions (by default sized for the
// machine: sessionsFor), warms each one up before it listens, and lets
// requests beyond them wait in a FIFO queue (queue.js); a request whose
// expected wait is over db-pool-acquisition-timeout gets 503 at once.
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { errorBody, fromPgError, pgrst } from './errors.js';
import { Busy, SessionQueue } from './queue.js';

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
  const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
  const pool = get('db-pool', null);
  const cors = get('server-cors-allowed-origins', null);
  const adminPort = get('admin-server-port', null);
  return {
    dbUri: get('db-uri', 'postgresql://'),
    schemas: get('db-schemas', 'public').split(',').map((s) => s.trim()).filter(Boolean),
    anonRole: get('db-anon-role', ''),
    extraSearchPath: get('db-extra-search-path', 'public').split(',').map((s) => s.trim()).filter(Boolean),
    // Sessions: db-pool when set, else sized at start (sessionsFor).
    pool: pool === null || pool === '' ? null : positiveInt('db-pool', pool),
    // The bound on a request's expected wait for a session (s). PostgREST
    // waits up to this long and then answers 504; the gateway refuses at
    // once (503) what would wait longer.
    maxWaitMs: 1000 * positiveNumber('db-pool-acquisition-timeout', get('db-pool-acquisition-timeout', '10')),
    host: get('server-host', '!4'),
    port: Number(get('server-port', '3000')),
    adminPort: adminPort === null || adminPort === '' ? null : Number(adminPort),
    // PostgREST's: unset or empty, any origin (*); else only these origins.
    corsOrigins: cors === null || list(cors).length === 0 ? null : list(cors),
    openapiMode: get('openapi-mode', 'follow-privileges'),
    maxBody: Number(env.GATEWAY_MAX_BODY ?? 12 * 1024 * 1024),
    // How long start-up may take warming the sessions up before the gateway
    // listens anyway (a database that is down: requests then get its 503s).
    warmTimeoutMs: 1000 * positiveNumber('GATEWAY_WARM_TIMEOUT', env.GATEWAY_WARM_TIMEOUT ?? '60'),
    cpus: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
  };
}

function positiveNumber(name, v) {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new Error(`${name} must be a positive number, not "${v}"`);
  return n;
}
function positiveInt(name, v) {
  const n = positiveNumber(name, v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number, not "${v}"`);
  return n;
}

// Sessions when db-pool is not set: two per core of this machine (searches
// wait on the server's model workers part of the time, so one per core would
// leave them idle between requests; more only moves the queue into the
// database, where it is neither bounded nor seen), at least 2, and no more
// than the server has connections free for this login (less 2: cancel
// requests and an administrator need one).
export function sessionsFor(cpus, free) {
  const wanted = Math.max(2, 2 * cpus);
  return Math.max(1, Math.min(wanted, free - 2));
}

// Connections the server can still give this login in this database. Other
// users' rows of pg_stat_activity hide their backend_type from a plain login,
// not their database: sessions are the rows with one (and a background
// worker connected to one, e.g. an ingest worker: counted too, erring low).
// 1 + : the session asking is counted, and closes before the pool opens.
const CAPACITY_SQL = `
SELECT 1 + least(
  current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
    - (SELECT count(*) FROM pg_stat_activity WHERE datid IS NOT NULL),
  coalesce((SELECT nullif(rolconnlimit, -1) FROM pg_roles WHERE rolname = session_user)
    - (SELECT count(*) FROM pg_stat_activity WHERE usename = session_user), 1000000),
  coalesce((SELECT nullif(datconnlimit, -1) FROM pg_database WHERE datname = current_database())
    - (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()), 1000000)
) AS free`;

// --- HTTP helpers ------------------------------------------------------------

// PostgREST's list, and the headers api.search sets (so the page, served
// from another origin, can read them).
const EXPOSED = 'Content-Encoding, Content-Location, Content-Range, Content-Type, Date, Location, Server, Transfer-Encoding, Range-Unit, X-Search-Method, Server-Timing, Retry-After, X-Upload-Sha256';

// CORS as PostgREST does it: with no server-cors-allowed-origins any origin
// (*, no credentials); with it, an origin of the list gets itself back (and
// credentials), any other no CORS headers at all (the request is served, the
// browser keeps the answer from the page). Unlike PostgREST it says Vary:
// Origin, so that a cache does not hand one origin's answer to another.
export function corsHeaders(origins, origin) {
  if (!origin) return {};
  if (origins === null) return { 'Access-Control-Allow-Origin': '*', 'Access-Control-Expose-Headers': EXPOSED };
  if (!origins.includes(origin)) return { Vary: 'Origin' };
  return {
    'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true',
    'Access-Control-Expose-Headers': EXPOSED, Vary: 'Origin',
  };
}

function send(req, res, status, body, extra = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...corsHeaders(res.corsOrigins ?? null, req.headers.origin),
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function sendError(req, res, [status, body], more = {}) {
  const extra = { 'Proxy-Status': `PostgREST; error=${body.code}`, ...more };
  if (status === 401) extra['WWW-Authenticate'] = 'Bearer';
  send(req, res, status, body, extra);
}

// Server-Timing: the function's own metrics (api.search's model and db) and
// the gateway's wait for a session.
function withQueueTiming(headers, queueMs) {
  const queue = `queue;dur=${queueMs.toFixed(1)}`;
  const own = Object.keys(headers).find((k) => k.toLowerCase() === 'server-timing');
  if (!own) return { ...headers, 'Server-Timing': queue };
  return { ...headers, [own]: `${headers[own]}, ${queue}` };
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
    broken = sessionBroken(err);
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

// The searches the gateway runs in each session it opens at start, so that
// the session has done what a first search costs (the module and its caches,
// plpgsql's compilation; libtorch and the model where the server has no
// model workers: seconds) before a request comes. A 32x32 BMP of one grey:
// a different one each round, as vgg16_features keeps its last result.
export function warmupImage(grey) {
  const side = 32;
  const pixels = side * side * 3;
  const b = Buffer.alloc(54 + pixels, grey & 255);
  b.write('BM', 0, 'latin1');
  b.writeUInt32LE(54 + pixels, 2);
  b.writeUInt32LE(0, 6);
  b.writeUInt32LE(54, 10);          // pixel data offset
  b.writeUInt32LE(40, 14);          // BITMAPINFOHEADER
  b.writeInt32LE(side, 18);
  b.writeInt32LE(side, 22);
  b.writeUInt16LE(1, 26);           // planes
  b.writeUInt16LE(24, 28);          // bits per pixel
  b.writeUInt32LE(0, 30);           // no compression
  b.writeUInt32LE(pixels, 34);
  b.writeInt32LE(2835, 38);
  b.writeInt32LE(2835, 42);
  b.writeUInt32LE(0, 46);
  b.writeUInt32LE(0, 50);
  return b.toString('base64');
}

function sessionBroken(err) {
  return !!err.brokenSession || !(err instanceof HttpError || (typeof err.code === 'string' && err.code.length === 5));
}

// --- request handling ----------------------------------------------------------

// The gateway: an http.Server (not listening yet) with .warming, a promise
// that resolves once its sessions are open and warm (or warm-up gave up), and
// .state() (sessions, ready, queued, active) for /ready and tests.
export function createGateway(cfg) {
  let pool = null;
  let queue = null;
  let ready = false;           // every session open and warm
  let reachable = true;        // the last attempt to reach the database worked

  // Sessions stay open (idleTimeoutMillis 0; the library's default drops them
  // after 10 s idle, and a new session costs a first search again).
  function openPool(sessions) {
    pool = new pg.Pool({
      connectionString: cfg.dbUri, max: sessions, idleTimeoutMillis: 0, application_name: 'imgsearch-gateway',
    });
    pool.on('error', () => {});   // an idle client that died is dropped; the next request reconnects
    queue = new SessionQueue(sessions, cfg.maxWaitMs);
  }

  // Sizes the pool (db-pool, else sessionsFor this machine and the server's
  // free connections), opens every session and runs a small search in each,
  // twice (as web_anon, like a request): the first is a new session's cost,
  // the second a warm search's, the queue's first estimate of a search.
  async function warmUp() {
    let free = Infinity;
    if (cfg.pool === null) {
      const probe = new pg.Client({ connectionString: cfg.dbUri, application_name: 'imgsearch-gateway-probe' });
      probe.on('error', () => {});
      try {
        await probe.connect();
        free = Number((await probe.query(CAPACITY_SQL)).rows[0].free);
      } catch (err) {
        reachable = false;
        console.error(`gateway: cannot reach the database to size the pool: ${err.message}`);
      } finally {
        await probe.end().catch(() => {});
      }
    }
    const sessions = cfg.pool ?? sessionsFor(cfg.cpus, free);
    openPool(sessions);
    const clients = await Promise.all(Array.from({ length: sessions }, () => pool.connect().catch((err) => err)));
    const open = clients.filter((c) => !(c instanceof Error));
    if (open.length < sessions) {
      reachable = open.length > 0;
      console.error(`gateway: opened ${open.length} of ${sessions} sessions: ${clients.find((c) => c instanceof Error).message}`);
    }
    let warmed = 0;
    await Promise.all(open.map(async (client) => {
      let broken = false;
      try {
        for (let round = 0; round < 2; round++) {
          const t0 = performance.now();
          await callFunction(null, cfg, cfg.schemas[0], 'search', { image: warmupImage(100 + round), k: 1 }, true, false, client);
          if (round === 1) queue.record('search', performance.now() - t0);
        }
        warmed++;
      } catch (err) {
        // no api.search (another API): the sessions are open, that is all
        if (!sessionBroken(err)) warmed++;
        else broken = true;
      } finally {
        client.release(broken ? true : undefined);
      }
    }));
    ready = warmed === sessions;
    return { sessions, warmed };
  }

  async function handle(req, res) {
    const url = new URL(req.url, 'http://gateway');
    const method = req.method;

    if (method === 'OPTIONS' && req.headers.origin && req.headers['access-control-request-method']) {
      const allowed = cfg.corsOrigins === null || cfg.corsOrigins.includes(req.headers.origin);
      if (!allowed) {
        // as PostgREST: no CORS headers, so the browser refuses the request
        res.writeHead(200, { Allow: 'OPTIONS,GET,HEAD,POST', Vary: 'Origin', 'Content-Length': '0' });
        return res.end();
      }
      const requested = (req.headers['access-control-request-headers'] || '')
        .split(',').map((h) => h.trim()).filter(Boolean);
      res.writeHead(200, {
        'Access-Control-Allow-Origin': cfg.corsOrigins === null ? '*' : req.headers.origin,
        ...(cfg.corsOrigins === null ? {} : { 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' }),
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
    // A client that leaves (the page's Cancel) gives up its place in the
    // queue, or has its statement canceled: under load its search would
    // hold a session for nothing.
    const left = new AbortController();
    const running = { pid: null, canceling: null };
    const onClose = () => {
      if (res.writableFinished) return;
      left.abort();
      if (running.pid) running.canceling = cancelBackend(cfg, running.pid);
    };
    res.on('close', onClose);

    const queued = performance.now();
    let release;
    try {
      release = await queue.acquire(fn, left.signal);
    } catch (err) {
      if (err instanceof Busy) {
        return sendError(req, res, pgrst.busy(err), {
          'Retry-After': String(err.retryAfterS),
          'Server-Timing': 'queue;dur=0.0',
        });
      }
      if (err.name === 'AbortError') return res.destroy();
      throw err;
    }
    const queueMs = performance.now() - queued;
    let row;
    try {
      row = await callFunction(pool, cfg, schema, fn, args, viaJsonBody, method !== 'POST', null, running);
      reachable = true;
      ready = true;               // after a start without the database: it is back
    } catch (err) {
      // a SQLSTATE or the gateway's own refusal: the database did answer
      reachable = err instanceof HttpError || (typeof err.code === 'string' && err.code.length === 5);
      err.queueMs = queueMs;
      throw err;
    } finally {
      release();
    }
    const n = Number(row.n);
    send(req, res, 200, row.body, withQueueTiming({
      ...responseHeaders(row.headers),
      'Content-Range': n > 0 ? `0-${n - 1}/*` : '*/*',
    }, queueMs));
  }

  const server = http.createServer((req, res) => {
    res.corsOrigins = cfg.corsOrigins;    // send() answers CORS by it
    handle(req, res).catch((err) => {
      if (res.headersSent) return res.destroy();
      const timing = err.queueMs === undefined ? {} : { 'Server-Timing': `queue;dur=${err.queueMs.toFixed(1)}` };
      if (err instanceof HttpError) {
        return sendError(req, res, err.reply, timing);
      }
      // SQLSTATEs, and connection failures (ECONNREFUSED...): 503 as PostgREST
      if (typeof err.code === 'string') return sendError(req, res, fromPgError(err), timing);
      console.error('gateway:', err);
      sendError(req, res, [500, errorBody('PGRSTX00', 'Internal error', String(err.message))], timing);
    });
  });
  const t0 = Date.now();
  const warming = Promise.race([
    warmUp().then(({ sessions, warmed }) => {
      console.log(`gateway: ${sessions} sessions (${cfg.pool === null ? `sized for ${cfg.cpus} cores` : 'db-pool'}), `
        + `${warmed} warmed up in ${Date.now() - t0} ms; a search takes ${Math.round(queue.serviceMs('search'))} ms`);
    }),
    new Promise((resolve) => { setTimeout(resolve, cfg.warmTimeoutMs).unref(); }),
  ]).then(() => {
    if (!queue) openPool(cfg.pool ?? sessionsFor(cfg.cpus, Infinity));   // the database is still away
  });
  server.warming = warming;
  server.state = () => ({
    sessions: queue ? queue.sessions : null, ready: ready && reachable,
    active: queue ? queue.active : 0, queued: queue ? queue.waiters.length : 0,
  });
  // An idle connection outlives its clients' reuse of it: with Node's 5 s a
  // client (undici) could send a request just as the server closed the socket,
  // and get "fetch failed" (seen under load).
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.on('close', () => { warming.then(() => pool.end()); });
  return server;
}

// PostgREST's admin server (admin-server-port): GET /live 200 while the
// process runs; GET /ready 200 once every session is open and warm (after a
// start without the database: once a request is answered) and while the
// database answered the last request, else 503: what a load balancer's
// health check reads.
export function createAdminServer(gateway) {
  return http.createServer((req, res) => {
    const path = new URL(req.url, 'http://admin').pathname;
    let status = 404;
    if (path === '/live') status = 200;
    else if (path === '/ready') status = gateway.state().ready ? 200 : 503;
    res.writeHead(status, { 'Content-Length': '0' });
    res.end();
  });
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
  let admin = null;
  if (cfg.adminPort !== null) {
    admin = createAdminServer(server);
    admin.listen(cfg.adminPort, listenHost(cfg.host));
  }
  // The API's socket opens once the sessions are warm: a load balancer (or
  // a script waiting for the port) sends nothing before.
  server.warming.then(() => server.listen(cfg.port, listenHost(cfg.host), () => {
    const s = server.state();
    console.log(`gateway: listening on ${cfg.host}:${server.address().port}, schemas ${cfg.schemas.join(',')}, `
      + `anon role ${cfg.anonRole}, ${s.sessions} sessions${s.ready ? '' : ' (not ready: see above)'}`);
  }));
  const stop = () => { if (admin) admin.close(); server.close(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
