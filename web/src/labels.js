// Match labels from distance thresholds. They were measured on the demo
// collection with the demo's model (thresholds.json says how) and mean
// nothing for another model: labelsFor() gives null then. A model is its
// layer and weights (the export names random weights by seed), not its
// file's hash: two exports of one model differ in bytes.
import measured from './thresholds.json';

export function labelsFor(model, th = measured) {
  if (!model || model.layer !== th.model.layer || model.weights !== th.model.weights) return null;
  return th;
}

// 'identical', 'near-duplicate' or null (farther than any near-duplicate).
export function labelFor(distance, th) {
  if (!th) return null;
  if (distance <= th.identical) return 'identical';
  if (distance <= th.near_duplicate) return 'near-duplicate';
  return null;
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
