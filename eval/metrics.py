"""Retrieval scores: average precision two ways, and recall against an exact answer.

A ranking is a list of image ids, best first. `relevant` and `junk` are sets
of ids; junk images are removed from the ranking before scoring (neither
right nor wrong), as the Oxford/Paris protocol does. The query image itself,
when it belongs to the collection, goes in `junk` too: the caller decides.
"""


def _scored(ranking, junk):
    return [i for i in ranking if i not in junk]


def average_precision(ranking, relevant, junk=frozenset()):
    """AP by the Oxford/Paris protocol (their compute_ap.cpp): the area under
    the precision-recall curve by trapezoids, over the whole ranking.
    Relevant images the ranking never reaches count as not retrieved."""
    if not relevant:
        raise ValueError('a query needs at least one relevant image')
    ap = 0.0
    old_recall, old_precision = 0.0, 1.0
    hits = 0
    for rank, image in enumerate(_scored(ranking, junk), 1):
        if image in relevant:
            hits += 1
        recall = hits / len(relevant)
        precision = hits / rank
        ap += (recall - old_recall) * (old_precision + precision) / 2
        old_recall, old_precision = recall, precision
    return ap


def average_precision_at(ranking, relevant, k, junk=frozenset()):
    """AP@k as the paper reports it (its Table I, top 30): the mean of the
    precision at each rank <= k that holds a relevant image; 0 with none.
    It ignores relevant images below k, so it can exceed full AP."""
    hits, total = 0, 0.0
    for rank, image in enumerate(_scored(ranking, junk)[:k], 1):
        if image in relevant:
            hits += 1
            total += hits / rank
    return total / hits if hits else 0.0


def recall_at(found, exact, k):
    """recall@k of `found` against the exact answer, both lists of
    (id, distance) best first. Ties are fair: a found row counts when its
    distance is within the exact k-th distance, so a different choice among
    rows tied at the k-th place is no loss. Found rows must be distinct."""
    exact = exact[:k]
    if not exact:
        return 1.0
    kth = exact[-1][1]
    good = sum(1 for _, d in found[:k] if d <= kth)
    return min(good, len(exact)) / len(exact)


def by_distance(rows):
    """Ids of (id, distance) rows, nearest first, ties by id: one order for
    rows at equal distance, whichever order a method returned them in."""
    return [i for i, _ in sorted(rows, key=lambda r: (r[1], r[0]))]


def mean(values):
    values = list(values)
    return sum(values) / len(values) if values else float('nan')


def percentile(values, p):
    """The p-th percentile (0-100) with linear interpolation, as numpy's default."""
    v = sorted(values)
    if not v:
        return float('nan')
    x = (len(v) - 1) * p / 100
    lo = int(x)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (x - lo)
