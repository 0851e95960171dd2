// The collection's duplicate groups (api.duplicates: imgsearch_duplicates
// over the kdtree index): images joined when a chain of images, each within
// the distance of the next, leads from one to the other. A slider (and a
// number field) sets the distance; each answer is kept per distance, so
// moving back to a distance costs nothing. A group shows its first
// thumbnails and expands to all its images (api.thumbs).
import { useEffect, useRef, useState } from 'react';
import { ApiError, rpc, rpcCall } from './api.js';

const PAGE = 50;          // groups per request
const MAX = 0.2;          // the slider's end; the API takes up to 0.5
const STEP = 0.001;
const DEBOUNCE_MS = 250;  // a dragged slider asks once it rests

// Rows of api.duplicates (one per member) as groups: [{no, size, members}].
export function groupRows(rows) {
  const groups = [];
  for (const r of rows) {
    const last = groups[groups.length - 1];
    if (last && last.no === r.group_no) last.members.push(r);
    else groups.push({ no: r.group_no, size: r.group_size, members: [r] });
  }
  return groups;
}

// The distance typed or slid, or null: a number from 0 to MAX.
export function parseDistance(text) {
  const s = String(text).trim();
  if (!/^(0|0?\.[0-9]+|[0-9]+(\.[0-9]*)?)$/.test(s)) return null;
  const d = Number(s);
  return d >= 0 && d <= MAX ? d : null;
}

function Group({ api, g }) {
  const [open, setOpen] = useState(false);
  const [thumbs, setThumbs] = useState({});     // id -> thumbnail, for members sent without one
  const [error, setError] = useState(null);
  const missing = g.members.filter((m) => !m.thumb && !thumbs[m.id]).map((m) => m.id);
  const expand = async () => {
    setOpen(!open);
    if (open || missing.length === 0) return;
    try {
      const got = {};
      for (let i = 0; i < missing.length; i += 100) {
        for (const r of await rpc(api, 'thumbs', { ids: missing.slice(i, i + 100) })) got[r.id] = r.thumb;
      }
      setThumbs((t) => ({ ...t, ...got }));
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(String(e.message || e)));
    }
  };
  const photographs = [...new Set(g.members.map((m) => m.grp))];
  const shown = open ? g.members : g.members.filter((m) => m.thumb).slice(0, 6);
  const hidden = g.size - shown.length;
  return (
    <li className="dup-group" data-testid="dup-group" data-ids={g.members.map((m) => m.id).join(',')}>
      <p className="dup-head">
        <strong>{g.size} images</strong>
        {' · '}
        {photographs.length === 1 ? <>photograph {photographs[0]}</> : <>of {photographs.length} photographs: {photographs.slice(0, 4).join(', ')}{photographs.length > 4 ? ', …' : ''}</>}
      </p>
      <ul className="dup-members">
        {shown.map((m) => (
          <li key={m.id} data-testid="dup-member" data-id={m.id}>
            {(m.thumb || thumbs[m.id])
              ? <img src={`data:image/jpeg;base64,${m.thumb || thumbs[m.id]}`} alt={m.name} title={m.name} loading="lazy" />
              : <span className="dup-placeholder" title={m.name}>{m.name}</span>}
          </li>
        ))}
      </ul>
      {(hidden > 0 || open) && g.size > 6 && (
        <button type="button" className="more" onClick={expand} aria-expanded={open} data-testid="dup-expand">
          {open ? 'show fewer' : `+${hidden} more`}
        </button>
      )}
      {error && <p className="field-error" role="alert">{error.message}</p>}
    </li>
  );
}

export default function Duplicates({ api, initial = 0.03 }) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState(String(initial));
  const distance = parseDistance(text);
  const [answer, setAnswer] = useState(null);   // {distance, groups, total, images, ms}
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const cache = useRef(new Map());              // distance -> answer (first page and those loaded since)
  const inflight = useRef(null);

  const load = async (d, off) => {
    if (inflight.current) inflight.current.abort();
    const controller = new AbortController();
    inflight.current = controller;
    setBusy(true);
    setError(null);
    try {
      const { rows, ms } = await rpcCall(api, 'duplicates', { max_distance: d, lim: PAGE, off }, { signal: controller.signal });
      if (inflight.current !== controller) return;
      const prev = off > 0 ? cache.current.get(d) : null;
      const next = {
        distance: d,
        groups: [...(prev ? prev.groups : []), ...groupRows(rows)],
        total: rows.length ? rows[0].groups : (prev ? prev.total : 0),
        images: rows.length ? rows[0].images : (prev ? prev.images : 0),
        ms,
      };
      cache.current.set(d, next);
      setAnswer(next);
    } catch (e) {
      if (e && e.name === 'AbortError') return;
      if (inflight.current !== controller) return;
      setAnswer(null);
      setError(e instanceof ApiError ? e : new ApiError(String(e.message || e)));
    } finally {
      if (inflight.current === controller) {
        inflight.current = null;
        setBusy(false);
      }
    }
  };

  useEffect(() => {
    if (!open || distance === null) return undefined;
    const hit = cache.current.get(distance);
    if (hit) {
      if (inflight.current) inflight.current.abort();
      inflight.current = null;
      setBusy(false);
      setError(null);
      setAnswer(hit);
      return undefined;
    }
    const timer = setTimeout(() => load(distance, 0), DEBOUNCE_MS);
    return () => clearTimeout(timer);
  }, [open, distance]);   // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <section className="duplicates" aria-label="Duplicate groups">
      <button type="button" className="secondary" onClick={() => setOpen(!open)} aria-expanded={open} data-testid="dup-toggle">
        {open ? 'Hide the duplicate groups' : 'Duplicate groups in the collection'}
      </button>
      {open && (
        <>
          <div className="dup-controls">
            <label>
              Largest distance between images of a group
              <input type="range" min="0" max={MAX} step={STEP} value={distance ?? 0}
                onChange={(e) => setText(e.target.value)} data-testid="dup-slider" />
            </label>
            <input type="number" min="0" max={MAX} step={STEP} value={text} aria-label="distance"
              aria-invalid={distance === null} onChange={(e) => setText(e.target.value)} data-testid="dup-distance" />
          </div>
          {distance === null && <p className="field-error" data-testid="dup-distance-error">The distance must be a number from 0 to {MAX}.</p>}
          {error && (
            <div className="error" role="alert" data-testid="dup-error">
              <strong>{error.message}</strong>
              {error.hint && <div className="error-more">Hint: {error.hint}</div>}
              {error.code && <div className="error-code">{error.status ? `HTTP ${error.status} · ` : ''}{error.code}</div>}
            </div>
          )}
          {answer && (
            <div className={busy ? 'stale' : ''}>
              <p className="dup-summary" data-testid="dup-summary" data-distance={answer.distance}>
                {answer.total === 0
                  ? `No two images within ${answer.distance} of each other.`
                  : `${answer.total} group${answer.total > 1 ? 's' : ''} holding ${answer.images} images within ${answer.distance}`}
                {' '}({answer.ms} ms)
              </p>
              <ol className="dup-list">
                {answer.groups.map((g) => <Group key={`${answer.distance}-${g.no}`} api={api} g={g} />)}
              </ol>
              {answer.groups.length < answer.total && (
                <button type="button" className="secondary" disabled={busy} onClick={() => load(answer.distance, answer.groups.length)}
                  data-testid="dup-next">
                  Show more groups ({answer.total - answer.groups.length} left)
                </button>
              )}
            </div>
          )}
          {busy && !answer && <p className="empty">Finding the groups…</p>}
        </>
      )}
    </section>
  );
}
