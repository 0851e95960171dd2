/*
 * faissflat_scan.c — ambeginscan, amrescan, amgettuple, amendscan.
 *
 * A scan of an index with codes (faissflat.h), for an L2 or cosine query of
 * one vector, filters and refines (VA-file):
 *  1. It takes the code entries from the backend's cache (faissflat.h:
 *     read from the code pages once, the new ones after inserts, all again
 *     after a vacuum) and computes each one's a2 (faissflat_core.h: the SQ8
 *     code's dot product with the query's integer weights, one SIMD pass
 *     over the packed codes, on faissflat.scan_threads threads past
 *     FAISSFLAT_THREADS_MIN_ENTRIES), a lower bound of the squared projected
 *     distance. Streaming a copy in the backend's memory is what makes this
 *     pass fast: reading the code pages through the buffer manager costs
 *     several times as much (bench/results/faissflat_sq8.md). The
 *     FAISSFLAT_SEED_KEYS entries of least a2 get exact keys; tau is the
 *     SEED_ENTRIES-th least. Entries whose a2 may give a bound within tau
 *     get their bound (kd_bound_from_parts); those within tau go into a
 *     min-heap by bound, the others stay cold. If more than half of many
 *     entries may lie within tau, the filter cannot pay: flat passes from
 *     the start.
 *  2. It takes entries from the heap in increasing bound and computes their
 *     exact keys from the store (imgs_store_keys, the operators' kernels, a
 *     batch at a time) into a second min-heap by (key, slot). It returns
 *     a row from it as soon as its key is strictly below the least bound
 *     left: no entry not yet computed can come before it (nor tie with it
 *     and have a lower slot). So rows come in the flat scan's (key, slot)
 *     order, as many as the executor asks for, with no LIMIT assumed.
 *  3. Past faissflat_flat_switch keys computed (a consumer that reads a
 *     large part of the table), random reads of vectors cost more than
 *     streaming them: it goes on with the flat scan's passes after the last
 *     row returned.
 * Without codes, and for the inner product, several examples or a NULL
 * query, the scan is a flat scan of the vector store (index/flat_scan.h),
 * in passes.
 *
 * Distances are exact (the operator's own arithmetic, index/index_scan.h),
 * so xs_recheckorderby stays false. The heap decides visibility: rows are
 * returned whatever their MVCC state, as by any index. A range search (WHERE
 * feat <<->> imgsearch_sphere(q, r)) is a flat pass too: every vector is
 * read, only those within the radius are sorted and returned.
 */
#include "postgres.h"

#include <float.h>

#include "access/relscan.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/memutils.h"

#include "index/flat_scan.h"
#include "index/index_am.h"
#include "faissflat/faissflat.h"
#include "faissflat/faissflat_core.h"
#include "type/imgfeat.h"

/* Entries whose exact key one step computes */
#define REFINE_BATCH		16
/*
 * Past this many entries, a seed threshold that leaves more than half of
 * them within it prunes too little to pay: flat passes from the start.
 */
#define FLAT_START_MIN		10000
/* Entries whose exact keys give the first threshold (tau) */
#define SEED_ENTRIES		32
/*
 * The staged pass's seeds are the FAISSFLAT_SEED_KEYS of least whole-code
 * a2 among the entries of least first-cut a2: a 64th of them, at least the
 * seeds and at most SEED_POOL_MAX (their whole codes, read out of order,
 * cost 0.2 ms at 1M rows; 4096 cost 0.8 ms and chose seeds no better on
 * the demo-like set, where the first cut ranks well).
 */
#define SEED_POOL_MAX		1024
/*
 * The staged passes read a twelfth of the bytes: below this many entries
 * they stay on the backend (at 100k x 512, demo-like: 1.1 ms a query on
 * one thread, 1.5 on two; at 1M, 5.8 and 4.1)
 */
#define STAGED_THREADS_MIN_ENTRIES	(4 * FAISSFLAT_THREADS_MIN_ENTRIES)
typedef struct BoundItem
{
	double		bound;
	uint32		entry;			/* in the cache's arrays */
} BoundItem;

#define ENTRY_LAZY			0	/* its a2 alone puts it beyond tau: no bound computed yet */
#define ENTRY_COLD			1	/* bound above tau: left out of the heap for now */
#define ENTRY_HEAP			2	/* in the bound heap */
#define ENTRY_SEED			3	/* a seed: its exact key computed at the start */

/* The filter-and-refine state (steps 1 and 2 above). */
typedef struct CodeScan
{
	FaissflatCache *cache;		/* pinned */
	ImgsStoreReader store;
	float		rq;				/* the query's residual norm */
	double		magq;			/* its magnitude (ff_magnitude) */
	int64		nentries;		/* the cache's, as the scan started */
	double	   *a2;				/* per entry: ff_a2 */
	int64		candidates;		/* entries whose a2 may give a bound within tau */
	double		lazy_min;		/* no lazy entry's bound is below it */
	BoundItem  *bounds;			/* min-heap by bound: entries not refined yet */
	int64		nbounds;
	/*
	 * The cold entries (ENTRY_COLD and ENTRY_LAZY): not in the heap yet,
	 * their bounds above tau (see code_scan_start); cold_min is at most
	 * their least bound (+inf when none).
	 */
	double	   *bound;			/* per entry (not lazy): its bound */
	uint8	   *state;			/* per entry: ENTRY_* */
	double		cold_min;
	int64		ncold;
	ImgsCandidate *ready;		/* min-heap by (key, slot): refined, not returned */
	int64		nready;
	int64		ready_cap;
	int64		refined;		/* exact keys computed */
	int64		hot;			/* entries put into the heap at the start */
	double		tau;			/* the seeds' threshold */
	bool		switched;		/* went on with flat passes */
	bool		staged;			/* the first pass read each code's head (faissflat_core.h, steps 6-8) */
	FfRefineStats refine;		/* then what went on (DEBUG1) */
	double		ms_refine;
	int			threads;		/* the pass over the codes ran on */
	double		ms_cache;		/* where the start's time went (DEBUG1) */
	double		ms_codes;
	double		ms_seeds;
	double		ms_hot;
	int64		flat_switch;	/* refined beyond this: flat passes */
} CodeScan;

typedef struct FaissflatScanOpaqueData
{
	MemoryContext ctx;			/* everything below lives here */
	ImgsScanState ss;			/* the query, the last row returned */
	bool		started;		/* first pass done */
	bool		use_codes;		/* filter and refine; else (or once switched) flat passes */
	ImgsIndexMeta meta;			/* as the scan started */
	CodeScan	codes;
	ImgsFlatScan flat;
} FaissflatScanOpaqueData;

typedef FaissflatScanOpaqueData *FaissflatScanOpaque;

/* ---- the bound heap (min by bound) and the ready heap (min by key, slot) ---- */

static void
bounds_sift_down(BoundItem *h, int64 n, int64 i)
{
	BoundItem	item = h[i];

	for (;;)
	{
		int64		c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1].bound < h[c].bound)
			c++;
		if (!(h[c].bound < item.bound))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = item;
}

/* qsort order of BoundItems: by bound, then entry */
static int
bound_item_cmp(const void *a, const void *b)
{
	const BoundItem *x = a;
	const BoundItem *y = b;

	if (x->bound != y->bound)
		return x->bound < y->bound ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry ? 1 : 0;
}

/* Room for one more ready row, then pushes it. */
static void
ready_push(CodeScan *cs, double key, uint32 slot, ItemPointer tid)
{
	if (cs->nready == cs->ready_cap)
	{
		cs->ready_cap *= 2;
		cs->ready = repalloc_huge(cs->ready, sizeof(ImgsCandidate) * cs->ready_cap);
	}
	imgs_min_heap_push(cs->ready, &cs->nready, key, slot, tid);
}

/*
 * The bound of an entry whose a2 is a2, residual gap b and magnitude mag
 * (kdtree_core.h): it grows with a2 and b and falls with mag.
 */
static inline double
entry_bound(const CodeScan *cs, double a2, double b, double mag)
{
	return kd_bound_from_parts(&cs->cache->pca, a2, b, cs->magq + mag);
}

/* Entry i's bound */
static inline double
bound_of(const CodeScan *cs, int64 i)
{
	const FaissflatCache *cache = cs->cache;

	return entry_bound(cs, cs->a2[i], fabs((double) cs->rq - (double) cache->resid[i]),
					   (double) cache->mag[i]);
}

/* The least bound of the entries outside the heap (+inf when none) */
static inline double
least_bound(const CodeScan *cs)
{
	double		b = cs->nbounds > 0 ? cs->bounds[0].bound : INFINITY;

	return Min(b, cs->cold_min);
}

/* Puts every cold entry into the heap (a consumer wants rows beyond tau). */
static void
warm_cold_entries(CodeScan *cs)
{
	int64		n = cs->nentries;

	for (int64 i = 0; i < n; i++)
		if (cs->state[i] == ENTRY_COLD || cs->state[i] == ENTRY_LAZY)
		{
			if (cs->state[i] == ENTRY_LAZY)
				cs->bound[i] = bound_of(cs, i);
			cs->bounds[cs->nbounds].bound = cs->bound[i];
			cs->bounds[cs->nbounds].entry = (uint32) i;
			cs->nbounds++;
			cs->state[i] = ENTRY_HEAP;
		}
	for (int64 i = cs->nbounds / 2 - 1; i >= 0; i--)
		bounds_sift_down(cs->bounds, cs->nbounds, i);
	cs->cold_min = INFINITY;
	cs->ncold = 0;
}

/* A scan's per-entry arrays (FaissflatCache's scratch) */
typedef struct ScanScratch
{
	int64		capacity;
	double	   *a2;
	double	   *bound;
	uint8	   *state;
	BoundItem  *bounds;
} ScanScratch;

/* The scan no longer uses its cache's scratch arrays (so->ctx reset or deleted). */
static void
release_scratch(void *arg)
{
	((FaissflatCache *) arg)->scratch_busy = false;
}

/*
 * The per-entry arrays for a scan of cache's entries: the cache's own when
 * no other scan uses them (allocated in its context, grown as the cache
 * grows, given back when so->ctx goes: that callback runs before the pin's,
 * registered earlier), else new ones in so->ctx.
 */
static ScanScratch *
get_scratch(FaissflatScanOpaque so, FaissflatCache *cache)
{
	int64		n = Max(cache->nentries, 1);
	MemoryContext cxt = so->ctx;
	ScanScratch *sc = NULL;

	if (!cache->scratch_busy)
	{
		MemoryContextCallback *cb = MemoryContextAlloc(so->ctx, sizeof(MemoryContextCallback));

		cache->scratch_busy = true;
		cb->func = release_scratch;
		cb->arg = cache;
		MemoryContextRegisterResetCallback(so->ctx, cb);
		sc = (ScanScratch *) cache->scratch;
		if (sc != NULL && sc->capacity >= n)
			return sc;
		cxt = cache->base.cxt;
	}
	if (sc == NULL)
	{
		sc = MemoryContextAllocZero(cxt, sizeof(ScanScratch));
		if (cxt == cache->base.cxt)
			cache->scratch = sc;
	}
	else
	{
		pfree(sc->a2);
		pfree(sc->bound);
		pfree(sc->state);
		pfree(sc->bounds);
	}
	/* room to grow: a table that takes inserts does not reallocate every scan */
	sc->capacity = n + n / 8;
	sc->a2 = MemoryContextAllocHuge(cxt, sizeof(double) * sc->capacity);
	sc->bound = MemoryContextAllocHuge(cxt, sizeof(double) * sc->capacity);
	sc->state = MemoryContextAllocHuge(cxt, sc->capacity);
	sc->bounds = MemoryContextAllocHuge(cxt, sizeof(BoundItem) * sc->capacity);
	return sc;
}

bool		faissflat_staged_sampling = false;

bool
faissflat_scan_staged(const FaissflatMeta *meta)
{
	if (ff_cuts((int32) meta->dims) == 0 || faissflat_staged == FAISSFLAT_STAGED_OFF)
		return false;
	if (faissflat_staged_sampling)
		return true;
	/* auto: where the build measured that the first cut prunes (unmeasured: one pass, as before) */
	return faissflat_staged == FAISSFLAT_STAGED_ON ||
		((meta->sample_flags & FAISSFLAT_SAMPLED_HEAD) && meta->sample_head <= FAISSFLAT_STAGED_MAX_SHARE);
}

int
faissflat_pass_threads(int64 n)
{
	if (n < FAISSFLAT_THREADS_MIN_ENTRIES || faissflat_scan_threads <= 1)
		return 1;
	return Min(faissflat_scan_threads, imgs_online_cores());
}

int64
faissflat_flat_switch(int64 nslots)
{
	return Max(FAISSFLAT_FLAT_SWITCH_MIN, nslots / FAISSFLAT_FLAT_SWITCH_SHARE);
}

static void
raise_pass_error(ImgsError *err, Relation index)
{
	imgs_raise_cxx_error_in(err, psprintf("faissflat scan of index \"%s\" failed",
										  RelationGetRelationName(index)));
}

/* The (up to) want entries of least a2, sorted, into out (ff_least); their count into found. */
static void
least_entries(const CodeScan *cs, Relation index, const double *chunk_min, int64 want, uint32 *out,
			  int64 *found)
{
	ImgsError	err;

	if (!ff_least(cs->a2, cs->nentries, chunk_min, want, out, found, &err))
		raise_pass_error(&err, index);
}

/*
 * Step 1: every live entry's a2 (one kernel pass over the codes). The
 * FAISSFLAT_SEED_KEYS entries of least a2 get their exact keys at once (into the
 * ready heap); tau is the SEED_ENTRIES-th least of those keys, so at least
 * SEED_ENTRIES rows lie within it, and so do the rows a LIMIT of up to
 * SEED_ENTRIES asks for. An entry whose a2 exceeds the greatest a2 whose
 * least bound (no residual gap, the greatest magnitude) is within tau stays
 * lazy: beyond tau, its bound not even computed. The others get bounds;
 * those within tau go into the bound heap, the rest stay cold. Cold and
 * lazy entries join the heap when a consumer wants rows beyond the least of
 * their bounds (warm_cold_entries). Either way every entry not refined has
 * a bound in the heap or among the cold, or lies beyond lazy_min. Returns
 * true when more than half of many entries may lie within tau: the filter
 * cannot pay, and the caller goes on with flat passes (no row returned yet).
 */
static bool
code_scan_start(FaissflatScanOpaque so, IndexScanDesc scan, const FaissflatMeta *codes)
{
	Relation	index = scan->indexRelation;
	CodeScan   *cs = &so->codes;
	FaissflatCache *cache;
	int32		m = (int32) codes->dims;
	Size		stride = ff_code_stride(m);
	float	   *yq = palloc(sizeof(float) * m);
	FfQuery		fq;
	FfCut		cuts[FF_CUTS_MAX];
	bool		staged;
	int64		n;
	uint32		seeds[FAISSFLAT_SEED_KEYS];
	double		seed_keys[FAISSFLAT_SEED_KEYS];
	double		live_keys[FAISSFLAT_SEED_KEYS];
	ImgsSlotHeader seed_headers[FAISSFLAT_SEED_KEYS];
	uint32		seed_slots[FAISSFLAT_SEED_KEYS];
	int			nseeds = 0;
	double		tau;
	double		a2_limit;
	double		lazy_a2 = INFINITY;
	int			live_seeds = 0;
	int64		nchunks;
	double	   *chunk_min;
	ImgsError	err;
	instr_time	t0,
				t1;

	INSTR_TIME_SET_CURRENT(t0);
	cache = faissflat_get_cache(index, &so->meta, codes, true);
	imgs_cache_pin(&cache->base, so->ctx);
	cs->cache = cache;
	n = cs->nentries = cache->nentries;
	staged = faissflat_scan_staged(codes);
	INSTR_TIME_SET_CURRENT(t1);
	cs->ms_cache = INSTR_TIME_GET_MILLISEC(t1) - INSTR_TIME_GET_MILLISEC(t0);
	t0 = t1;
	if (kd_project(&cache->pca, so->ss.query.keys.x, yq, &cs->rq) < 0)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	cs->magq = ff_magnitude(yq, m, cs->rq);
	fq.wq = palloc(sizeof(int16) * stride);
	ff_query_prepare(cache->ranges, m, yq, &fq);
	{
		ScanScratch *sc = get_scratch(so, cache);

		cs->a2 = sc->a2;
		cs->bound = sc->bound;
		cs->state = sc->state;
		cs->bounds = sc->bounds;
	}
	memset(cs->state, ENTRY_LAZY, Max(n, 1));
	nchunks = (n + FF_PASS_CHUNK - 1) / FF_PASS_CHUNK;
	chunk_min = palloc(sizeof(double) * Max(nchunks, 1));
	cs->nbounds = 0;
	cs->ready_cap = 64;
	cs->ready = palloc(sizeof(ImgsCandidate) * cs->ready_cap);
	cs->nready = 0;
	cs->refined = 0;
	cs->flat_switch = faissflat_flat_switch((int64) so->meta.store.nslots);
	imgs_store_open(&cs->store, index, &faissflat_am, &so->meta);

	/*
	 * every entry's a2 and each chunk's least (on the scan's threads): the
	 * whole code's, or the first cut's (staged: the rest after the seeds)
	 */
	cs->threads = staged && n < STAGED_THREADS_MIN_ENTRIES ? 1 : faissflat_pass_threads(n);
	cs->staged = staged;
	if (staged)
	{
		(void) ff_query_cuts(cache->ranges, m, yq, &fq, cuts);
		if (!ff_a2_head_pass(&fq, cuts, cache->head, n, cache->err, cache->cut_head2[0], cache->cut_tail[0],
							 cs->threads, cs->a2, chunk_min, &err))
			raise_pass_error(&err, index);
	}
	else if (!ff_a2_pass(&fq, cache->codes, stride, n, cache->err, cache->yh2, cs->threads, NULL, cs->a2,
						 chunk_min, &err))
		raise_pass_error(&err, index);

	if (staged)
	{
		/*
		 * the seeds: the FAISSFLAT_SEED_KEYS of least whole-code a2 among the
		 * want of least first-cut a2 (SEED_POOL_MAX)
		 */
		int64		want = Min(SEED_POOL_MAX, Max(FAISSFLAT_SEED_KEYS, n / 64));
		uint32	   *pool = palloc(sizeof(uint32) * want);
		int32	   *dots = palloc(sizeof(int32) * want);
		BoundItem  *ranked = palloc(sizeof(BoundItem) * want);	/* the pool by whole-code a2 */
		int64		npool;

		least_entries(cs, index, chunk_min, want, pool, &npool);
		ff_dots_rows(&fq, 0, stride, cache->codes, stride, pool, npool, dots);
		for (int64 i = 0; i < npool; i++)
		{
			double		a2 = ff_a2(&fq, dots[i], cache->err[pool[i]], cache->yh2[pool[i]]);

			cs->a2[pool[i]] = Max(cs->a2[pool[i]], a2);
			ranked[i].bound = cs->a2[pool[i]];
			ranked[i].entry = pool[i];
		}
		qsort(ranked, npool, sizeof(BoundItem), bound_item_cmp);
		nseeds = (int) Min(npool, FAISSFLAT_SEED_KEYS);
		for (int i = 0; i < nseeds; i++)
			seeds[i] = ranked[i].entry;
		pfree(pool);
		pfree(dots);
		pfree(ranked);
	}
	else
	{
		int64		found;

		least_entries(cs, index, chunk_min, FAISSFLAT_SEED_KEYS, seeds, &found);
		nseeds = (int) found;
	}
	INSTR_TIME_SET_CURRENT(t1);
	cs->ms_codes = INSTR_TIME_GET_MILLISEC(t1) - INSTR_TIME_GET_MILLISEC(t0);
	t0 = t1;
	for (int i = 0; i < nseeds; i++)
	{
		seed_slots[i] = cache->slots[seeds[i]];
		cs->state[seeds[i]] = ENTRY_SEED;
	}
	imgs_store_keys(&cs->store, seed_slots, nseeds, &so->ss.query.keys, seed_keys, seed_headers);
	cs->refined += nseeds;
	for (int i = 0; i < nseeds; i++)
		if (seed_headers[i].state == IMGS_SLOT_LIVE)
		{
			ready_push(cs, seed_keys[i], seed_slots[i], &seed_headers[i].tid);
			/* NaN (a cosine key of a zero vector) bounds nothing */
			live_keys[live_seeds++] = isnan(seed_keys[i]) ? INFINITY : seed_keys[i];
		}
	/* the SEED_ENTRIES-th least live key (insertion sort of at most FAISSFLAT_SEED_KEYS) */
	for (int i = 1; i < live_seeds; i++)
	{
		double		k = live_keys[i];
		int			j = i;

		for (; j > 0 && live_keys[j - 1] > k; j--)
			live_keys[j] = live_keys[j - 1];
		live_keys[j] = k;
	}
	tau = live_seeds < SEED_ENTRIES ? INFINITY : live_keys[SEED_ENTRIES - 1];
	cs->tau = tau;
	cs->switched = false;

	/*
	 * a2_limit: an a2 at least as great as every a2 whose least bound (gap 0,
	 * the greatest magnitude) is within tau, found by bisection (the bound
	 * grows with a2); an entry beyond it has a bound above tau.
	 */
	if (!isfinite(tau) || !(entry_bound(cs, DBL_MAX, 0, cache->max_mag) > tau))
		a2_limit = INFINITY;
	else
	{
		double		lo = 0,
					hi = 1;		/* entry_bound(hi) > tau, once found */

		while (!(entry_bound(cs, hi, 0, cache->max_mag) > tau))
			hi *= 4;
		for (int it = 0; it < 64 && hi - lo > 1e-12 * hi; it++)
		{
			double		mid = lo + (hi - lo) / 2;

			if (entry_bound(cs, mid, 0, cache->max_mag) > tau)
				hi = mid;
			else
				lo = mid;
		}
		a2_limit = hi;
	}
	INSTR_TIME_SET_CURRENT(t1);
	cs->ms_seeds = INSTR_TIME_GET_MILLISEC(t1) - INSTR_TIME_GET_MILLISEC(t0);
	t0 = t1;

	/* staged: the entries that may be within tau go on, cut by cut */
	if (staged)
	{
		if (!ff_a2_refine_pass(&fq, cuts, cache->codes, stride, n, cache->err, cache->yh2, cache->cut_head2,
							   cache->cut_tail, a2_limit, cs->threads, cs->a2, chunk_min, &cs->refine, &err))
			raise_pass_error(&err, index);
		INSTR_TIME_SET_CURRENT(t1);
		cs->ms_refine = INSTR_TIME_GET_MILLISEC(t1) - INSTR_TIME_GET_MILLISEC(t0);
		t0 = t1;
	}
	pfree(yq);
	pfree(fq.wq);

	/*
	 * The candidates' bounds; within tau into the heap, the rest cold or
	 * lazy. A chunk whose least a2 reaches a2_limit stays lazy whole (a seed
	 * in it lowers lazy_a2 at most: a weaker bound, never a wrong one).
	 */
	cs->candidates = 0;
	cs->cold_min = INFINITY;
	for (int64 c = 0; c < nchunks; c++)
	{
		int64		end = Min(n, (c + 1) * FF_PASS_CHUNK);

		if (chunk_min[c] >= a2_limit)
		{
			lazy_a2 = Min(lazy_a2, chunk_min[c]);
			continue;
		}
		for (int64 i = c * FF_PASS_CHUNK; i < end; i++)
		{
			if (cs->state[i] == ENTRY_SEED)
				continue;
			if (cs->a2[i] >= a2_limit)
			{
				lazy_a2 = Min(lazy_a2, cs->a2[i]);
				continue;
			}
			cs->candidates++;
			cs->bound[i] = bound_of(cs, i);
			if (cs->bound[i] <= tau)
			{
				cs->bounds[cs->nbounds].bound = cs->bound[i];
				cs->bounds[cs->nbounds].entry = (uint32) i;
				cs->nbounds++;
				cs->state[i] = ENTRY_HEAP;
			}
			else
			{
				cs->state[i] = ENTRY_COLD;
				cs->cold_min = Min(cs->cold_min, cs->bound[i]);
			}
		}
	}
	pfree(chunk_min);
	if (n > FLAT_START_MIN && cs->candidates > n / 2)
	{
		cs->hot = cs->candidates;
		return true;
	}
	INSTR_TIME_SET_CURRENT(t1);
	cs->ms_hot = INSTR_TIME_GET_MILLISEC(t1) - INSTR_TIME_GET_MILLISEC(t0);
	cs->hot = cs->nbounds;
	for (int64 i = cs->nbounds / 2 - 1; i >= 0; i--)
		bounds_sift_down(cs->bounds, cs->nbounds, i);
	cs->ncold = n - nseeds - cs->nbounds;
	/* a lazy entry's bound is at least the least bound its a2 allows */
	cs->lazy_min = isfinite(lazy_a2) ? entry_bound(cs, lazy_a2, 0, cache->max_mag) : INFINITY;
	cs->cold_min = Min(cs->cold_min, cs->lazy_min);
	return false;
}

/* Step 2: the next REFINE_BATCH entries of least bound get their exact keys. */
static void
refine_batch(CodeScan *cs, const ImgsKeyQuery *query)
{
	uint32		slots[REFINE_BATCH];
	double		keys[REFINE_BATCH];
	ImgsSlotHeader headers[REFINE_BATCH];
	int			n = 0;

	while (n < REFINE_BATCH && cs->nbounds > 0)
	{
		slots[n++] = cs->cache->slots[cs->bounds[0].entry];
		cs->bounds[0] = cs->bounds[--cs->nbounds];
		if (cs->nbounds > 0)
			bounds_sift_down(cs->bounds, cs->nbounds, 0);
	}
	imgs_store_keys(&cs->store, slots, n, query, keys, headers);
	for (int i = 0; i < n; i++)
		if (headers[i].state == IMGS_SLOT_LIVE)
			ready_push(cs, keys[i], slots[i], &headers[i].tid);
	cs->refined += n;
}

static bool
code_scan_next(FaissflatScanOpaque so, IndexScanDesc scan)
{
	CodeScan   *cs = &so->codes;

	for (;;)
	{
		/* strictly below every bound left: no other row comes before it */
		if (cs->nready > 0 && cs->ready[0].key < least_bound(cs))
		{
			ImgsCandidate c = imgs_min_heap_pop(cs->ready, &cs->nready);

			return imgs_scan_return(scan, &so->ss, c.key, c.slot, &c.tid);
		}
		if (cs->nbounds == 0 && cs->ncold == 0)
		{
			/* nothing left to refine: the ready rows, in order (NaN keys last) */
			if (cs->nready == 0)
				return false;
			{
				ImgsCandidate c = imgs_min_heap_pop(cs->ready, &cs->nready);

				return imgs_scan_return(scan, &so->ss, c.key, c.slot, &c.tid);
			}
		}
		/* the next row may lie beyond tau: the cold entries join the heap */
		if (cs->ncold > 0 && (cs->nbounds == 0 || !(cs->bounds[0].bound < cs->cold_min)))
			warm_cold_entries(cs);
		if (cs->refined >= cs->flat_switch)
		{
			/* step 3: flat passes from the last row returned */
			cs->switched = true;
			imgs_store_close(&cs->store);
			so->use_codes = false;
			imgs_flat_scan_start(&so->flat, scan, &so->ss, &faissflat_am, &so->meta);
			return imgs_flat_scan_next(&so->flat, scan, &so->ss);
		}
		refine_batch(cs, &so->ss.query.keys);
	}
}

IndexScanDesc
faissflat_beginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = imgs_scan_begin(index, nkeys, norderbys);
	FaissflatScanOpaque so = palloc0(sizeof(FaissflatScanOpaqueData));

	so->ctx = AllocSetContextCreate(CurrentMemoryContext, "faissflat scan",
									ALLOCSET_DEFAULT_SIZES);
	scan->opaque = so;
	return scan;
}

void
faissflat_rescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	MemoryContext old_ctx;

	MemoryContextReset(so->ctx);
	so->started = false;
	so->use_codes = false;
	memset(&so->codes, 0, sizeof(so->codes));
	old_ctx = MemoryContextSwitchTo(so->ctx);
	imgs_scan_rescan(scan, &so->ss, keys, orderbys, "faissflat");
	MemoryContextSwitchTo(old_ctx);
}

bool
faissflat_gettuple(IndexScanDesc scan, ScanDirection dir)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	MemoryContext old_ctx = MemoryContextSwitchTo(so->ctx);
	bool		found;

	if (so->ss.done)
	{
		MemoryContextSwitchTo(old_ctx);
		return false;
	}
	if (!so->started)
	{
		FaissflatMeta codes;

		faissflat_read_meta_codes(scan->indexRelation, &so->meta, &codes);
		imgs_scan_start(scan, &so->ss, &so->meta);
		so->use_codes = faissflat_codes && codes.dims > 0 && !so->ss.query.isnull && so->ss.query.keys.n_pos == 0 &&
			((so->ss.query.strategy == IMGS_STRATEGY_L2 && so->meta.metric == IMGS_METRIC_L2) ||
			 (so->ss.query.strategy == IMGS_STRATEGY_COSINE && so->meta.metric == IMGS_METRIC_COSINE));
		if (so->use_codes)
		{
			if (code_scan_start(so, scan, &codes))
			{
				/* the filter cannot pay: flat passes (no row returned yet) */
				so->codes.switched = true;
				so->use_codes = false;
				imgs_flat_scan_start(&so->flat, scan, &so->ss, &faissflat_am, &so->meta);
			}
		}
		else
			imgs_flat_scan_start(&so->flat, scan, &so->ss, &faissflat_am, &so->meta);
		so->started = true;
	}
	if (so->use_codes)
		found = code_scan_next(so, scan);
	else
		found = imgs_flat_scan_next(&so->flat, scan, &so->ss);
	MemoryContextSwitchTo(old_ctx);
	return found;
}

void
faissflat_endscan(IndexScanDesc scan)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;

	if (so->started && (so->use_codes || so->codes.switched))
		elog(DEBUG1, "faissflat codes scan of \"%s\": %lld rows, %lld entries, %lld candidates "
			 "(SQ8 over %d dimensions, %s kernel, %d thread%s), %lld within tau %g, "
			 "%lld exact keys%s; start ms: cache %.2f, codes %.2f, seeds %.2f, within tau %.2f",
			 RelationGetRelationName(scan->indexRelation), (long long) so->ss.returned,
			 (long long) so->codes.nentries, (long long) so->codes.candidates,
			 so->codes.cache->pca.m, ff_dots_kernel() == 2 ? "AVX-512" : ff_dots_kernel() == 1 ? "AVX2" : "portable",
			 so->codes.threads, so->codes.threads == 1 ? "" : "s",
			 (long long) so->codes.hot, so->codes.tau,
			 (long long) so->codes.refined, so->codes.switched ? ", then flat passes" : "",
			 so->codes.ms_cache, so->codes.ms_codes, so->codes.ms_seeds, so->codes.ms_hot);
	if (so->started && so->codes.staged)
	{
		const FfRefineStats *r = &so->codes.refine;
		int			ncuts = so->codes.cache->ncuts;
		StringInfoData buf;

		initStringInfo(&buf);
		for (int k = 1; k < ncuts; k++)
			appendStringInfo(&buf, "%s%lld to %d", k > 1 ? ", " : "", (long long) r->entries[k], FF_CUT_FIRST << k);
		for (int k = 0; k < ncuts; k++)
			if (r->chunks[k] > 0)
				appendStringInfo(&buf, ", %lld chunk%s whole past %d", (long long) r->chunks[k],
								 r->chunks[k] == 1 ? "" : "s", FF_CUT_FIRST << k);
		elog(DEBUG1, "faissflat staged pass of \"%s\": %lld of %lld entries past the first %d dimensions: %s%s%lld "
			 "whole; ms %.2f", RelationGetRelationName(scan->indexRelation), (long long) r->passed,
			 (long long) so->codes.nentries, FF_CUT_FIRST, buf.data, buf.len > 0 ? ", " : "",
			 (long long) r->entries[ncuts], so->codes.ms_refine);
		pfree(buf.data);
	}

	MemoryContextDelete(so->ctx);
	pfree(so);
	scan->opaque = NULL;
}

/*
 * The build's sample searches (faissflat_build.c, imgs_sample_searches):
 * adds the scan's exact keys computed, and 1 where it went on with flat
 * passes, to arg (double[2]).
 */
void
faissflat_scan_tally(IndexScanDesc scan, void *arg)
{
	FaissflatScanOpaque so = (FaissflatScanOpaque) scan->opaque;
	double	   *sums = arg;

	sums[0] += so->codes.refined;
	sums[1] += so->codes.switched ? 1 : 0;
	if (so->codes.staged && so->codes.nentries > 0)
	{
		sums[2] += (double) so->codes.refine.passed / so->codes.nentries;
		sums[3] += 1;
	}
}

/*
 * faissflat_store_keys(index regclass, slots int8[], query imgfeat)
 *   RETURNS TABLE (slot int8, live bool, heap_tid tid, key float8)
 *
 * A test hook (superuser only) for the shared re-rank call, imgs_store_keys,
 * which faissflat's own scan does not use: the header and key (for the
 * index's metric; L2 when it serves several) of each slot, as a method that
 * names slots would re-rank them. key is NULL for a slot that is not live.
 */
PG_FUNCTION_INFO_V1(faissflat_store_keys);
Datum
faissflat_store_keys(PG_FUNCTION_ARGS)
{
	Oid			indexoid = PG_GETARG_OID(0);
	ArrayType  *array = PG_GETARG_ARRAYTYPE_P(1);
	ImgFeat    *q = PG_GETARG_IMGFEAT_P(2);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	index;
	ImgsIndexMeta meta;
	ImgsStoreReader reader;
	ImgsKeyQuery query = {0};
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	uint32	   *slots;
	double	   *keys;
	ImgsSlotHeader *headers;

	InitMaterializedSRF(fcinfo, 0);
	index = index_open(indexoid, AccessShareLock);
	if (index->rd_indam->ambuild != faissflat_build)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a faissflat index", RelationGetRelationName(index))));
	deconstruct_array(array, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &elem_nulls, &n);
	faissflat_read_meta(index, &meta);
	if (meta.store.dim != 0 && meta.store.dim != (uint32) q->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different imgfeat dimensions %u and %d", meta.store.dim, q->dim)));
	slots = palloc(sizeof(uint32) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		int64		s = elem_nulls[i] ? -1 : DatumGetInt64(elems[i]);

		if (s < 0 || s >= (int64) meta.store.nslots)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("index \"%s\" has no slot " INT64_FORMAT,
							RelationGetRelationName(index), s)));
		slots[i] = (uint32) s;
	}
	keys = palloc(sizeof(double) * Max(n, 1));
	headers = palloc(sizeof(ImgsSlotHeader) * Max(n, 1));
	query.metric = meta.metric != 0 ? meta.metric : IMGS_METRIC_L2;
	query.x = q->x;
	query.norm_sq = imgs_norm_squared(q->x, q->dim);
	imgs_store_open(&reader, index, &faissflat_am, &meta);
	if (n > 0 && meta.store.dim > 0)
		imgs_store_keys(&reader, slots, n, &query, keys, headers);
	imgs_store_close(&reader);

	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		ItemPointer tid = palloc(sizeof(ItemPointerData));

		*tid = headers[i].tid;
		values[0] = Int64GetDatum(slots[i]);
		values[1] = BoolGetDatum(headers[i].state == IMGS_SLOT_LIVE);
		values[2] = PointerGetDatum(tid);
		nulls[2] = headers[i].state != IMGS_SLOT_LIVE;
		values[3] = Float8GetDatum(keys[i]);
		nulls[3] = headers[i].state != IMGS_SLOT_LIVE;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	index_close(index, AccessShareLock);
	PG_RETURN_NULL();
}
