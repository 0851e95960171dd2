// The search in the page's URL, so that a reload, the back button and a
// shared link bring it back:
//   ?id=12                  a collection image (its stored feature)
//   ?upload=SHA256          an uploaded image the server keeps (api.search
//   &box=x,y,w,h            answered its hash); box: an area of it, in the
//                           pixels of the image the server has
//   &method=faissflat&k=50  (auto and 30 are left out)
//   &more=40&more=SHA256    examples: "more like this", "less like this";
//   &less=7                 an id, or an upload's SHA256 (with :x,y,w,h
//                           for an area of it)
// Other parameters (the page's ?api=) are kept as they are.

export const DEFAULT_K = 30;
export const DEFAULT_METHOD = 'auto';
const OURS = ['id', 'upload', 'box', 'method', 'k', 'more', 'less'];
const MAX_ID = 9223372036854775807n;

const HEX64 = /^[0-9a-f]{64}$/;
const ID = /^[0-9]{1,19}$/;
const METHOD = /^[a-z][a-z0-9_]{0,62}$/;

// A collection id as the URL has it (decimal, 0 to 2^63-1), or null.
function parseId(s) {
  if (!ID.test(s) || BigInt(s) > MAX_ID) return null;
  return Number(s) <= Number.MAX_SAFE_INTEGER ? Number(s) : null;
}

// "x,y,w,h", four whole numbers, width and height positive; else null.
export function parseBox(s) {
  if (typeof s !== 'string' || !/^[0-9]{1,9}(,[0-9]{1,9}){3}$/.test(s)) return null;
  const b = s.split(',').map(Number);
  return b[2] > 0 && b[3] > 0 ? b : null;
}

// An example: {id} or {upload, box} (box null: the whole image).
export function parseRef(token) {
  if (typeof token !== 'string') return null;
  const id = parseId(token);
  if (id !== null) return { id };
  const [hash, box, ...rest] = token.toLowerCase().split(':');
  if (!HEX64.test(hash) || rest.length) return null;
  if (box === undefined) return { upload: hash, box: null };
  const b = parseBox(box);
  return b ? { upload: hash, box: b } : null;
}

export function refToken(ref) {
  if (ref.id !== undefined) return String(ref.id);
  return ref.box ? `${ref.upload}:${ref.box.join(',')}` : ref.upload;
}

export const sameRef = (a, b) => refToken(a) === refToken(b);

// The search a URL's query string names: {query, box, method, k, more, less}
// with query {id} or {upload} or null. What does not parse is left out (a
// bad k or method: the default), and listed in ignored.
export function readUrlState(search) {
  const p = new URLSearchParams(search);
  const ignored = [];
  const state = { query: null, box: null, method: DEFAULT_METHOD, k: DEFAULT_K, more: [], less: [], ignored };
  const id = p.get('id');
  const upload = p.get('upload');
  if (id !== null) {
    const v = parseId(id);
    if (v === null) ignored.push('id'); else state.query = { id: v };
  } else if (upload !== null) {
    if (HEX64.test(upload.toLowerCase())) state.query = { upload: upload.toLowerCase() };
    else ignored.push('upload');
  }
  if (p.get('box') !== null) {
    const b = parseBox(p.get('box'));
    // an area is of an upload: a collection image is searched by its stored feature
    if (b && state.query && state.query.upload) state.box = b; else ignored.push('box');
  }
  if (p.get('method') !== null) {
    if (METHOD.test(p.get('method'))) state.method = p.get('method'); else ignored.push('method');
  }
  if (p.get('k') !== null) {
    const k = /^[0-9]{1,4}$/.test(p.get('k')) ? Number(p.get('k')) : 0;
    if (k >= 1 && k <= 1000) state.k = k; else ignored.push('k');
  }
  for (const sign of ['more', 'less']) {
    for (const token of p.getAll(sign)) {
      const ref = parseRef(token);
      if (!ref) { ignored.push(sign); continue; }
      if (![...state.more, ...state.less].some((r) => sameRef(r, ref))) state[sign].push(ref);
    }
  }
  return state;
}

// The query string for state, keeping search's other parameters (?api=)
// first, in their order.
export function writeUrlState(state, search = '') {
  const p = new URLSearchParams(search);
  for (const name of OURS) p.delete(name);
  if (state.query && state.query.id !== undefined) p.set('id', String(state.query.id));
  else if (state.query && state.query.upload) {
    p.set('upload', state.query.upload);
    if (state.box) p.set('box', state.box.join(','));
  }
  if (state.method && state.method !== DEFAULT_METHOD) p.set('method', state.method);
  if (state.k && state.k !== DEFAULT_K) p.set('k', String(state.k));
  for (const sign of ['more', 'less']) for (const ref of state[sign] || []) p.append(sign, refToken(ref));
  const s = p.toString();
  return s ? `?${s}` : '';
}

// Whether a query string names a search (else the page starts empty).
export function namesSearch(state) {
  return !!state.query || state.more.length > 0;
}

// The API call for a search: {fn, args}. query: {id} | {upload: SHA256} |
// {image: base64} | null; box [x, y, w, h] in the server's pixels or null;
// more, less: refs. With examples, everything goes to api.similar (an image
// not yet kept cannot be an example: kept first, by api.search).
export function searchCall({ query, box, method, k, more = [], less = [] }) {
  if (!query && more.length === 0) return null;
  if (more.length === 0 && less.length === 0) {
    if (query.image !== undefined) return { fn: 'search', args: { image: query.image, k, method, ...(box ? { box } : {}) } };
    if (query.upload) return { fn: 'search_upload', args: { sha256: query.upload, k, method, ...(box ? { box } : {}) } };
    return { fn: 'similar', args: { positives: [query.id], k, method } };
  }
  if (query && query.image !== undefined) return null;    // keep it first
  const pos = query ? [query.id !== undefined ? { id: query.id } : { upload: query.upload, box }, ...more] : more;
  const ids = (refs) => refs.filter((r) => r.id !== undefined).map((r) => r.id);
  const ups = (refs) => refs.filter((r) => r.upload).map(refToken);
  return {
    fn: 'similar',
    args: {
      positives: ids(pos), negatives: ids(less), k, method,
      ...(ups(pos).length ? { positive_uploads: ups(pos) } : {}),
      ...(ups(less).length ? { negative_uploads: ups(less) } : {}),
    },
  };
}
