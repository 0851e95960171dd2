// "Add to the collection": the query image (as the page sends it: the file,
// or its re-encoding) through api.add_image, then its state from
// api.image_status until the ingest worker has made its feature, then
// "Search with it". Offered only where api.can_write() says the caller may
// add images (web_anon may not unless the server grants it: docs/web.md).
import { useEffect, useRef, useState } from 'react';
import { ApiError, rpc } from './api.js';

const POLL_MS = 500;

// The states an added image goes through, as the page says them.
const SAYS = {
  adding: 'Adding…',
  pending: 'Added; waiting for the database to compute its features',
  done: 'Added and searchable',
  failed: 'Added, but the database could not compute its features',
  missing: 'The image is no longer in the collection',
};

export default function AddImage({ api, query, onSearch }) {
  const [canWrite, setCanWrite] = useState(false);
  const [name, setName] = useState('');
  const [added, setAdded] = useState(null);     // {id, state, error, since}
  const [error, setError] = useState(null);
  const [now, setNow] = useState(Date.now());
  const queryUrl = query?.url;
  const live = useRef(true);

  useEffect(() => {
    live.current = true;
    rpc(api, 'can_write').then((yes) => { if (live.current) setCanWrite(yes === true); })
      .catch(() => { if (live.current) setCanWrite(false); });   // an API without it: read-only
    return () => { live.current = false; };
  }, [api]);

  // A new query image: a new form.
  useEffect(() => {
    setName(query?.name && query.name !== 'pasted image' ? query.name : '');
    setAdded(null);
    setError(null);
  }, [queryUrl]);   // eslint-disable-line react-hooks/exhaustive-deps

  // Polls the added image's state while it is pending.
  const pendingId = added && (added.state === 'pending') ? added.id : null;
  useEffect(() => {
    if (pendingId === null) return undefined;
    let stop = false;
    let timer = null;
    const poll = async () => {
      try {
        const s = await rpc(api, 'image_status', { id: pendingId });
        if (stop) return;
        setNow(Date.now());
        if (s.state === 'pending') {
          timer = setTimeout(poll, POLL_MS);
        } else {
          setAdded((a) => (a && a.id === pendingId ? { ...a, state: s.state, error: s.error } : a));
        }
      } catch (e) {
        if (!stop) setError(e instanceof ApiError ? e : new ApiError(String(e.message || e)));
      }
    };
    timer = setTimeout(poll, POLL_MS);
    return () => { stop = true; clearTimeout(timer); };
  }, [api, pendingId]);

  if (!canWrite || !query) return null;

  const add = async () => {
    setError(null);
    setAdded({ id: null, state: 'adding', since: Date.now() });
    try {
      const args = { image: query.base64 };
      if (name.trim()) args.name = name.trim();
      const id = await rpc(api, 'add_image', args);
      if (!live.current) return;
      setNow(Date.now());
      setAdded({ id, state: 'pending', since: Date.now() });
    } catch (e) {
      if (!live.current) return;
      setAdded(null);
      setError(e instanceof ApiError ? e : new ApiError(String(e.message || e)));
    }
  };

  const busy = added && (added.state === 'adding' || added.state === 'pending');
  const waited = added && added.since ? Math.round((now - added.since) / 1000) : 0;
  return (
    <div className="add-image" data-testid="add-image">
      {!added || added.state === 'adding' ? (
        <div className="add-row">
          <label>
            Name in the collection
            <input type="text" value={name} maxLength={200} placeholder="upload-ID"
              onChange={(e) => setName(e.target.value)} data-testid="add-name" />
          </label>
          <button type="button" className="secondary" onClick={add} disabled={!!busy} data-testid="add">
            Add to the collection
          </button>
        </div>
      ) : null}
      {added && (
        <p className={`add-status ${added.state}`} role="status" aria-live="polite" data-testid="add-status" data-state={added.state}
          data-id={added.id ?? ''}>
          {SAYS[added.state]}
          {added.id !== null && <> (id {added.id})</>}
          {added.state === 'pending' && waited > 0 && <> · {waited} s</>}
          {added.state === 'failed' && added.error && <>: {added.error.message} ({added.error.sqlstate})</>}
        </p>
      )}
      {added && added.state === 'done' && (
        <button type="button" className="secondary" onClick={onSearch} data-testid="search-added">Search with it</button>
      )}
      {error && (
        <div className="error" role="alert" data-testid="add-error">
          <strong>{error.message}</strong>
          {error.hint && <div className="error-more">Hint: {error.hint}</div>}
          {error.code && <div className="error-code">{error.status ? `HTTP ${error.status} · ` : ''}{error.code}</div>}
        </div>
      )}
    </div>
  );
}
