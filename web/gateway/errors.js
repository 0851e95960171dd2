// PostgREST's error responses: the body {code, message, details, hint} and
// the HTTP status of a PostgreSQL error (PostgREST's mapSQLtoHTTP).

// Status of a SQLSTATE raised while serving an anonymous request.
export function statusForSqlState(code, message = '') {
  const two = code.slice(0, 2);
  switch (code) {
    case '23503': case '23505': return 409;
    case '25006': return 405;
    case '21000': return /requires a WHERE clause$/.test(message) ? 400 : 500;
    case '22023': return /^role.*does not exist$/.test(message) ? 401 : 400;
    case '53400': return 500;
    case '57P01': return 503;
    case 'P0001': return 400;
    case '42883': return 404;
    case '42P01': return 404;
    case '42P17': return 500;
    case '42501': return 401;          // 403 once a JWT role is in play; never here
  }
  if (code.startsWith('PT')) {
    const n = Number(code.slice(2));
    return Number.isInteger(n) && n >= 100 && n <= 599 ? n : 500;
  }
  switch (two) {
    case '08': return 503;
    case '0L': case '0P': case '28': return 403;
    case '53': return 503;
    case '09': case '25': case '2D': case '38': case '39': case '3B': case '40':
    case '54': case '55': case '57': case '58': case 'F0': case 'HV': case 'XX':
      return 500;
    case 'P0': return 500;
  }
  return 400;
}

export function errorBody(code, message, details = null, hint = null) {
  return { code, message, details, hint };
}

// A pg (node-postgres) error as PostgREST answers it: [status, body].
export function fromPgError(err) {
  if (!err || typeof err.code !== 'string' || err.code.length !== 5) {
    return [503, errorBody('PGRST000', 'Database connection error. Retrying the connection.',
      err && err.message ? String(err.message) : null)];
  }
  return [statusForSqlState(err.code, err.message),
    errorBody(err.code, err.message, err.detail ?? null, err.hint ?? null)];
}

// The errors PostgREST raises itself for the requests the gateway serves.
export const pgrst = {
  noRpc(schema, fn, keys, viaJsonBody) {
    const func = `${schema}.${fn}`;
    const list = keys.join(', ');
    const prms = keys.length === 0 ? ' without parameters'
      : ` with parameter${keys.length > 1 ? 's' : ''} ${list}`;
    return [404, errorBody('PGRST202',
      `Could not find the function ${func}${keys.length === 0 ? ' without parameters' : `(${list})`} in the schema cache`,
      `Searched for the function ${func}${prms}${viaJsonBody ? ' or with a single unnamed json/jsonb parameter' : ''}, but no matches were found in the schema cache.`)];
  },
  ambiguousRpc(candidates) {
    return [300, errorBody('PGRST203',
      `Could not choose the best candidate function between: ${candidates.join(', ')}`, null,
      'Try renaming the parameters or the function itself in the database so function overloading can be resolved')];
  },
  invalidBody(msg = 'Empty or invalid json') {
    return [400, errorBody('PGRST102', msg)];
  },
  invalidRpcMethod(method) {
    return [405, errorBody('PGRST101', `Cannot use the ${method} method on RPC`)];
  },
  unacceptableSchema(schema, exposed) {
    return [406, errorBody('PGRST106', `Invalid schema: ${schema}`, null,
      `Only the following schemas are exposed: ${exposed.join(', ')}`)];
  },
  mediaType(types) {
    return [406, errorBody('PGRST107', `None of these media types are available: ${types.join(', ')}`)];
  },
  contentType(type) {
    return [415, errorBody('PGRST107', `Content-Type not acceptable: ${type}`)];
  },
  tableNotFound(schema, name) {
    return [404, errorBody('PGRST205', `Could not find the table '${schema}.${name}' in the schema cache`)];
  },
  invalidPath() {
    return [404, errorBody('PGRST125', 'Invalid path specified in request URL')];
  },
  rootDisabled() {
    return [404, errorBody('PGRST126', 'Root endpoint metadata is disabled')];
  },
  // The gateway's own: every session busy and the queue's expected wait over
  // the bound (queue.js Busy). PostgREST would wait db-pool-acquisition-timeout
  // and answer 504 PGRST003; this is said at once.
  busy(b) {
    const s = (ms) => (ms / 1000).toFixed(1);
    return [503, errorBody('PGRSTX03',
      `The server is busy: ${b.waiting} requests are waiting for it. Try again in ${b.retryAfterS} s.`,
      `The expected wait, ${s(b.expectedMs)} s, is over the limit of ${s(b.boundMs)} s (db-pool-acquisition-timeout).`,
      `Try again in ${b.retryAfterS} s (Retry-After).`)];
  },
  // PostgREST has no body limit of its own (a proxy in front sets one); the
  // gateway is that proxy too. 54000: program_limit_exceeded.
  tooLarge(limit) {
    const mb = (limit / 1048576).toFixed(1).replace(/\.0$/, '');
    return [413, errorBody('54000', `The image is too large to upload: the limit is ${mb} MB.`,
      `The limit is ${limit} bytes of request body.`, 'Use a smaller image.')];
  },
};
