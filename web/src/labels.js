// Match labels from distances. One range was measured on the demo
// collection with the demo's model (thresholds.json says how, and the
// README gives its figures): "same photograph", up to the distance within
// which most pairs of views of one photograph lie, with the share of the
// pairs that close that are such views (its precision). Beyond it the
// distances of views of one photograph and of different photographs mix:
// no label. The range means nothing for another model: labelsFor() gives
// null then. A model is its layer and weights (the export names random
// weights by seed), not its file's hash: two exports of one model differ
// in bytes.
import measured from './thresholds.json';

export const SAME = 'same photograph';

export function labelsFor(model, th = measured) {
  if (!model || model.layer !== th.model.layer || model.weights !== th.model.weights) return null;
  return th;
}

const pct = (x) => `${Math.round(x * 100)}%`;

// 'same photograph' or null (farther, or no range measured).
export function labelFor(distance, th) {
  if (!th || th.same_photograph == null) return null;
  return distance <= th.same_photograph ? SAME : null;
}

// What the label means, measured (the label's tooltip).
export function labelTitle(th) {
  if (!th || th.same_photograph == null) return '';
  return `Distance up to ${th.same_photograph}: in the demo collection, ${pct(th.precision)} of the pairs of images `
    + `this close are views of one photograph, and ${pct(th.recall)} of the pairs of views of one photograph are this close.`;
}

// The banner when the nearest result has no label: what the range is and
// that a farther image may still be a view of the photograph.
export function noCloseText(distance, th) {
  return `No image within ${th.same_photograph}, the "same photograph" range: the nearest is at distance `
    + `${distance.toFixed(3)}. In the demo collection ${pct(th.recall)} of the pairs of views of one photograph `
    + 'lie within that range, so a farther image may still be a view of the same photograph.';
}

// Results in groups of one photograph (grp), in the order of each group's
// best rank: [{grp, rows}].
export function groupResults(rows) {
  const groups = new Map();
  for (const r of rows) {
    if (!groups.has(r.grp)) groups.set(r.grp, { grp: r.grp, rows: [] });
    groups.get(r.grp).rows.push(r);
  }
  return [...groups.values()];
}
