// Several examples: "more like this" / "less like this" marks on results,
// gallery images and the query, and the chips that show them (each one
// removable). An example: {sign: 'more' | 'less', ref: {id} | {upload,
// box}, name, thumb: an image URL or null}.
import { refToken, sameRef } from './urlState.js';

// Adds an example, or changes its sign; the list as it is when it is there.
export function withExample(list, ex) {
  const at = list.findIndex((e) => sameRef(e.ref, ex.ref));
  if (at < 0) return [...list, ex];
  if (list[at].sign === ex.sign) return list;
  return list.map((e, i) => (i === at ? { ...e, sign: ex.sign } : e));
}

export const withoutExample = (list, ref) => list.filter((e) => !sameRef(e.ref, ref));

// The refs of each sign, for urlState's state and searchCall.
export function exampleRefs(list) {
  return {
    more: list.filter((e) => e.sign === 'more').map((e) => e.ref),
    less: list.filter((e) => e.sign === 'less').map((e) => e.ref),
  };
}

export function MarkButtons({ name, onMark, sign = null }) {
  return (
    <span className="marks">
      <button type="button" className={`mark more${sign === 'more' ? ' on' : ''}`} onClick={() => onMark('more')}
        aria-label={`More like ${name}`} title="More like this" aria-pressed={sign === 'more'} data-testid="more-like">+</button>
      <button type="button" className={`mark less${sign === 'less' ? ' on' : ''}`} onClick={() => onMark('less')}
        aria-label={`Less like ${name}`} title="Less like this" aria-pressed={sign === 'less'} data-testid="less-like">−</button>
    </span>
  );
}

export function ExampleChips({ examples, onRemove, onClear }) {
  if (examples.length === 0) return null;
  return (
    <div className="chips" aria-label="Examples" data-testid="chips">
      <span className="chips-title">Searching with:</span>
      <ul>
        {examples.map((e) => (
          <li key={refToken(e.ref)} className={`chip ${e.sign}`} data-testid="chip" data-sign={e.sign} data-ref={refToken(e.ref)}>
            <span className="chip-sign" aria-hidden="true">{e.sign === 'more' ? '+' : '−'}</span>
            {e.thumb && <img src={e.thumb} alt="" />}
            <span className="chip-name" title={e.name}>{e.sign === 'more' ? 'like' : 'unlike'} {e.name}</span>
            <button type="button" className="chip-remove" onClick={() => onRemove(e.ref)}
              aria-label={`Remove ${e.name}`} data-testid="chip-remove">×</button>
          </li>
        ))}
      </ul>
      <button type="button" className="link" onClick={onClear} data-testid="chips-clear">clear all</button>
    </div>
  );
}
