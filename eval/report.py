"""The evaluation's outputs: a table beside the paper's Table I, JSON, a figure."""
import json
import os

# The paper's Table I (Paris6k, VGG16 features, top 30): mAP and seconds per query.
PAPER_TABLE_I = {
    'argsort': ('argsort', 0.904, 1.088),
    'kdtree': ('k-d tree', 0.904, 0.123),
    'lsh': ('LSH', 0.689, 0.143),
    'faissflat': ('IndexFlatL2', 0.903, 0.073),
}


def _f(v, fmt):
    return '-' if v is None else fmt % v


def table(run):
    k = run['k']
    head = ('%-30s %8s %6s %9s %17s %17s %8s %8s   %-12s %6s %7s' %
            ('method', 'mAP@%d' % k, 'mAP', 'recall@%d' % k, 'db ms p50 / p95', 'e2e ms p50 / p95',
             'build s', 'index MB', 'paper', 'mAP', 'time s'))
    lines = [
        'imgsearch eval: %s (%s layout), %d images, %d queries, k = %d' %
        (run['collection'], run['layout'], run['images'], run['queries'], k),
        'model %s (%s, %s weights, %d dims); %s' %
        (run['model']['path'], run['model']['layer'], run['model']['weights'], run['model']['dims'], run['server']),
        '', head, '-' * len(head)]
    shown = set()
    for r in run['results']:
        paper = PAPER_TABLE_I.get(r['method'])
        paper_cols = ''
        if paper and r['method'] not in shown:
            shown.add(r['method'])
            paper_cols = '   %-12s %6.3f %7.3f' % paper
        lines.append('%-30s %8.3f %6s %9.3f %8.2f / %6.2f %8.1f / %6.1f %8s %8s%s' % (
            r['label'], r['map_at_k'], _f(r['map'], '%.3f'), r['recall_at_k'],
            r['db_ms_median'], r['db_ms_p95'], r['e2e_ms_median'], r['e2e_ms_p95'],
            _f(r.get('build_s'), '%.2f'), _f(r.get('index_mb'), '%.1f'), paper_cols))
    lines += ['',
              'mAP@%d: mean over queries of the precision at each rank <= %d holding a relevant image (the paper\'s '
              'top-30 score);' % (k, k),
              'mAP: the Oxford/Paris protocol over the whole ranking (junk and the query image ignored); '
              'recall@%d: against argsort.' % k,
              'db ms: the search with the query\'s feature stored; e2e ms: with its extraction in the same statement. '
              'The paper\'s times are seconds per query on its machine.']
    return '\n'.join(lines)


def write_json(run, path):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f:
        json.dump(run, f, indent=1, sort_keys=True)
        f.write('\n')


def _time_axis(ax, values, label):
    """An x axis of times whose tick labels stay readable: log only when the
    times span a wide range (max/min >= 10), where a linear axis would crowd
    the fast methods into one corner; linear otherwise (a log axis over, say,
    153-156 ms labels its minor ticks, and they overlap into a smear). At
    most about 6 labelled ticks either way, in plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    values = [v for v in values if v is not None and v > 0]
    lo, hi = (min(values), max(values)) if values else (1.0, 1.0)
    if hi / lo >= 10:
        ax.set_xscale('log')
        # 1-2-5 ticks over up to two decades or so, decades beyond that
        subs = (1.0, 2.0, 5.0) if hi / lo <= 300 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs, numticks=7))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: '%g' % v))
        ax.xaxis.set_minor_formatter(NullFormatter())
        label += ' (log)'
    else:
        ax.set_xscale('linear')
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    ax.set_xlabel(label)


def plot(run, path):
    """Recall vs latency and mAP vs time: one point per method and budget."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    colours = {'argsort': 'tab:gray', 'faissflat': 'tab:blue', 'kdtree': 'tab:green', 'lsh': 'tab:red'}
    markers = 'osD^v<>p'
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    seen = {}
    for r in run['results']:
        # one colour per method, one marker per budget of it; the legend names them
        n = seen[r['method']] = seen.get(r['method'], -1) + 1
        style = dict(color=colours.get(r['method'], 'black'), marker=markers[n % len(markers)], s=45, alpha=0.8)
        left.scatter(r['db_ms_median'], r['recall_at_k'], label=r['label'], **style)
        right.scatter(r['e2e_ms_median'], r['map_at_k'], **style)
    k = run['k']
    left.set(ylabel='recall@%d against argsort' % k, title='recall vs latency')
    _time_axis(left, [r['db_ms_median'] for r in run['results']], 'median database ms per query')
    right.set(ylabel='mAP@%d' % k, title='mAP vs time')
    _time_axis(right, [r['e2e_ms_median'] for r in run['results']],
               'median end-to-end ms per query, with feature extraction')
    for ax in (left, right):
        ax.grid(True, which='both', alpha=0.3)
        # down to 0.9 at least, and a little below the lowest point, so that its marker is not cut in half
        low = min(ax.get_ylim()[0], 0.9)
        ax.set_ylim(low - 0.03 * (1.02 - low), 1.02)
    fig.legend(loc='center right', fontsize=8)
    fig.subplots_adjust(right=0.8)
    fig.suptitle('imgsearch eval: %s, %d images, %d queries (%s)' %
                 (run['collection'], run['images'], run['queries'], run['date']))
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
