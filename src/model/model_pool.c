/*
 * model_pool.c — the model workers (model_pool.h): shared memory, the
 * request queue, the workers' loop, and the backend's side of a request.
 *
 * A request is a DSM segment the backend creates: a PoolRequest header, the
 * image bytes, and an shm_mq on which the worker sends one PoolResponse
 * (the feature, or an error with its SQLSTATE). The queue holds segment
 * handles and request ids, two FIFOs: interactive first, then background.
 *  - The backend waits in shm_mq_receive, which serves interrupts: a cancel
 *    or statement_timeout ends the wait at once, and the segment goes with
 *    the backend's resources. A worker that later takes the request finds no
 *    segment (or a detached queue) and drops it: nothing waits for it.
 *  - A worker that exits while it serves a request detaches from the queue:
 *    the backend gets SHM_MQ_DETACHED and a clean ERROR, never a hang. The
 *    postmaster restarts the worker (bgw_restart_time); a worker killed by a
 *    signal makes PostgreSQL restart every session (its rule).
 *  - No C++ frame here: the model's entry points (model_core.h) report
 *    errors in an ImgsError, which the worker ships as it is.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "storage/shm_mq.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "storage/fd.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "model/model.h"
#include "model/model_pool.h"

#define POOL_MAX_WORKERS	32
#define POOL_QUEUE_LEN		1024	/* per priority */
#define POOL_MAX_DIMS		16000	/* imgfeat's limit */
#define POOL_METADATA_LEN	2048	/* the export's JSON (about 300 bytes) */

typedef struct PoolQueue
{
	int			head;			/* next to take */
	int			count;
	dsm_handle	handles[POOL_QUEUE_LEN];
	uint64		ids[POOL_QUEUE_LEN];
} PoolQueue;

typedef struct PoolWorker
{
	pid_t		pid;			/* 0: not running */
	Latch	   *latch;
	bool		busy;
	bool		loading;		/* loading a model */
	uint64		served;			/* requests answered with a feature */
	uint64		failed;			/* requests answered with an error */
	uint64		dropped;		/* requests whose caller had left */
	double		load_seconds;	/* of its current model */
	int			dims;			/* its current model's output */
	uint64		generation;		/* its loads, counted (a new file is a new load) */
	char		model[MAXPGPATH];	/* its current model, "" before the first */
	char		metadata[POOL_METADATA_LEN];	/* the model's, "" if longer */
} PoolWorker;

typedef struct ImgsPool
{
	slock_t		mutex;
	int			nworkers;
	uint64		next_id;
	PoolQueue	queues[2];		/* [0] interactive, [1] background */
	PoolWorker	workers[POOL_MAX_WORKERS];
} ImgsPool;

/* The request segment: this header, then the image, then the response queue. */
typedef struct PoolRequest
{
	uint64		id;
	bool		has_box;
	int32		box[4];
	int64		max_pixels;
	int64		max_memory;
	char		model[MAXPGPATH];
	Size		image_len;
	Size		image_offset;
	Size		mq_offset;
} PoolRequest;

/* What a worker answers: this header, then dims floats. */
typedef struct PoolResponse
{
	ImgsError	err;			/* sqlstate "" when it worked */
	int32		dims;
} PoolResponse;

/* An ImgsError filled on the C side (the C++ side has imgs::set_error). */
static void
set_error(ImgsError *err, const char *sqlstate, const char *message)
{
	strlcpy(err->sqlstate, sqlstate, sizeof(err->sqlstate));
	strlcpy(err->message, message, sizeof(err->message));
	err->detail[0] = '\0';
}

#define POOL_MQ_SIZE	MAXALIGN(sizeof(PoolResponse) + sizeof(float) * POOL_MAX_DIMS + 1024)

static int	model_workers = 2;
static int	model_worker_threads = 0;	/* 0: the cores shared among the workers */
static bool model_in_backend = false;
static int	model_priority = 0;		/* 0 interactive, 1 background: its queue */

static const struct config_enum_entry model_priority_options[] = {
	{"interactive", 0, false},
	{"background", 1, false},
	{NULL, 0, false}
};
static bool pool_preloaded = false;
static ImgsPool *pool = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
pool_shmem_size(void)
{
	return MAXALIGN(sizeof(ImgsPool));
}

static void
pool_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(pool_shmem_size());
}

static void
pool_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pool = ShmemInitStruct("imgsearch model pool", pool_shmem_size(), &found);
	if (!found)
	{
		memset(pool, 0, sizeof(*pool));
		SpinLockInit(&pool->mutex);
		pool->nworkers = model_workers;
		pool->next_id = 1;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
imgs_model_pool_init(void)
{
	/* a server-start setting can only be defined while preloading (else FATAL) */
	if (process_shared_preload_libraries_in_progress)
		DefineCustomIntVariable("imgsearch.model_workers",
								"Model workers: background workers that run vgg16_features() for every session.",
								"Exists with imgsearch in shared_preload_libraries; 0 runs the model in each backend "
								"that calls it. Each worker runs imgsearch.threads intra-op threads.",
								&model_workers,
								2, 0, POOL_MAX_WORKERS,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
	DefineCustomIntVariable("imgsearch.model_worker_threads",
							"Intra-op threads of each model worker.",
							"0 (the default) shares the cores among the workers: cores / imgsearch.model_workers, "
							"at least 1 (measured here: 2 workers x 1 thread answer a burst of 12 searches "
							"in 0.4x the time of 1 worker x 2 threads).",
							&model_worker_threads,
							0, 0, 64,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("imgsearch.model_in_backend",
							 "Run vgg16_features() in this backend even where model workers serve it.",
							 "The backend then loads libtorch and the model itself (about 0.8 s and 270 MB).",
							 &model_in_backend,
							 false,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("imgsearch.model_priority",
							 "Queue of this session's vgg16_features requests to the model workers.",
							 "interactive (searches) is served before background (bulk loads): "
							 "a search never waits behind a load's backlog.",
							 &model_priority,
							 0,
							 model_priority_options,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;
	pool_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pool_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pool_shmem_startup;

	/* the model workers, the ingest launcher, and room for one ingest worker and parallel query */
	if (model_workers + 2 > max_worker_processes)
		ereport(WARNING,
				(errmsg("imgsearch.model_workers = %d needs max_worker_processes of at least %d (it is %d)",
						model_workers, model_workers + 2, max_worker_processes),
				 errhint("Raise max_worker_processes: workers past it never start.")));
	for (int i = 0; i < model_workers; i++)
	{
		BackgroundWorker worker;

		memset(&worker, 0, sizeof(worker));
		/* a connection to no database: in pg_stat_activity, pg_terminate_backend works */
		worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
		worker.bgw_start_time = BgWorkerStart_ConsistentState;
		worker.bgw_restart_time = 1;
		snprintf(worker.bgw_library_name, BGW_MAXLEN, "imgsearch");
		snprintf(worker.bgw_function_name, BGW_MAXLEN, "imgs_model_worker_main");
		snprintf(worker.bgw_name, BGW_MAXLEN, "imgsearch model worker %d", i);
		snprintf(worker.bgw_type, BGW_MAXLEN, "imgsearch model worker");
		worker.bgw_main_arg = Int32GetDatum(i);
		RegisterBackgroundWorker(&worker);
	}
}

bool
imgs_model_pool_background(void)
{
	return model_priority == 1;
}

bool
imgs_model_pool_active(void)
{
	return pool_preloaded && pool != NULL && pool->nworkers > 0 && !model_in_backend;
}

/* ---------------------------------------------------------------------------
 * The backend's side
 */

/* Wakes the idle workers (all of them: whichever comes first takes it). */
static void
wake_workers(void)
{
	Latch	   *latches[POOL_MAX_WORKERS];
	int			n = 0;

	SpinLockAcquire(&pool->mutex);
	for (int i = 0; i < pool->nworkers; i++)
		if (pool->workers[i].pid != 0 && !pool->workers[i].busy && pool->workers[i].latch)
			latches[n++] = pool->workers[i].latch;
	SpinLockRelease(&pool->mutex);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

int
imgs_model_pool_extract(const char *model_path, const char *data, Size len, const int32 *box,
						int64 max_pixels, int64 max_memory, bool background, float *out, int out_cap)
{
	Size		image_offset = MAXALIGN(sizeof(PoolRequest));
	Size		mq_offset = MAXALIGN(image_offset + len);
	dsm_segment *seg;
	PoolRequest *req;
	shm_mq	   *mq;
	shm_mq_handle *mqh;
	PoolQueue  *queue;
	bool		queued = false;
	shm_mq_result res;
	Size		nbytes;
	void	   *msg;
	PoolResponse resp;

	/* refused before it is shipped: no image this large decodes within the limit */
	if ((int64) len > max_memory)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("image of %zu bytes is larger than imgsearch.max_decode_memory (%lld kB)",
						len, (long long) (max_memory / 1024))));

	seg = dsm_create(mq_offset + POOL_MQ_SIZE, 0);
	req = dsm_segment_address(seg);
	memset(req, 0, sizeof(*req));
	req->has_box = box != NULL;
	if (box)
		memcpy(req->box, box, sizeof(req->box));
	req->max_pixels = max_pixels;
	req->max_memory = max_memory;
	strlcpy(req->model, model_path, sizeof(req->model));
	req->image_len = len;
	req->image_offset = image_offset;
	req->mq_offset = mq_offset;
	memcpy((char *) req + image_offset, data, len);
	mq = shm_mq_create((char *) req + mq_offset, POOL_MQ_SIZE);
	shm_mq_set_receiver(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);

	SpinLockAcquire(&pool->mutex);
	queue = &pool->queues[background ? 1 : 0];
	if (queue->count < POOL_QUEUE_LEN)
	{
		int			tail = (queue->head + queue->count) % POOL_QUEUE_LEN;

		req->id = pool->next_id++;
		queue->handles[tail] = dsm_segment_handle(seg);
		queue->ids[tail] = req->id;
		queue->count++;
		queued = true;
	}
	SpinLockRelease(&pool->mutex);
	if (!queued)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many vgg16_features requests waiting for the model workers (%d)", POOL_QUEUE_LEN)));
	wake_workers();

	/* waits (serving interrupts) for a worker to take it and answer */
	pgstat_report_wait_start(PG_WAIT_EXTENSION);
	res = shm_mq_receive(mqh, &nbytes, &msg, false);
	pgstat_report_wait_end();
	if (res != SHM_MQ_SUCCESS)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the model worker serving this request exited before it answered"),
				 errhint("It is restarted; try again.")));
	if (nbytes < sizeof(PoolResponse))
		elog(ERROR, "model worker sent a response of %zu bytes", nbytes);
	memcpy(&resp, msg, sizeof(resp));
	if (resp.err.sqlstate[0] != '\0')
	{
		resp.err.sqlstate[5] = '\0';
		resp.err.message[IMGS_ERROR_TEXT_LEN - 1] = '\0';
		resp.err.detail[IMGS_ERROR_TEXT_LEN - 1] = '\0';
		dsm_detach(seg);
		imgs_raise_cxx_error(&resp.err);
	}
	if (resp.dims < 1 || resp.dims > out_cap || nbytes != sizeof(PoolResponse) + sizeof(float) * resp.dims)
		elog(ERROR, "model worker sent a feature of %d dimensions in %zu bytes", resp.dims, nbytes);
	memcpy(out, (char *) msg + sizeof(PoolResponse), sizeof(float) * resp.dims);
	dsm_detach(seg);
	return resp.dims;
}

/* ---------------------------------------------------------------------------
 * The worker
 */

static int	my_slot = -1;

static void
worker_detach_slot(int code, Datum arg)
{
	SpinLockAcquire(&pool->mutex);
	pool->workers[my_slot].pid = 0;
	pool->workers[my_slot].latch = NULL;
	pool->workers[my_slot].busy = false;
	SpinLockRelease(&pool->mutex);
}

/* The next request, interactive first; false when there is none. */
static bool
take_request(dsm_handle *handle, uint64 *id)
{
	bool		found = false;

	SpinLockAcquire(&pool->mutex);
	for (int p = 0; p < 2 && !found; p++)
	{
		PoolQueue  *q = &pool->queues[p];

		if (q->count == 0)
			continue;
		*handle = q->handles[q->head];
		*id = q->ids[q->head];
		q->head = (q->head + 1) % POOL_QUEUE_LEN;
		q->count--;
		found = true;
	}
	if (found)
		pool->workers[my_slot].busy = true;
	SpinLockRelease(&pool->mutex);
	return found;
}

/* The intra-op threads of a worker: the setting, or the cores shared among the workers. */
static int
worker_threads(void)
{
	int			cores = (int) sysconf(_SC_NPROCESSORS_ONLN);

	if (model_worker_threads > 0)
		return model_worker_threads;
	return Max(1, cores / Max(1, pool->nworkers));
}

/* imgs_model_verify_file's error, if any, into err: the worker answers with it. */
static bool
worker_verify_file(const char *path, ImgsError *err)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		ok = true;

	PG_TRY();
	{
		imgs_model_verify_file(path);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		set_error(err, unpack_sql_state(edata->sqlerrcode), edata->message);
		if (edata->detail)
			strlcpy(err->detail, edata->detail, sizeof(err->detail));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/* Makes path the worker's model (a no-op when it is already); false with err filled. */
static bool
worker_load(const char *path, ImgsModelInfo *info, ImgsError *err)
{
	PoolWorker *me = &pool->workers[my_slot];

	if (!is_absolute_path(path))
	{
		set_error(err, IMGS_SQLSTATE_NOT_CONFIGURED, "imgsearch.model must be an absolute path");
		return false;
	}
	SpinLockAcquire(&pool->mutex);
	me->loading = strcmp(me->model, path) != 0;
	SpinLockRelease(&pool->mutex);
	if (!worker_verify_file(path, err) || !imgs_model_get_api()->load(path, worker_threads(), info, err))
	{
		SpinLockAcquire(&pool->mutex);
		me->loading = false;
		SpinLockRelease(&pool->mutex);
		return false;
	}
	SpinLockAcquire(&pool->mutex);
	strlcpy(me->model, path, sizeof(me->model));
	me->load_seconds = info->load_seconds;
	me->dims = info->dims;
	me->generation = info->generation;
	me->loading = false;
	if (strlen(info->metadata) < sizeof(me->metadata))
		strlcpy(me->metadata, info->metadata, sizeof(me->metadata));
	else
		me->metadata[0] = '\0';
	SpinLockRelease(&pool->mutex);
	return true;
}

/*
 * Loads the model of the server's configuration, if any, before requests
 * come: no request waits for a load after the server is up. A model that
 * does not load is reported in the log; requests then report it too.
 */
static void
worker_preload(void)
{
	ImgsModelInfo info;
	ImgsError	err;

	if (imgs_model_path()[0] == '\0')
		return;
	if (!worker_load(imgs_model_path(), &info, &err))
		ereport(LOG,
				(errmsg("imgsearch model worker could not load model \"%s\": %s", imgs_model_path(), err.message)));
}

/* Runs the request in seg; fills resp and out. Never raises for what the model reports. */
static void
run_request(const PoolRequest *req, PoolResponse *resp, float *out)
{
	const ImgsModelApi *api = imgs_model_get_api();
	ImgsModelInfo info;
	float	   *input = palloc(sizeof(float) * IMGS_MODEL_INPUT_FLOATS);

	memset(resp, 0, sizeof(*resp));
	if (worker_load(req->model, &info, &resp->err))
	{
		if (info.dims > POOL_MAX_DIMS)
			set_error(&resp->err, IMGS_SQLSTATE_PROGRAM_LIMIT, "the model's features have too many dimensions");
		else if (api->preprocess((const char *) req + req->image_offset, req->image_len,
								 req->has_box ? req->box : NULL, req->max_pixels, req->max_memory,
								 input, &resp->err) &&
				 api->forward(input, 1, worker_threads(), out, &resp->err))
			resp->dims = info.dims;
	}
	pfree(input);
}

void
imgs_model_worker_main(Datum arg)
{
	float	   *out;
	PoolResponse *resp;
	char	   *msg;

	my_slot = DatumGetInt32(arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "imgsearch model worker");

	SpinLockAcquire(&pool->mutex);
	pool->workers[my_slot].pid = MyProcPid;
	pool->workers[my_slot].latch = &MyProc->procLatch;
	pool->workers[my_slot].busy = false;
	SpinLockRelease(&pool->mutex);
	before_shmem_exit(worker_detach_slot, (Datum) 0);

	msg = MemoryContextAlloc(TopMemoryContext, sizeof(PoolResponse) + sizeof(float) * POOL_MAX_DIMS);
	resp = (PoolResponse *) msg;
	out = (float *) (msg + sizeof(PoolResponse));
	worker_preload();

	for (;;)
	{
		dsm_handle	handle;
		uint64		id;
		dsm_segment *seg;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			worker_preload();	/* a new imgsearch.model loads now, not at the next request */
		}
		if (!take_request(&handle, &id))
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000L,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}

		seg = dsm_attach(handle);
		if (seg != NULL && ((PoolRequest *) dsm_segment_address(seg))->id == id)
		{
			PoolRequest *req = dsm_segment_address(seg);
			shm_mq	   *mq = (shm_mq *) ((char *) req + req->mq_offset);
			shm_mq_handle *mqh;
			shm_mq_result res;

			shm_mq_set_sender(mq, MyProc);
			mqh = shm_mq_attach(mq, seg, NULL);
			run_request(req, resp, out);
			res = shm_mq_send(mqh, sizeof(PoolResponse) + sizeof(float) * Max(resp->dims, 0), msg, false, true);
			SpinLockAcquire(&pool->mutex);
			if (res != SHM_MQ_SUCCESS)
				pool->workers[my_slot].dropped++;
			else if (resp->dims > 0)
				pool->workers[my_slot].served++;
			else
				pool->workers[my_slot].failed++;
			SpinLockRelease(&pool->mutex);
		}
		else
		{
			/* the caller left before we came */
			SpinLockAcquire(&pool->mutex);
			pool->workers[my_slot].dropped++;
			SpinLockRelease(&pool->mutex);
		}
		if (seg != NULL)
			dsm_detach(seg);
		SpinLockAcquire(&pool->mutex);
		pool->workers[my_slot].busy = false;
		SpinLockRelease(&pool->mutex);
	}
}

bool
imgs_model_pool_info(const char *model_path, int *dims, char *metadata, Size metadata_len,
					 double *load_seconds, uint64 *generation)
{
	bool		found = false;

	if (!imgs_model_pool_active())
		return false;
	SpinLockAcquire(&pool->mutex);
	for (int i = 0; i < pool->nworkers && !found; i++)
	{
		PoolWorker *w = &pool->workers[i];

		if (w->pid != 0 && w->dims > 0 && strcmp(w->model, model_path) == 0 &&
			strlen(w->metadata) < metadata_len)
		{
			*dims = w->dims;
			strlcpy(metadata, w->metadata, metadata_len);
			*load_seconds = w->load_seconds;
			/* a restarted worker counts loads from 1 again: its pid tells them apart */
			*generation = ((uint64) w->pid << 32) ^ w->generation;
			found = true;
		}
	}
	SpinLockRelease(&pool->mutex);
	return found;
}

/* ---------------------------------------------------------------------------
 * imgsearch_model_workers()
 */

/* Resident memory of a process in MB, from /proc; NaN where it cannot be read. */
static double
resident_mb(pid_t pid)
{
	char		path[64];
	FILE	   *f;
	long		size,
				resident;
	double		mb = get_float8_nan();

	snprintf(path, sizeof(path), "/proc/%d/statm", (int) pid);
	f = AllocateFile(path, "r");
	if (f == NULL)
		return mb;
	if (fscanf(f, "%ld %ld", &size, &resident) == 2)
		mb = (double) resident * sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
	FreeFile(f);
	return mb;
}

PG_FUNCTION_INFO_V1(imgsearch_model_workers);
Datum
imgsearch_model_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PoolWorker	workers[POOL_MAX_WORKERS];
	int			nworkers;
	int			queued[2];

	InitMaterializedSRF(fcinfo, 0);
	if (!pool_preloaded || pool == NULL)
		return (Datum) 0;		/* no pool: no rows */
	SpinLockAcquire(&pool->mutex);
	nworkers = pool->nworkers;
	memcpy(workers, pool->workers, sizeof(PoolWorker) * nworkers);
	queued[0] = pool->queues[0].count;
	queued[1] = pool->queues[1].count;
	SpinLockRelease(&pool->mutex);

	for (int i = 0; i < nworkers; i++)
	{
		PoolWorker *w = &workers[i];
		Datum		values[11];
		bool		nulls[11] = {false};

		values[0] = Int32GetDatum(i);
		values[1] = Int32GetDatum((int32) w->pid);
		nulls[1] = w->pid == 0;
		values[2] = CStringGetTextDatum(w->pid == 0 ? "starting" : w->loading ? "loading" : w->busy ? "busy" : "idle");
		values[3] = Int64GetDatum((int64) w->served);
		values[4] = Int64GetDatum((int64) w->failed);
		values[5] = Int64GetDatum((int64) w->dropped);
		values[6] = Int32GetDatum(queued[0]);
		values[7] = Int32GetDatum(queued[1]);
		values[8] = CStringGetTextDatum(w->model);
		nulls[8] = w->model[0] == '\0';
		values[9] = Float8GetDatum(w->load_seconds);
		nulls[9] = w->model[0] == '\0';
		values[10] = Float8GetDatum(w->pid == 0 ? 0 : resident_mb(w->pid));
		nulls[10] = w->pid == 0 || isnan(DatumGetFloat8(values[10]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
