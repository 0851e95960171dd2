import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, apiBase, bytesToBase64, rpc } from './api.js';
import { boxFromDrag, boxFromKey, boxToArray, boxToView } from './box.js';

const API = apiBase(window.location, import.meta.env.VITE_API_URL);

// What the method select says about the methods api.methods() offers (an
// unknown one is shown by its name alone).
const METHOD_LABELS = {
  argsort: 'argsort (scan + sort, exact)',
  faissflat: 'faissflat (flat index, exact)',
  kdtree: 'kdtree (k-d tree index, exact)',
  lsh: 'lsh (hashing index, approximate)',
};

function ErrorBox({ error }) {
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <strong>{error.message}</strong>
      {error.details && <div className="error-more">{error.details}</div>}
      {error.hint && <div className="error-more">Hint: {error.hint}</div>}
      {error.code && <div className="error-code">{error.status ? `HTTP ${error.status} · ` : ''}{error.code}</div>}
    </div>
  );
}

function Stats({ stats }) {
  if (!stats) return null;
  const model = stats.model || {};
  const file = model.path ? String(model.path).split('/').pop() : null;
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

export default function App() {
  const [stats, setStats] = useState(null);
  const [methods, setMethods] = useState(['argsort']);
  const [method, setMethod] = useState('auto');
  const [k, setK] = useState(30);
  const [query, setQuery] = useState(null);     // {name, url, base64, natural}
  const [box, setBox] = useState(null);
  const [results, setResults] = useState(null);
  const [timing, setTiming] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [dragOver, setDragOver] = useState(false);

  useEffect(() => {
    rpc(API, 'methods').then((rows) => setMethods(rows.map((r) => r.method))).catch(setError);
    rpc(API, 'stats').then(setStats).catch(setError);
  }, []);

  const takeFile = useCallback(async (file) => {
    if (!file) return;
    if (file.type && !file.type.startsWith('image/')) {
      setError(new ApiError(`${file.name} is not an image`));
      return;
    }
    const bytes = new Uint8Array(await file.arrayBuffer());
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      setQuery((old) => {
        if (old) URL.revokeObjectURL(old.url);
        return { name: file.name, url, base64: bytesToBase64(bytes), natural: { width: img.naturalWidth, height: img.naturalHeight } };
      });
      setBox(null);
      setError(null);
    };
    img.onerror = () => setError(new ApiError(`The browser cannot decode ${file.name}`));
    img.src = url;
  }, []);

  const search = async (e) => {
    e.preventDefault();
    if (!query || busy) return;
    setBusy(true);
    setError(null);
    const t0 = performance.now();
    try {
      const args = { image: query.base64, k: Number(k), method };
      if (box) args.box = boxToArray(box);
      const rows = await rpc(API, 'search', args);
      setResults(rows);
      setTiming({ ms: Math.round(performance.now() - t0), method, k: Number(k), area: !!box });
    } catch (err) {
      setResults(null);
      setTiming(null);
      setError(err instanceof ApiError ? err : new ApiError(String(err.message || err)));
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="page">
      <header>
        <h1>imgsearch</h1>
        <p className="tagline">Find similar images with a query that runs inside PostgreSQL.</p>
        <Stats stats={stats} />
      </header>
      <main>
        <form className="query" onSubmit={search} aria-label="Search" noValidate>
          <div
            className={`drop${dragOver ? ' over' : ''}`}
            onDragOver={(e) => { e.preventDefault(); setDragOver(true); }}
            onDragLeave={() => setDragOver(false)}
            onDrop={(e) => { e.preventDefault(); setDragOver(false); takeFile(e.dataTransfer.files[0]); }}
          >
            <label className="file">
              <input type="file" accept="image/*" onChange={(e) => takeFile(e.target.files[0])} data-testid="file" />
              <span>{query ? 'Choose another image' : 'Choose an image'}</span>
            </label>
            <span className="drop-hint">or drop one here</span>
          </div>

          {query && (
            <>
              <Preview src={query.url} natural={query.natural} box={box} setBox={setBox} />
              <p className="area" aria-live="polite">
                {query.name} · {query.natural.width}×{query.natural.height}
                {box ? <> · area {box.x},{box.y} {box.w}×{box.h} <button type="button" className="link" onClick={() => setBox(null)}>clear</button></>
                  : <> · drag on the image to search for a part of it</>}
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
              <input type="number" min="1" max="1000" value={k} onChange={(e) => setK(e.target.value)} data-testid="k" />
            </label>
            <button type="submit" disabled={!query || busy} data-testid="search">
              {busy ? 'Searching…' : 'Search'}
            </button>
          </div>
          <ErrorBox error={error} />
        </form>

        <section className="results" aria-label="Results" aria-busy={busy}>
          {timing && (
            <p className="timing" data-testid="timing">
              {results.length} results in {timing.ms} ms · {timing.method}, k = {timing.k}{timing.area ? ', selected area' : ''}
            </p>
          )}
          {results && results.length === 0 && <p className="empty">No images have features yet.</p>}
          {!results && !error && <p className="empty">Results appear here.</p>}
          {results && (
            <ol className="grid" data-testid="results">
              {results.map((r) => (
                <li key={r.id} className="card" data-group={r.grp}>
                  <img src={`data:image/jpeg;base64,${r.thumb}`} alt={r.name} loading="lazy" />
                  <div className="meta">
                    <span className="rank">#{r.rank}</span>
                    <span className="dist" title="L2 distance">{r.distance.toFixed(4)}</span>
                  </div>
                  <div className="name" title={r.name}>{r.name}</div>
                </li>
              ))}
            </ol>
          )}
        </section>
      </main>
    </div>
  );
}
