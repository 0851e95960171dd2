// A way in without an image of one's own: the collection, a page at a time
// (api.gallery), thumbnails fetched as the cards come into view
// (api.thumbs), and a few images to try on the empty page (api.try_these).
// A click searches with the image by id (its stored feature: api.similar).
import { useEffect, useRef, useState } from 'react';
import { rpc } from './api.js';
import { MarkButtons } from './Examples.jsx';

const jpeg = (b64) => `data:image/jpeg;base64,${b64}`;

// Thumbnails of the ids that come into view, fetched in batches: calls
// setThumb(id, url) for each.
function useLazyThumbs(api, rootRef, deps) {
  const [thumbs, setThumbs] = useState({});
  useEffect(() => {
    const root = rootRef.current;
    if (!root) return undefined;
    let live = true;
    let pending = new Set();
    let timer = null;
    const flush = () => {
      timer = null;
      const ids = [...pending];
      pending = new Set();
      if (ids.length === 0) return;
      rpc(api, 'thumbs', { ids })
        .then((rows) => { if (live) setThumbs((t) => ({ ...t, ...Object.fromEntries(rows.map((r) => [r.id, jpeg(r.thumb)])) })); })
        .catch(() => { /* the card keeps its placeholder */ });
    };
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        pending.add(Number(e.target.dataset.id));
        io.unobserve(e.target);
      }
      if (pending.size && !timer) timer = setTimeout(flush, 30);
    }, { rootMargin: '200px' });
    root.querySelectorAll('[data-lazy]').forEach((el) => io.observe(el));
    return () => { live = false; io.disconnect(); if (timer) clearTimeout(timer); };
  // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return thumbs;
}

export function Gallery({ api, onPick, onMark, marked, pageSize = 20 }) {
  const [page, setPage] = useState(1);
  const [loaded, setLoaded] = useState({ page: 0, rows: null });   // the page shown, once its rows came
  const [error, setError] = useState(null);
  const ref = useRef(null);
  const rows = loaded.rows;
  useEffect(() => {
    let live = true;
    rpc(api, 'gallery', { page, page_size: pageSize })
      .then((r) => { if (live) { setLoaded({ page, rows: r }); setError(null); } })
      .catch((e) => { if (live) setError(e); });
    return () => { live = false; };
  }, [api, page, pageSize]);
  const thumbs = useLazyThumbs(api, ref, [api, rows]);
  const total = rows && rows.length ? Number(rows[0].total) : 0;
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const item = (r) => ({ id: r.id, name: r.name, grp: r.grp, thumb: thumbs[r.id] || null });
  return (
    <section className="gallery" aria-label="The collection" data-testid="gallery" ref={ref}>
      <div className="gallery-head">
        <h2>The collection</h2>
        {rows && (
          <nav className="pager" aria-label="Gallery pages">
            <button type="button" disabled={page <= 1} onClick={() => setPage(page - 1)} data-testid="gallery-prev">Previous</button>
            <span data-testid="gallery-page">Page {loaded.page} of {pages} · {total} images</span>
            <button type="button" disabled={page >= pages} onClick={() => setPage(page + 1)} data-testid="gallery-next">Next</button>
          </nav>
        )}
      </div>
      {error && <p className="error" role="alert">{error.message}</p>}
      <ol className="grid">
        {(rows || []).map((r) => (
          <li key={r.id} className="card" data-lazy data-id={r.id} data-testid="gallery-card">
            <button type="button" className="open" disabled={!r.searchable} onClick={() => onPick(item(r))}
              aria-label={`Search with ${r.name}`} title={r.searchable ? 'Search with this image' : 'Not searchable yet'}>
              {thumbs[r.id] ? <img src={thumbs[r.id]} alt={r.name} data-testid="gallery-thumb" />
                : <span className="placeholder" style={{ aspectRatio: '4 / 3' }} />}
            </button>
            <div className="meta">
              <span className="name" title={r.name}>{r.name}</span>
              {r.searchable && <MarkButtons name={r.name} sign={marked(r.id)} onMark={(sign) => onMark(item(r), sign)} />}
            </div>
          </li>
        ))}
      </ol>
    </section>
  );
}

export function TryThese({ api, onPick, n = 6 }) {
  const [rows, setRows] = useState(null);
  useEffect(() => {
    let live = true;
    rpc(api, 'try_these', { n }).then((r) => { if (live) setRows(r); }).catch(() => {});
    return () => { live = false; };
  }, [api, n]);
  if (!rows || rows.length === 0) return null;
  return (
    <div className="try" data-testid="try-these">
      <p>No image at hand? Try one of these:</p>
      <ul>
        {rows.map((r) => (
          <li key={r.id}>
            <button type="button" onClick={() => onPick({ id: r.id, name: r.name, grp: r.grp, thumb: jpeg(r.thumb) })}
              aria-label={`Search with ${r.name}`} data-testid="try-one">
              <img src={jpeg(r.thumb)} alt={r.name} />
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
