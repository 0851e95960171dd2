import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, apiBase, bytesToBase64, parseServerTiming, rpc, rpcCall, timingSplit } from './api.js';
import { boxFromDrag, boxFromKey, boxToView } from './box.js';
import { looksComplete, sendPlan } from './image.js';
import { groupResults, labelFor, labelTitle, labelsFor, noCloseText } from './labels.js';
import { useFocusTrap } from './focus.js';
import AddImage from './AddImage.jsx';
import Duplicates from './Duplicates.jsx';
import { ExampleChips, MarkButtons, exampleRefs, withExample, withoutExample } from './Examples.jsx';
import { Gallery, TryThese } from './Gallery.jsx';
import { namesSearch, readUrlState, searchCall, writeUrlState } from './urlState.js';
import { base64ToBytes, boxFromArray, hashOf, serverBox } from './nav.js';

const API = apiBase(window.location, import.meta.env.VITE_API_URL);

// What the method select says about the methods api.methods() offers (an
// unknown one is shown by its name alone).
const METHOD_LABELS = {
  argsort: 'argsort (scan + sort, exact)',
  faissflat: 'faissflat (flat index, exact)',
  kdtree: 'kdtree (k-d tree index, exact)',
  lsh: 'lsh (hashing index, approximate)',
};

// A busy server (503) or no answer at all: worth trying again as it is.
const retryable = (error) => error.status === 503 || error.status === 0;

function ErrorBox({ error, onRetry }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <strong>{error.message}</strong>
      {error.details && <div className="error-more">{error.details}</div>}
      {error.hint && <div className="error-more">Hint: {error.hint}</div>}
      {error.code && <div className="error-code">{error.status ? `HTTP ${error.status} · ` : ''}{error.code}</div>}
      {onRetry && retryable(error) && (
        <button type="button" className="retry" onClick={onRetry} data-testid="retry">Try again</button>
      )}
    </div>
  );
}

// k as the API takes it, or null: a whole number from 1 to 1000.
function parseK(text) {
  const s = String(text).trim();
  if (!/^[0-9]+$/.test(s)) return null;
  const k = Number(s);
  return k >= 1 && k <= 1000 ? k : null;
}

// What is sent for a chosen file: its bytes as they are when the server
// reads them, else re-encoded by the browser (a GIF, an SVG...) and scaled
// down when large, or when the file is incomplete (see image.js). img is the
// file, loaded.
async function prepareImage(file, img) {
  const width = img.naturalWidth || 1024;     // an SVG without a size: drawn at 1024
  const height = img.naturalHeight || 1024;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const complete = looksComplete(file.type, bytes);
  const plan = sendPlan(file.type, file.size, width, height, complete);
  if (!plan.reencode) return { base64: bytesToBase64(bytes), width, height, sent: null };
  const canvas = document.createElement('canvas');
  canvas.width = plan.width;
  canvas.height = plan.height;
  const g = canvas.getContext('2d');
  g.fillStyle = '#fff';                       // transparent areas: white, as most pages show them
  g.fillRect(0, 0, plan.width, plan.height);
  g.drawImage(img, 0, 0, plan.width, plan.height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.92));
  if (!blob) throw new ApiError(`The browser cannot re-encode ${file.name}`);
  return {
    base64: bytesToBase64(new Uint8Array(await blob.arrayBuffer())),
    width, height, sent: { width: plan.width, height: plan.height }, incomplete: !complete,
  };
}

// Loads a file into an <img>: resolves with it, or rejects when the browser
// cannot show it.
function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = reject;
    img.src = url;
  });
}

// The first image file in a DataTransfer (drop or paste), or null.
function imageFile(data) {
  if (!data) return null;
  for (const f of data.files || []) if (f.type.startsWith('image/')) return f;
  for (const item of data.items || []) {
    if (item.kind === 'file' && item.type.startsWith('image/')) return item.getAsFile();
  }
  return data.files && data.files[0] ? data.files[0] : null;
}

function Stats({ stats }) {
  if (!stats) return null;
  const model = stats.model || {};
  const file = model.file || null;
  const about = [model.layer, model.dims && `${model.dims}-d`, model.weights && `${model.weights} weights`].filter(Boolean);
  return (
    <>
      <p className="stats">
        {stats.images} images of {stats.groups} photographs · {stats.with_features} with features
        {file && <> · model <code>{file}</code>{about.length > 0 && ` (${about.join(', ')})`}</>}
      </p>
      {String(model.weights).startsWith('random') && (
        <p className="notice" data-testid="random-notice">
          This model has random weights: it finds near-copies of an image (other crops and
          edits of the same photograph) but knows nothing of what pictures show. The README
          says how to use ImageNet weights.
        </p>
      )}
    </>
  );
}

function Preview({ src, natural, box, setBox }) {
  const ref = useRef(null);
  const drag = useRef(null);
  const [view, setView] = useState(null);

  useEffect(() => {
    const el = ref.current;
    if (!el) return undefined;
    const measure = () => setView({ width: el.clientWidth, height: el.clientHeight });
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [src]);

  const point = (e) => {
    const r = ref.current.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  };
  const onDown = (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.currentTarget.setPointerCapture?.(e.pointerId);
    drag.current = point(e);
  };
  const onMove = (e) => {
    if (!drag.current || !view) return;
    setBox(boxFromDrag(drag.current, point(e), view, natural) || null);
  };
  const onUp = (e) => {
    if (!drag.current || !view) return;
    setBox(boxFromDrag(drag.current, point(e), view, natural));
    drag.current = null;
  };
  const onKey = (e) => {
    if (e.key === 'Escape' || e.key === 'Delete' || e.key === 'Backspace') {
      setBox(null);
      e.preventDefault();
      return;
    }
    const next = boxFromKey(box, e.key, e.shiftKey, natural);
    if (next !== box) {
      setBox(next);
      e.preventDefault();
    }
  };
  const shown = box && view ? boxToView(box, view, natural) : null;

  return (
    <div
      className="preview"
      ref={ref}
      tabIndex={0}
      role="group"
      aria-label="Query image. Drag to select an area; arrow keys move the area, Shift+arrows resize it, Escape clears it."
      onPointerDown={onDown}
      onPointerMove={onMove}
      onPointerUp={onUp}
      onKeyDown={onKey}
      data-testid="preview"
    >
      <img src={src} alt="query" draggable={false} />
      {shown && <div className="box" style={shown} data-testid="box" />}
    </div>
  );
}

// more: the group's other views (grouped results), with onMore, which shows
// them (expanded: hides them again); onMark, marked: more/less like this.
function Card({ r, th, onOpen, more, expanded, onMore, onMark, marked }) {
  const label = labelFor(r.distance, th);
  return (
    <li className="card" data-group={r.grp}>
      <button type="button" className="open" onClick={() => onOpen(r)} aria-label={`Open ${r.name} larger`}>
        <img src={`data:image/jpeg;base64,${r.thumb}`} alt={r.name} loading="lazy" />
      </button>
      <div className="meta">
        <span className="rank">#{r.rank}</span>
        {label && <span className="label" data-testid="label" title={labelTitle(th)}>{label}</span>}
        <span className="dist" title="L2 distance">{r.distance.toFixed(4)}</span>
      </div>
      {onMark && <div className="meta"><MarkButtons name={r.name} sign={marked(r.id)} onMark={(sign) => onMark(r, sign)} /></div>}
      <div className="name" title={r.name}>{r.name}</div>
      {more > 0 && (
        <button type="button" className="more" onClick={onMore} aria-expanded={!!expanded} data-testid="more">
          {expanded ? `hide the ${more} other view${more > 1 ? 's' : ''}` : `+${more} more view${more > 1 ? 's' : ''} of this photograph`}
        </button>
      )}
    </li>
  );
}

// A result, larger (the whole image, from api.image), with "search with
// this image".
function Lightbox({ item, onClose, onSearch }) {
  const [full, setFull] = useState(null);
  const [error, setError] = useState(null);
  const closeRef = useRef(null);
  const dialogRef = useRef(null);
  useFocusTrap(dialogRef, onClose, closeRef);
  useEffect(() => {
    let live = true;
    rpc(API, 'image', { id: item.id })
      .then((rows) => { if (live) setFull(rows[0] || null); })
      .catch((e) => { if (live) setError(e); });
    return () => { live = false; };
  }, [item]);
  const src = full ? `data:image/jpeg;base64,${full.image}` : `data:image/jpeg;base64,${item.thumb}`;
  return (
    <div className="lightbox" role="dialog" aria-modal="true" aria-label={item.name} data-testid="lightbox" ref={dialogRef}
      tabIndex={-1} onClick={(e) => { if (e.target === e.currentTarget) onClose(); }}>
      <div className="lightbox-body">
        <img src={src} alt={item.name} data-testid="lightbox-img" data-full={full ? 'yes' : 'no'} />
        <p>{item.name} · photograph {item.grp}{full && <> · {full.width}×{full.height}</>} · distance {item.distance.toFixed(4)}</p>
        {error && <ErrorBox error={error} />}
        <div className="lightbox-actions">
          <button type="button" className="primary" disabled={!full} onClick={() => onSearch(full)} data-testid="search-this">Search with this image</button>
          <button type="button" ref={closeRef} onClick={onClose} data-testid="close">Close</button>
        </div>
      </div>
    </div>
  );
}

export default function App() {
  const [stats, setStats] = useState(null);
  const [methods, setMethods] = useState(['argsort']);
  const [method, setMethod] = useState('auto');
  const [k, setK] = useState('30');
  const [query, setQuery] = useState(null);     // {name, url, base64, natural, sent}
  const [box, setBox] = useState(null);
  const [results, setResults] = useState(null);
  const [timing, setTiming] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [dragOver, setDragOver] = useState(false);
  const [grouped, setGrouped] = useState(false);
  const [expandedGroups, setExpandedGroups] = useState(() => new Set());   // grouped: the groups shown whole
  const [opened, setOpened] = useState(null);   // the result shown larger
  const [examples, setExamples] = useState([]); // more / less like these (Examples.jsx)
  const inflight = useRef(null);                // the AbortController of the running search
  const fileSeq = useRef(0);                    // the latest file taken: older loads are dropped
  const resultsRef = useRef(null);
  const scrollPending = useRef(false);         // a search answered: show its results once drawn
  const kValue = parseK(k);
  // Dropping needs a mouse; phones and tablets choose or paste.
  const canDrop = typeof window.matchMedia === 'function' && window.matchMedia('(hover: hover) and (pointer: fine)').matches;

  useEffect(() => {
    rpc(API, 'methods').then((rows) => setMethods(rows.map((r) => r.method))).catch(setError);
    rpc(API, 'stats').then(setStats).catch(setError);
  }, []);

  // In one column (phones), the results are below the query: scroll to them
  // once they are drawn.
  useEffect(() => {
    if (!scrollPending.current || !results) return;
    scrollPending.current = false;
    if (window.matchMedia?.('(max-width: 820px)').matches) {
      resultsRef.current?.scrollIntoView({ behavior: 'smooth', block: 'start' });
    }
  }, [results, timing]);

  // Stops the running search, if any: its answer is for another query.
  const stopSearch = useCallback(() => {
    if (inflight.current) inflight.current.abort();
    inflight.current = null;
    setBusy(false);
  }, []);

  // A new query image: whatever was shown for the old one goes, once the
  // browser has shown the new one. A file that is no image, or one the
  // browser cannot show (a HEIC, a broken file), leaves the current query and
  // its results as they are, with the error.
  const takeFile = useCallback(async (file) => {
    if (!file) return undefined;
    const seq = ++fileSeq.current;
    const reject = (message) => {
      if (seq !== fileSeq.current) return;
      setError(new ApiError(message, { details: 'Choose an image the browser can show: JPEG, PNG, WebP, GIF, AVIF, BMP or SVG.' }));
    };
    if (file.type && !file.type.startsWith('image/')) return reject(`${file.name || 'That file'} is not an image`);
    const url = URL.createObjectURL(file);
    try {
      const img = await loadImage(url);
      const prepared = await prepareImage(file, img);
      if (seq !== fileSeq.current) { URL.revokeObjectURL(url); return undefined; }
      stopSearch();
      setResults(null);
      setTiming(null);
      setBox(null);
      const next = { name: file.name || 'pasted image', url, base64: prepared.base64,
        natural: { width: prepared.width, height: prepared.height }, sent: prepared.sent,
        incomplete: prepared.incomplete };
      setQuery((old) => {
        if (old) URL.revokeObjectURL(old.url);
        return next;
      });
      setError(null);
      return next;
    } catch (err) {
      URL.revokeObjectURL(url);
      reject(err instanceof ApiError ? err.message : `The browser cannot show ${file.name || 'that file'}`);
    }
    return undefined;
  }, [stopSearch]);

  // Drop anywhere on the page (where there is a mouse); paste anywhere.
  useEffect(() => {
    const over = (e) => { if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) { e.preventDefault(); setDragOver(true); } };
    const leave = (e) => { if (!e.relatedTarget) setDragOver(false); };
    const drop = (e) => { e.preventDefault(); setDragOver(false); takeFile(imageFile(e.dataTransfer)); };
    const paste = (e) => {
      const f = imageFile(e.clipboardData);
      if (f) { e.preventDefault(); takeFile(f); }
    };
    window.addEventListener('dragover', over);
    window.addEventListener('dragleave', leave);
    window.addEventListener('drop', drop);
    window.addEventListener('paste', paste);
    return () => {
      window.removeEventListener('dragover', over);
      window.removeEventListener('dragleave', leave);
      window.removeEventListener('drop', drop);
      window.removeEventListener('paste', paste);
    };
  }, [takeFile]);

  // A search: the query image (a file, a collection image by id, an upload
  // the server kept), its area, the examples; put in the URL (push) unless
  // it came from there.
  const runSearch = async ({ q = query, area = box, ex = examples, m = method, kk = kValue, push = true } = {}) => {
    const refs = exampleRefs(ex);
    if ((!q && refs.more.length === 0) || kk === null) return;
    stopSearch();
    const controller = new AbortController();
    inflight.current = controller;
    setBusy(true);
    setError(null);
    try {
      const isId = q && q.id !== undefined;
      const sbox = q && !isId ? serverBox(q, area) : null;
      const withExamples = refs.more.length + refs.less.length > 0;
      if (q && !isId && q.base64 !== undefined && withExamples && !q.sha256) {
        // an example must be kept on the server: api.search keeps it
        const kept = await rpcCall(API, 'search', { image: q.base64, k: 1, method: m }, { signal: controller.signal });
        q.sha256 = await hashOf(kept.headers, q.base64);
      }
      const sq = !q ? null : isId ? { id: q.id }
        : q.base64 !== undefined && !(withExamples && q.sha256) ? { image: q.base64 } : { upload: q.sha256 };
      const call = searchCall({ query: sq, box: sbox, method: m, k: kk, ...refs });
      if (!call) throw new ApiError('The server could not keep this image, so it cannot be an example with others.');
      const { rows, headers, ms } = await rpcCall(API, call.fn, call.args, { signal: controller.signal });
      if (inflight.current !== controller) return;
      if (call.fn === 'search') q.sha256 = await hashOf(headers, q.base64);
      const server = parseServerTiming(headers.get('Server-Timing'));
      // JSON has no Infinity: the score of a negative example itself comes as "Infinity"
      setResults(rows.map((r) => ({ ...r, distance: Number(r.distance) })));
      setExpandedGroups(new Set());
      setTiming({
        ms, model: server.model, db: server.db, queue: server.queue,
        ran: headers.get('X-Search-Method') || m, method: m, k: kk, area: !!sbox, examples: withExamples,
      });
      scrollPending.current = true;
      if (push) {
        const urlQuery = !q ? null : isId ? { id: q.id } : q.sha256 ? { upload: q.sha256 } : null;
        const search = writeUrlState({ query: urlQuery, box: sbox, method: m, k: kk, ...refs }, window.location.search);
        if (search !== window.location.search) window.history.pushState(null, '', `${window.location.pathname}${search}`);
      }
    } catch (err) {
      if (err && err.name === 'AbortError') return;   // canceled, or replaced by a newer search
      if (inflight.current !== controller) return;
      setResults(null);
      setTiming(null);
      setError(err instanceof ApiError ? err : new ApiError(String(err.message || err)));
    } finally {
      if (inflight.current === controller) {
        inflight.current = null;
        setBusy(false);
      }
    }
  };

  // The search a URL names (readUrlState), as the page loads and on back
  // and forward: its query image (a collection image's thumbnail, an
  // upload's bytes from the server), examples, method, k and box; searched
  // again, not pushed.
  const restore = async (search) => {
    const s = readUrlState(search);
    const seq = ++fileSeq.current;              // a file being loaded is dropped
    stopSearch();
    setResults(null);
    setTiming(null);
    setError(null);
    setOpened(null);
    setMethod(s.method);
    setK(String(s.k));
    const area = boxFromArray(s.box);
    setBox(area);
    const signed = [...s.more.map((ref) => ({ sign: 'more', ref })), ...s.less.map((ref) => ({ sign: 'less', ref }))];
    try {
      const ids = [s.query, ...signed.map((e) => e.ref)].filter((r) => r && r.id !== undefined).map((r) => r.id);
      const byId = new Map((ids.length ? await rpc(API, 'thumbs', { ids }) : []).map((t) => [Number(t.id), t]));
      const ex = signed.map(({ sign, ref }) => {
        const t = ref.id !== undefined ? byId.get(ref.id) : null;
        const name = t ? t.name : ref.id !== undefined ? `image ${ref.id}` : `upload ${ref.upload.slice(0, 8)}${ref.box ? ' (area)' : ''}`;
        return { sign, ref, name, thumb: t ? `data:image/jpeg;base64,${t.thumb}` : null };
      });
      let q = null;
      if (s.query && s.query.id !== undefined) {
        const t = byId.get(s.query.id);
        if (!t) throw new ApiError(`The collection has no image ${s.query.id}.`, { hint: 'The link names an image that is not (or no longer) in the collection.' });
        q = { id: s.query.id, name: t.name, url: `data:image/jpeg;base64,${t.thumb}` };
      } else if (s.query) {
        const up = await rpc(API, 'upload_image', { sha256: s.query.upload });
        const url = URL.createObjectURL(new Blob([base64ToBytes(up.image)]));
        const img = await loadImage(url);
        q = { name: `uploaded image ${up.sha256.slice(0, 8)}`, url, sha256: up.sha256, expires: up.expires,
          natural: { width: img.naturalWidth, height: img.naturalHeight }, sent: null };
      }
      if (seq !== fileSeq.current) return;
      setQuery(q);
      setExamples(ex);
      if (namesSearch(s)) runSearch({ q, area, ex, m: s.method, kk: s.k, push: false });
    } catch (err) {
      if (seq !== fileSeq.current) return;
      setQuery(null);
      setExamples([]);
      setError(err instanceof ApiError ? err : new ApiError(String(err.message || err)));
    }
  };
  const restoreRef = useRef(restore);
  restoreRef.current = restore;
  useEffect(() => {
    if (window.location.search) restoreRef.current(window.location.search);
    const onPop = () => restoreRef.current(window.location.search);
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // A collection image as the query (the gallery, "try one of these"):
  // searched by id, with its stored feature.
  const pick = (item) => {
    fileSeq.current++;
    const q = { id: item.id, name: item.name, url: item.thumb };
    setQuery(q);
    setBox(null);
    setResults(null);
    setTiming(null);
    runSearch({ q, area: null });
    window.scrollTo?.({ top: 0, behavior: 'smooth' });
  };
  const markedSign = (id) => examples.find((e) => e.ref.id === id)?.sign ?? null;
  const searchExamples = (ex, q = query) => {
    setExamples(ex);
    if (q || exampleRefs(ex).more.length) runSearch({ q, ex });
  };
  const mark = (item, sign) => {
    const ex = withExample(examples, { sign, ref: { id: item.id }, name: item.name, thumb: item.thumb });
    if (ex !== examples) searchExamples(ex);
  };
  // The query itself becomes an example (an upload by its kept hash), and
  // the next image chosen is searched with it.
  const keepQuery = (sign) => {
    const ref = query.id !== undefined ? { id: query.id }
      : query.sha256 ? { upload: query.sha256, box: serverBox(query, box) } : null;
    if (!ref) return;
    const ex = withExample(examples, { sign, ref, name: query.name, thumb: query.url });
    setQuery(null);
    setBox(null);
    searchExamples(ex, null);
  };
  const markResult = (r, sign) => mark({ id: r.id, name: r.name, thumb: `data:image/jpeg;base64,${r.thumb}` }, sign);
  const unmark = (ref) => searchExamples(withoutExample(examples, ref));
  const clearExamples = () => searchExamples([]);

  const onSubmit = (e) => { e.preventDefault(); runSearch(); };
  const closeLightbox = useCallback(() => setOpened(null), []);
  const searchWith = async (full) => {
    setOpened(null);
    const bytes = Uint8Array.from(atob(full.image), (c) => c.charCodeAt(0));
    const q = await takeFile(new File([bytes], full.name, { type: 'image/jpeg' }));
    if (q) runSearch({ q, area: null });
  };
  const th = labelsFor(stats?.model);
  const closest = results && results.length > 0 ? results[0] : null;
  const cancel = () => { stopSearch(); setError(new ApiError('Search canceled.')); };

  const split = timing ? timingSplit(timing) : '';

  return (
    <div className={`page${dragOver ? ' drag-over' : ''}`}>
      <header>
        <h1>imgsearch</h1>
        <p className="tagline">Find similar images with a query that runs inside PostgreSQL.</p>
        <Stats stats={stats} />
      </header>
      <main>
        <form className="query" onSubmit={onSubmit} aria-label="Search" noValidate>
          <div className={`drop${dragOver ? ' over' : ''}`}>
            <label className="file">
              <input type="file" accept="image/*" onChange={(e) => { takeFile(e.target.files[0]); e.target.value = ''; }} data-testid="file" />
              <span>{query ? 'Choose another image' : 'Choose an image'}</span>
            </label>
            <span className="drop-hint" data-testid="drop-hint">
              {canDrop ? 'or drop one anywhere on the page, or paste one' : 'or paste one'}
            </span>
          </div>

          {query && query.id !== undefined && (
            <>
              <div className="preview fixed" data-testid="preview-id">{query.url && <img src={query.url} alt="query" />}</div>
              <p className="area" aria-live="polite">
                {query.name} · from the collection, searched by its stored feature ·{' '}
                <button type="button" className="link" onClick={() => keepQuery('more')} data-testid="keep-query">keep as an example</button>
              </p>
            </>
          )}
          {query && query.id === undefined && (
            <>
              <Preview src={query.url} natural={query.natural} box={box} setBox={setBox} />
              <p className="area" aria-live="polite">
                {query.name} · {query.natural.width}×{query.natural.height}
                {query.sent && <> · sent as {query.sent.width}×{query.sent.height} JPEG{query.incomplete && ' (the file is incomplete: sent as the browser shows it)'}</>}
                {box ? <> · area {box.x},{box.y} {box.w}×{box.h} <button type="button" className="link" onClick={() => setBox(null)}>clear</button></>
                  : <> · drag on the image to search for a part of it</>}
                {query.expires && <> · kept on the server until {new Date(query.expires).toLocaleString()}</>}
                {query.sha256 && <> · <button type="button" className="link" onClick={() => keepQuery('more')} data-testid="keep-query">keep as an example</button></>}
              </p>
            </>
          )}

          <div className="controls">
            <label>
              Method
              <select value={method} onChange={(e) => setMethod(e.target.value)} data-testid="method">
                <option value="auto">auto (planner's choice)</option>
                {methods.map((m) => <option key={m} value={m}>{METHOD_LABELS[m] || m}</option>)}
              </select>
            </label>
            <label>
              k
              <input type="number" min="1" max="1000" step="1" value={k} onChange={(e) => setK(e.target.value)}
                aria-invalid={kValue === null} aria-describedby="k-error" data-testid="k" />
            </label>
            {busy ? (
              <button type="button" className="cancel" onClick={cancel} data-testid="cancel">Cancel</button>
            ) : null}
            <button type="submit" disabled={!(query || exampleRefs(examples).more.length) || busy || kValue === null} data-testid="search">
              {busy ? 'Searching…' : 'Search'}
            </button>
          </div>
          {kValue === null && <p className="field-error" id="k-error" data-testid="k-error">k must be a whole number from 1 to 1000.</p>}
          <ExampleChips examples={examples} onRemove={unmark} onClear={clearExamples} />
          <AddImage api={API} query={query} onSearch={() => runSearch()} />
          <ErrorBox error={error} onRetry={query ? () => runSearch() : null} />
        </form>

        <section className={`results${busy ? ' stale' : ''}`} aria-label="Results" aria-busy={busy} ref={resultsRef}>
          {timing && (
            <p className="timing" data-testid="timing">
              {results.length} results in {timing.ms} ms{split} · <span data-testid="ran">{timing.ran}</span>, k = {timing.k}{timing.area ? ', selected area' : ''}
            </p>
          )}
          {results && results.length === 0 && <p className="empty">No images have features yet.</p>}
          {!results && !error && <p className="empty">{busy ? 'Searching…' : 'Results appear here.'}</p>}
          {!results && !busy && !query && <TryThese api={API} onPick={pick} />}
          {results && results.length > 0 && (
            <div className="result-tools">
              {th && th.same_photograph != null && closest && !labelFor(closest.distance, th) && (
                <p className="no-close" data-testid="no-close">
                  {noCloseText(closest.distance, th)}
                </p>
              )}
              {!th && stats && <p className="hint">Match labels are measured for the demo's model only.</p>}
              <label className="check">
                <input type="checkbox" checked={grouped} onChange={(e) => setGrouped(e.target.checked)} data-testid="group" />
                group the views of one photograph
              </label>
            </div>
          )}
          {results && (
            <ol className="grid" data-testid="results">
              {grouped
                ? groupResults(results).flatMap((g) => {
                  const open = expandedGroups.has(g.grp);
                  const toggle = () => setExpandedGroups((old) => {
                    const next = new Set(old);
                    if (open) next.delete(g.grp); else next.add(g.grp);
                    return next;
                  });
                  return [<Card key={g.rows[0].id} r={g.rows[0]} th={th} onOpen={setOpened} more={g.rows.length - 1} expanded={open} onMore={toggle}
                    onMark={markResult} marked={markedSign} />,
                    ...(open ? g.rows.slice(1).map((r) => <Card key={r.id} r={r} th={th} onOpen={setOpened} onMark={markResult} marked={markedSign} />) : [])];
                })
                : results.map((r) => <Card key={r.id} r={r} th={th} onOpen={setOpened} onMark={markResult} marked={markedSign} />)}
            </ol>
          )}
        </section>
      </main>
      <Gallery api={API} onPick={pick} onMark={mark} marked={markedSign} />
      <Duplicates api={API} />
      {opened && <Lightbox item={opened} onClose={closeLightbox} onSearch={searchWith} />}
    </div>
  );
}
