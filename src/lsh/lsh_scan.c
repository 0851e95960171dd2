/*
 * lsh_scan.c — ambeginscan, amrescan, amgettuple, amendscan.
 *
 * A scan works in at most two rounds. The first, the budget's, probes the
 * lsh.probes buckets whose centroids are nearest the query, estimates the
 * key of every entry there from its sketch (lsh_core.h), keeps the
 * lsh.candidates best estimates, computes their exact keys from the vector
 * store and returns the nearest quarter of them in exact (key, slot)
 * order, with the operator's own distance (xs_recheckorderby stays false);
 * fewer than 16 candidates, it returns none. A consumer that wants more
 * starts the second round, which is exact (every bucket, every entry) and
 * returns every row after the last one returned: rows never go backwards,
 * so the only rows a scan never returns are rows the budget's round missed
 * below its last row. The quarter keeps that region to the rows the round
 * is surest of (its far rows are the likeliest to have nearer rows it
 * missed), and a LIMIT below a quarter of lsh.candidates never needs the
 * second round. Widening rounds (four times the budget each) were cheaper
 * for a LIMIT past the first round but lost rows below each round's last
 * row: under a selective filter, which reads far, up to a tenth of the
 * qualifying rows (issue queries).
 * Rows at the last row's very distance are returned (ties: duplicates),
 * unless already returned.
 * A round that probes every bucket and keeps every entry is exact, and the
 * scan ends after it. With lsh.probes = 0 and lsh.candidates = 0 (every
 * bucket, every entry) the first round is that one: ids and distances of a
 * sequential scan.
 *
 * The error bound. With lsh.error_bound (eps0) above 0, the budget's round
 * ranks the probed entries by a lower bound of their key instead (the
 * estimate minus eps0 times the sketch's error bound: lsh_core.h), keeps
 * the lsh.candidates least bounds and re-ranks them lazily, least bound
 * first, a few at a time, as the consumer asks for rows. A row re-ranked
 * is returned once its exact key is at most the least bound of the entries
 * not re-ranked yet: no probed entry is then likely to be nearer. So the
 * work follows the query and the LIMIT: a LIMIT 30 re-ranks about the
 * entries whose bound lies below the 30th row, not a fixed count. Rows
 * still come in exact (key, slot) order: a row re-ranked after a farther
 * one was returned (its bound failed) is dropped, as a first round's miss
 * is (counted: "rows below a returned row" in the DEBUG1 line). When the
 * lsh.candidates re-ranks are spent and the least bound left (of the
 * entries dropped) is below the nearest row pending, the round returns its
 * rows as the fixed count does: in order, up to a quarter of its
 * candidates in all; then the exact round. Every bucket probed and no entry
 * dropped, the round is the fixed count's exact one (small tables stay
 * exact); with lsh.probes = 0 and lsh.candidates = 0 it is exact as before.
 * The bounds are probabilistic: a row may be missed where a bound fails
 * (rows within the probed buckets, at eps0 near 2, rarely), besides the
 * rows of buckets not probed. Buckets were left unprobed, a bounded round
 * returns at most a quarter of its candidates, as the fixed count does: its
 * bounds know nothing of those buckets, so its far rows are no surer than
 * the fixed count's (on a small table with many buckets, returning every
 * probed row lost rows below the last one, so that LIMIT 100 of 220 rows
 * gave 96).
 *
 * Probing. A bounded round probes the lsh.probes buckets nearest the
 * query, then goes on in the same order, up to LSH_PROBE_GROWTH times as
 * many, until LSH_PROBE_PATIENCE buckets in a row held no entry whose lower
 * bound is below the LSH_PROBE_WATCH_ROWS-th least estimate so far: none
 * that may be among the nearest rows a search typically asks for. Where
 * the neighbours crowd into the nearest buckets (a steep spectrum) the
 * round stops at lsh.probes and a few more; where they spread over many
 * (flatter spectra, queries far from every cluster) it probes on. At 1M
 * rows that took recall@30 at the defaults from 0.93 and 0.85 to 0.995 and
 * 0.971 on the CNN-like and hard sets; the demo-like set kept 0.999 and
 * probes about 41 buckets instead of 64 (docs/methods.md "lsh"). The fixed count (lsh.error_bound = 0) has no
 * bounds to watch and probes lsh.probes buckets exactly.
 *
 * Without a hash (built on no rows), or for a NULL query (every distance
 * NULL), the scan reads every vector (index/flat_scan.h). So does a range
 * search (WHERE feat <<->> imgsearch_sphere(q, r), index_scan.h), whatever
 * lsh.probes and lsh.candidates say: it must be exact, and the sketches
 * give no sound lower bound to skip a bucket by; the pass sorts and returns
 * only the rows within r.
 *
 * Several examples (best score) search from every positive at once: a
 * round probes the buckets nearest any positive (by the least of their
 * centroid keys), estimates an entry by the least of the positives'
 * estimates and re-ranks by the exact score (index_scan.h), so that the
 * rounds and their exactness are those of one query.
 */
#include "postgres.h"

#include <math.h>

#include "access/relscan.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "index/flat_scan.h"
#include "lsh/lsh.h"


typedef struct LshScanStats
{
	int64		rounds;
	int64		buckets;		/* probed, over all rounds */
	int64		entries;		/* estimated */
	int64		keys;			/* exact keys computed */
	int64		below;			/* bounded rounds: rows re-ranked below a row returned */
} LshScanStats;

typedef struct LshScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here, until the next rescan */
	MemoryContext round_ctx;	/* a round's candidates and results */
	ImgsScanState ss;			/* the query, the last row returned */
	bool		started;
	bool		flat;			/* no hash to search: a flat scan */
	ImgsFlatScan *flat_scan;
	LshCache   *cache;			/* pinned until the next rescan */
	ImgsStoreReader store;
	LshQuery  **queries;		/* one per query point (index_scan.h imgs_query_points) */
	int			nqueries;
	MemoryContextCallback free_query;	/* ends queries with ctx */
	int64		probes;			/* of the next round; 0: every bucket */
	int64		candidates;		/* of the next round; 0: every entry */
	double		error_bound;	/* eps0 of the next round; 0: the best estimates (fixed count) */
	/* the current round, when bounded (see "The error bound" above) */
	bool		bounded;
	ImgsCandidate *bounds;		/* its entries, by (lower bound as a key, slot): bound_at */
	int			nbounds;
	int			sorted_bounds;	/* bounds[0..sorted_bounds) are sorted, and least */
	int			next_bound;		/* the next to re-rank */
	bool		capped;			/* entries were dropped (lsh.candidates) */
	bool		all_probed;		/* every bucket was probed */
	double		beyond;			/* the least bound of those dropped */
	ImgsCandidate *pending;		/* re-ranked, not returned: a min-heap on (key, slot) */
	int64		npending;
	int			round_returned;
	bool		exhausted;		/* the last round was exact: nothing is left */
	uint32	   *ties;			/* slots returned at the last row's key */
	int			nties;
	int			ties_cap;
	ImgsCandidate *results;		/* of the current round, in order */
	int			nresults;
	int			next;
	LshScanStats stats;
} LshScanOpaqueData;

typedef LshScanOpaqueData *LshScanOpaque;

static void
report_stats(IndexScanDesc scan, LshScanOpaque so)
{
	if (so->cache == NULL || !so->started || so->flat || !message_level_is_interesting(DEBUG1))
		return;
	elog(DEBUG1, "lsh scan of \"%s\": %lld rows, %lld rounds, %lld of %u buckets probed, "
		 "%lld entries scanned, %lld exact distances, %lld rows below a returned row",
		 RelationGetRelationName(scan->indexRelation), (long long) so->ss.returned,
		 (long long) so->stats.rounds, (long long) so->stats.buckets, so->cache->meta.n_buckets,
		 (long long) so->stats.entries, (long long) so->stats.keys, (long long) so->stats.below);
}

static void
end_query(void *arg)
{
	LshScanOpaque so = (LshScanOpaque) arg;

	for (int k = 0; k < so->nqueries; k++)
		if (so->queries[k])
			lsh_query_end(so->queries[k]);
	so->queries = NULL;
	so->nqueries = 0;
}

IndexScanDesc
lsh_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = imgs_scan_begin(index, nkeys, norderbys);
	LshScanOpaque so = palloc0(sizeof(LshScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "lsh scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void
lsh_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	LshScanOpaque so = (LshScanOpaque) scan->opaque;
	MemoryContext old_ctx;

	report_stats(scan, so);
	/* ends the query of the last scan too (its reset callback), and unpins its cache */
	MemoryContextReset(so->ctx);
	so->started = false;
	so->flat_scan = NULL;
	so->cache = NULL;
	so->queries = NULL;
	so->nqueries = 0;
	so->results = NULL;
	so->nresults = so->next = 0;
	so->ties = NULL;
	so->nties = so->ties_cap = 0;
	so->bounded = false;
	so->bounds = so->pending = NULL;
	so->nbounds = so->sorted_bounds = so->next_bound = so->npending = so->round_returned = 0;
	memset(&so->stats, 0, sizeof(so->stats));
	old_ctx = MemoryContextSwitchTo(so->ctx);
	imgs_scan_rescan(scan, &so->ss, keys, orderbys, "lsh");
	MemoryContextSwitchTo(old_ctx);
}

/*
 * A round's candidates: while selecting, each entry's rank (its estimate,
 * or bounded: its lower bound, as a key); then the exact key. With a limit,
 * the `limit` least ranks offered, selected by threshold: the buffer takes
 * an entry only below the limit-th least rank known (`cut`), and when it
 * holds twice the limit it keeps the limit least (imgs_select_least) and
 * the cut falls. An entry costs O(1) on average where a max-heap of the
 * limit cost a sift of log2(limit) levels through an array out of cache:
 * at 1M rows 6000 candidates instead of 1500 added 2.9 ms to a 5.4 ms
 * search with a heap, 0.1 ms with this.
 */
typedef struct Candidates
{
	ImgsCandidate *items;		/* in no order */
	int64		n;
	int64		cap;
	int64		limit;			/* 0: every entry */
	bool		has_cut;		/* a selection was made: cut is the limit-th least */
	double		cut_key;
	uint32		cut_slot;
	bool		dropped;		/* an entry was left out (limit) */
	double		beyond;			/* the least rank of those left out */
} Candidates;

static void
candidates_init(Candidates *c, int64 limit)
{
	memset(c, 0, sizeof(*c));
	c->limit = limit;
	c->beyond = INFINITY;
	c->cap = limit > 0 ? Min(2 * limit, 1024) : 1024;
	c->items = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(ImgsCandidate) * c->cap);
}

/* With a limit: keeps the limit least of the buffer, and lowers the cut to the greatest of them. */
static void
candidates_select(Candidates *c)
{
	if (c->limit <= 0 || c->n <= c->limit)
		return;
	imgs_select_least(c->items, c->n, c->limit);
	c->dropped = true;
	for (int64 i = c->limit; i < c->n; i++)
		c->beyond = Min(c->beyond, c->items[i].key);
	c->n = c->limit;
	c->has_cut = true;
	c->cut_key = c->items[c->limit - 1].key;
	c->cut_slot = c->items[c->limit - 1].slot;
}

static inline void
offer(Candidates *c, double rank, uint32 slot)
{
	ImgsCandidate *item;

	if (c->has_cut && !imgs_key_less(rank, slot, c->cut_key, c->cut_slot))
	{
		c->dropped = true;
		c->beyond = Min(c->beyond, rank);
		return;
	}
	if (c->n == c->cap)
	{
		if (c->limit > 0 && c->cap == 2 * c->limit)
			candidates_select(c);
		else
		{
			c->cap = c->limit > 0 ? Min(2 * c->cap, 2 * c->limit) : 2 * c->cap;
			c->items = repalloc_huge(c->items, sizeof(ImgsCandidate) * c->cap);
		}
	}
	item = &c->items[c->n++];
	item->key = rank;
	item->slot = slot;
	/* the TID comes with the exact key */
	ItemPointerSetInvalid(&item->tid);
}

/*
 * A lower bound of an entry's estimate, as a key of the scan's ORDER BY
 * (the estimate is |q' - x'|^2 for L2 and cosine, -<q, x> for IP:
 * lsh_core.h; an examples score is a value, index_scan.h).
 */
static double
bound_as_key(const ImgsQuery *query, float lower)
{
	switch (query->strategy)
	{
		case IMGS_STRATEGY_L2_EXAMPLES:
			return lower > 0 ? sqrt(lower) : 0;
		case IMGS_STRATEGY_COSINE:
		case IMGS_STRATEGY_COSINE_EXAMPLES:
			return (double) lower / 2;
		default:
			return lower;
	}
}

/*
 * What a bounded round watches while it probes (see "Probing" above): the
 * LSH_PROBE_WATCH_ROWS least estimates so far (a max-heap, as keys) and the
 * buckets in a row that held no entry whose bound is below the greatest.
 */
typedef struct ProbeWatch
{
	double		least[LSH_PROBE_WATCH_ROWS];
	int			n;
	int32		quiet;
} ProbeWatch;

/* Whether an entry of bound `lower` may be among the nearest; keeps its estimate. */
static inline bool
watch_entry(ProbeWatch *w, double lower, double estimate)
{
	bool		may = w->n < LSH_PROBE_WATCH_ROWS || lower < w->least[0];
	int			i;

	if (w->n < LSH_PROBE_WATCH_ROWS)
	{
		/* sift up */
		for (i = w->n++; i > 0 && w->least[(i - 1) / 2] < estimate; i = (i - 1) / 2)
			w->least[i] = w->least[(i - 1) / 2];
		w->least[i] = estimate;
		return may;
	}
	if (!(estimate < w->least[0]))
		return may;
	/* replace the greatest, sift down */
	i = 0;
	for (;;)
	{
		int			child = 2 * i + 1;

		if (child >= LSH_PROBE_WATCH_ROWS)
			break;
		if (child + 1 < LSH_PROBE_WATCH_ROWS && w->least[child + 1] > w->least[child])
			child++;
		if (!(w->least[child] > estimate))
			break;
		w->least[i] = w->least[child];
		i = child;
	}
	w->least[i] = estimate;
	return may;
}

/*
 * Estimates every entry of the buckets order[0..probes), and bounded, of
 * order[probes..most) while they may hold the nearest ("Probing"; the least
 * over the query points), and offers the live ones, ranked by estimate or
 * (bounded) by lower bound; returns the buckets probed. While it reads a
 * page it has the next one pinned and on its way from memory (the next of
 * the chain, or the next bucket's first): at 1M rows a page's first touch,
 * not the estimator, was most of a probe.
 */
static int32
scan_buckets(LshScanOpaque so, Relation index, const int32 *order, int32 probes, int32 most,
			 Candidates *c, bool bounded, float *est, float *est_more, float *lower, float *lower_more)
{
	Size		entry_size = lsh_entry_size(so->cache->meta.bits);
	Buffer		ahead = InvalidBuffer;
	BlockNumber ahead_blkno = InvalidBlockNumber;
	ProbeWatch	watch;
	int32		p;

	watch.n = 0;
	watch.quiet = 0;
	for (p = 0; p < most; p++)
	{
		int32		b = order[p];
		BlockNumber blkno = so->cache->bucket_last[b];
		uint32		pages = 0;
		bool		may_hold_nearest = false;

		if (p >= probes && watch.quiet >= LSH_PROBE_PATIENCE)
			break;
		while (BlockNumberIsValid(blkno))
		{
			Buffer		buf;
			Page		page;
			const ImgsListPageHeader *ph;
			BlockNumber next;

			CHECK_FOR_INTERRUPTS();
			if (BufferIsValid(ahead) && ahead_blkno == blkno)
				buf = ahead;
			else
			{
				if (BufferIsValid(ahead))
					ReleaseBuffer(ahead);
				buf = ReadBuffer(index, blkno);
			}
			ahead = InvalidBuffer;
			imgs_list_lock_page(index, buf, blkno, LSH_PAGE_BUCKET, (uint32) b, entry_size, ++pages,
								BUFFER_LOCK_SHARE);
			page = BufferGetPage(buf);
			ph = ImgsListPageHeaderOf(page);
			next = ph->prev_blkno;
			if (!BlockNumberIsValid(next) && p + 1 < most)
				next = so->cache->bucket_last[order[p + 1]];
			if (BlockNumberIsValid(next))
			{
				ahead = ReadBuffer(index, next);
				ahead_blkno = next;
				imgs_prefetch_page(BufferGetPage(ahead));
			}
			/* without bounds (lower NULL) lsh_query_estimate_bounds is lsh_query_estimate */
			for (int k = 0; k < so->nqueries; k++)
			{
				lsh_query_estimate_bounds(so->queries[k], b, imgs_list_entry(page, entry_size, 0),
										  (int32) ph->count, entry_size, offsetof(LshEntry, norm2),
										  offsetof(LshEntry, code), (float) so->error_bound,
										  k == 0 ? est : est_more, k == 0 ? lower : lower_more);
				for (uint32 i = 0; k > 0 && i < ph->count; i++)
				{
					/* the estimates too when bounded: probing watches them */
					est[i] = fminf(est[i], est_more[i]);
					if (bounded)
						lower[i] = fminf(lower[i], lower_more[i]);
				}
			}
			for (uint32 i = 0; i < ph->count; i++)
			{
				uint32		slot = imgs_list_entry_slot(imgs_list_entry(page, entry_size, i));
				double		bound;

				if (slot == IMGS_NO_SLOT)
					continue;
				if (!bounded)
				{
					offer(c, est[i], slot);
					continue;
				}
				bound = bound_as_key(&so->ss.query, lower[i]);
				offer(c, bound, slot);
				if (most > probes && watch_entry(&watch, bound, bound_as_key(&so->ss.query, est[i])))
					may_hold_nearest = true;
			}
			so->stats.entries += ph->count;
			blkno = ph->prev_blkno;
			UnlockReleaseBuffer(buf);
		}
		watch.quiet = may_hold_nearest ? 0 : watch.quiet + 1;
	}
	if (BufferIsValid(ahead))
		ReleaseBuffer(ahead);
	return p;
}

static int
slot_cmp(const void *a, const void *b)
{
	uint32		x = *(const uint32 *) a;
	uint32		y = *(const uint32 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Whether key is the last row's key (NaN matching NaN). */
static bool
at_last_key(const ImgsScanState *ss, double key)
{
	return ss->has_last && (key == ss->last_key || (isnan(key) && isnan(ss->last_key)));
}

/* Remembers a row returned, for the ties of the next round. */
static void
note_returned(LshScanOpaque so, double key, uint32 slot)
{
	if (!at_last_key(&so->ss, key))
		so->nties = 0;
	if (so->nties == so->ties_cap)
	{
		so->ties_cap = Max(16, so->ties_cap * 2);
		so->ties = so->ties ? repalloc_huge(so->ties, sizeof(uint32) * so->ties_cap) :
			MemoryContextAlloc(so->ctx, sizeof(uint32) * so->ties_cap);
	}
	so->ties[so->nties++] = slot;
}

typedef struct BucketKey
{
	double		key;
	int32		bucket;
} BucketKey;

static int
bucket_key_cmp(const void *a, const void *b)
{
	const BucketKey *x = (const BucketKey *) a;
	const BucketKey *y = (const BucketKey *) b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->bucket < y->bucket ? -1 : x->bucket > y->bucket ? 1 : 0;
}

/*
 * The probe order of several query points: the `count` buckets whose
 * centroids are nearest any of them (least key, ties by number).
 */
static void
probe_order_many(LshScanOpaque so, int32 count, int32 *out)
{
	int32		n_buckets = (int32) so->cache->meta.n_buckets;
	BucketKey  *keys = palloc(sizeof(BucketKey) * n_buckets);

	for (int32 b = 0; b < n_buckets; b++)
	{
		keys[b].bucket = b;
		keys[b].key = INFINITY;
	}
	for (int k = 0; k < so->nqueries; k++)
	{
		const double *bk = lsh_query_bucket_keys(so->queries[k]);

		for (int32 b = 0; b < n_buckets; b++)
			if (bk[b] < keys[b].key)
				keys[b].key = bk[b];
	}
	qsort(keys, n_buckets, sizeof(BucketKey), bucket_key_cmp);
	for (int32 i = 0; i < count; i++)
		out[i] = keys[i].bucket;
	pfree(keys);
}

/* One round: fills so->results with the rows after the last one returned, in order. */
static void
run_round(IndexScanDesc scan, LshScanOpaque so)
{
	Relation	index = scan->indexRelation;
	int32		n_buckets = (int32) so->cache->meta.n_buckets;
	int32		probes = so->probes <= 0 || so->probes >= n_buckets ? n_buckets : (int32) so->probes;
	int64		limit = so->candidates;
	/* bounded, unless the budget is every entry of every bucket: exact */
	bool		bounded = so->error_bound > 0 && !(probes == n_buckets && limit <= 0);
	/* a bounded round probes on while buckets may hold the nearest ("Probing") */
	int32		most = bounded ? (int32) Min((int64) probes * LSH_PROBE_GROWTH, n_buckets) : probes;
	int32	   *order;
	float	   *est;
	float	   *est_more;
	float	   *lower = NULL;
	float	   *lower_more = NULL;
	Size		per_page = imgs_list_per_page(lsh_entry_size(so->cache->meta.bits)) + 1;
	Candidates	c;
	uint32	   *slots;
	int64		n;
	double	   *keys;
	ImgsSlotHeader *headers;
	MemoryContext old_ctx;
	ImgsError	err;

	MemoryContextReset(so->round_ctx);
	old_ctx = MemoryContextSwitchTo(so->round_ctx);
	so->stats.rounds++;
	order = palloc(sizeof(int32) * most);
	est = palloc(sizeof(float) * per_page);
	est_more = palloc(sizeof(float) * per_page);
	candidates_init(&c, limit);
	if (bounded)
	{
		lower = palloc(sizeof(float) * per_page);
		lower_more = palloc(sizeof(float) * per_page);
	}
	if (so->nqueries > 1)
		probe_order_many(so, most, order);
	else if (!lsh_query_probe_order(so->queries[0], most, order, &err))
		imgs_raise_cxx_error(&err);
	probes = scan_buckets(so, index, order, probes, most, &c, bounded, est, est_more, lower, lower_more);
	so->stats.buckets += probes;
	candidates_select(&c);

	/*
	 * A bounded round re-ranks lazily (bounded_next); but one that kept
	 * every entry of every bucket re-ranks them all now and is exact, and
	 * one of a handful of candidates goes exact, as the fixed count's.
	 */
	if (bounded && !(probes == n_buckets && !c.dropped) && c.n >= LSH_ROUND_MIN_ROWS)
	{
		so->bounded = true;
		so->bounds = c.items;
		so->nbounds = (int) c.n;
		so->sorted_bounds = 0;
		so->next_bound = 0;
		so->capped = c.dropped;
		so->all_probed = probes == n_buckets;
		so->beyond = c.dropped ? c.beyond : INFINITY;
		so->pending = MemoryContextAllocHuge(so->round_ctx, sizeof(ImgsCandidate) * Max(so->nbounds, 1));
		so->npending = 0;
		so->round_returned = 0;
		so->nresults = so->next = 0;
		so->exhausted = false;
		so->probes = 0;
		so->candidates = 0;
		so->error_bound = 0;
		MemoryContextSwitchTo(old_ctx);
		return;
	}

	/* exact keys, from the store */
	n = c.n;
	slots = MemoryContextAllocHuge(so->round_ctx, sizeof(uint32) * Max(n, 1));
	for (int64 i = 0; i < n; i++)
		slots[i] = c.items[i].slot;
	keys = MemoryContextAllocHuge(so->round_ctx, sizeof(double) * Max(n, 1));
	headers = MemoryContextAllocHuge(so->round_ctx, sizeof(ImgsSlotHeader) * Max(n, 1));
	imgs_store_keys(&so->store, slots, (int) n, &so->ss.query.keys, keys, headers);
	so->stats.keys += n;
	so->results = MemoryContextAllocHuge(so->round_ctx, sizeof(ImgsCandidate) * Max(n, 1));
	so->nresults = 0;
	qsort(so->ties, so->nties, sizeof(uint32), slot_cmp);
	for (int64 i = 0; i < n; i++)
	{
		ImgsCandidate *r;

		/* a slot freed since its entry was read (and maybe reused) is no row of this scan */
		if (headers[i].state != IMGS_SLOT_LIVE)
			continue;
		/* after the last row; or tied with it and not returned yet */
		if (!imgs_scan_after_last(&so->ss, keys[i], slots[i]) &&
			!(at_last_key(&so->ss, keys[i]) &&
			  bsearch(&slots[i], so->ties, so->nties, sizeof(uint32), slot_cmp) == NULL))
			continue;
		r = &so->results[so->nresults++];
		r->key = keys[i];
		r->slot = slots[i];
		r->tid = headers[i].tid;
	}
	imgs_sort_candidates(so->results, so->nresults);
	so->next = 0;

	/* exact once every bucket was probed and no entry dropped */
	so->exhausted = probes == n_buckets && (limit <= 0 || !c.dropped);
	if (!so->exhausted)
	{
		int64		found = c.n;

		/* a handful of candidates says too little: go exact before returning any */
		so->nresults = found < LSH_ROUND_MIN_ROWS ? 0 : Min(so->nresults, (int) (found / LSH_ROUND_SHARE));
	}
	/* the round after the budget's is exact: every bucket, every entry */
	so->probes = 0;
	so->candidates = 0;
	so->error_bound = 0;
	MemoryContextSwitchTo(old_ctx);
}

/*
 * so->bounds[i] (i < nbounds) in order of bound: the bounds are sorted a
 * chunk at a time as the re-ranks reach them (a LIMIT 30 takes a few
 * hundred of thousands), each chunk the least of the rest.
 */
static inline const ImgsCandidate *
bound_at(LshScanOpaque so, int i)
{
	while (i >= so->sorted_bounds)
	{
		int			done = so->sorted_bounds;
		int			chunk = Min(so->nbounds - done, Max(256, done));

		if (done + chunk < so->nbounds)
			imgs_select_least(so->bounds + done, so->nbounds - done, chunk);
		imgs_sort_candidates(so->bounds + done, chunk);
		so->sorted_bounds = done + chunk;
	}
	return &so->bounds[i];
}

/*
 * Re-ranks the next entries by bound: those whose bound is below the
 * nearest row pending (they must be, before it can be returned), at least
 * LSH_RERANK_MIN and at most LSH_RERANK_MAX, so that the store's lookahead
 * (imgs_store_keys) has a run to overlap.
 */
#define LSH_RERANK_MIN	8
#define LSH_RERANK_MAX	64

static void
rerank_some(LshScanOpaque so)
{
	uint32		slots[LSH_RERANK_MAX];
	double		keys[LSH_RERANK_MAX];
	ImgsSlotHeader headers[LSH_RERANK_MAX];
	int			first = so->next_bound;
	int			end = Min(first + LSH_RERANK_MIN, so->nbounds);
	double		nearest = so->npending > 0 ? so->pending[0].key : INFINITY;

	while (end < so->nbounds && end - first < LSH_RERANK_MAX && bound_at(so, end)->key < nearest)
		end++;
	for (int i = first; i < end; i++)
		slots[i - first] = bound_at(so, i)->slot;
	imgs_store_keys(&so->store, slots, end - first, &so->ss.query.keys, keys, headers);
	so->stats.keys += end - first;
	for (int i = 0; i < end - first; i++)
		/* a slot freed since its entry was read (and maybe reused) is no row of this scan */
		if (headers[i].state == IMGS_SLOT_LIVE)
			imgs_min_heap_push(so->pending, &so->npending, keys[i], slots[i], &headers[i].tid);
	so->next_bound = end;
}

/* Whether a row may come next: after the last row, or tied with it and not returned yet. */
static bool
may_return(LshScanOpaque so, double key, uint32 slot)
{
	if (imgs_scan_after_last(&so->ss, key, slot))
		return true;
	if (!at_last_key(&so->ss, key))
		return false;
	for (int i = 0; i < so->nties; i++)
		if (so->ties[i] == slot)
			return false;
	return true;
}

/*
 * The next row of a bounded round (see "The error bound" above) into out;
 * false when the round has no more.
 */
static bool
bounded_next(LshScanOpaque so, ImgsCandidate *out)
{
	for (;;)
	{
		bool		left = so->next_bound < so->nbounds;
		double		bound = left ? bound_at(so, so->next_bound)->key : so->beyond;
		bool		within_share = so->round_returned < so->nbounds / LSH_ROUND_SHARE;

		/*
		 * Buckets were left unprobed: past a share of its candidates the
		 * round is no surer of its rows than the fixed count's (its bounds
		 * know no entry of those buckets), and the exact round goes on.
		 */
		if (!so->all_probed && !within_share)
			return false;
		if (so->npending > 0)
		{
			double		nearest = so->pending[0].key;
			/* no entry of the probed buckets left, or none whose bound is below it (NaN: after all) */
			bool		certain = (!left && !so->capped) || nearest <= bound;
			/* the re-ranks spent: the fixed count's share */
			bool		share = !left && within_share;

			if (certain || share)
			{
				ImgsCandidate r = imgs_min_heap_pop(so->pending, &so->npending);

				if (!may_return(so, r.key, r.slot))
				{
					so->stats.below++;
					continue;
				}
				so->round_returned++;
				*out = r;
				return true;
			}
		}
		if (!left)
			return false;
		rerank_some(so);
	}
}

static void
start(IndexScanDesc scan, LshScanOpaque so)
{
	Relation	index = scan->indexRelation;
	ImgsIndexMeta header;
	LshMeta		meta;
	ImgsError	err;

	lsh_read_meta(index, &header, &meta);
	imgs_scan_start(scan, &so->ss, &header);
	/* a range search is exact: a flat pass (see the header) */
	so->flat = meta.bits == 0 || so->ss.query.isnull || so->ss.exact;
	if (so->flat)
	{
		so->flat_scan = palloc0(sizeof(ImgsFlatScan));
		imgs_flat_scan_start(so->flat_scan, scan, &so->ss, &lsh_am, &header);
		return;
	}
	so->cache = lsh_get_cache(index, &header, &meta);
	imgs_cache_pin(&so->cache->base, so->ctx);
	imgs_store_open(&so->store, index, &lsh_am, &header);
	so->round_ctx = AllocSetContextCreate(so->ctx, "lsh scan round", ALLOCSET_DEFAULT_SIZES);
	so->queries = palloc0(sizeof(LshQuery *) * imgs_query_points(&so->ss.query));
	so->free_query.func = end_query;
	so->free_query.arg = so;
	MemoryContextRegisterResetCallback(so->ctx, &so->free_query);
	for (int k = 0; k < imgs_query_points(&so->ss.query); k++)
	{
		so->queries[k] = lsh_query_begin(&so->cache->model, imgs_query_point(&so->ss.query, k), &err);
		if (so->queries[k] == NULL)
			imgs_raise_cxx_error(&err);
		so->nqueries = k + 1;
	}
	so->probes = lsh_probes;
	so->candidates = lsh_candidates;
	so->error_bound = lsh_error_bound;
	so->exhausted = false;
	so->nresults = so->next = 0;
}

bool
lsh_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	LshScanOpaque so = (LshScanOpaque) scan->opaque;
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);
	bool		found = false;

	if (so->ss.done)
	{
		MemoryContextSwitchTo(old_ctx);
		return false;
	}
	if (!so->started)
	{
		start(scan, so);
		so->started = true;
	}
	if (so->flat)
		found = imgs_flat_scan_next(so->flat_scan, scan, &so->ss);
	else
	{
		ImgsCandidate bounded_row;
		ImgsCandidate *r = NULL;

		for (;;)
		{
			if (so->bounded)
			{
				if (bounded_next(so, &bounded_row))
				{
					r = &bounded_row;
					break;
				}
				so->bounded = false;
			}
			if (so->next < so->nresults)
			{
				r = &so->results[so->next++];
				break;
			}
			if (so->exhausted)
				break;
			run_round(scan, so);
		}
		if (r)
		{
			note_returned(so, r->key, r->slot);
			found = imgs_scan_return(scan, &so->ss, r->key, r->slot, &r->tid);
		}
	}
	MemoryContextSwitchTo(old_ctx);
	return found;
}

void
lsh_endscan(IndexScanDesc scan)
{
	LshScanOpaque so = (LshScanOpaque) scan->opaque;

	report_stats(scan, so);
	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

/*
 * The build's sample searches (lsh_build.c, imgs_sample_searches): adds the
 * scan's buckets probed and exact keys computed to arg (double[2]). A
 * bounded round's work follows the data (see "The error bound" above):
 * about 150 keys at 100k rows on a steep spectrum, 800 on a flatter one,
 * which no constant prices.
 */
void
lsh_scan_tally(IndexScanDesc scan, void *arg)
{
	LshScanOpaque so = (LshScanOpaque) scan->opaque;
	double	   *sums = arg;

	sums[0] += so->stats.buckets;
	sums[1] += so->stats.keys;
}
