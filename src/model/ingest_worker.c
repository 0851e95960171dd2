/*
 * ingest_worker.c — the ingest launcher and the ingest workers (sql/ingest.sql,
 * docs/ingest.md).
 *
 * The launcher (a static background worker, with imgsearch in
 * shared_preload_libraries) starts imgsearch.ingest_workers ingest workers
 * per database: at its own start for every database that accepts
 * connections, later when imgsearch_ingest_start (imgsearch_ingest_wake)
 * asks for them, and again when a worker that had work exits (terminated,
 * or failed). A worker whose database has no registration (or no imgsearch)
 * exits and says so, and the launcher leaves that database alone until
 * asked. Several workers of one database share its tables through FOR
 * UPDATE SKIP LOCKED: each waits on its own image at the model workers, so
 * that two workers keep two model workers busy. Worker 0 stays while the
 * database has registrations; the others run only while there is work (a
 * round of worker 0 found rows), and leave after a round that found none:
 * an idle database holds one max_worker_processes slot.
 *
 * A worker loops over its database's registrations: each round one batch per
 * table, one transaction, as the table's owner (SET ROLE: triggers and
 * permissions are the owner's, never the worker's), through
 * imgsearch_ingest_batch, whose vgg16_features calls go to the model workers
 * at background priority. Rows that failed are recorded with their SQLSTATE
 * in imgsearch_ingest_errors; an error that is not a row's ends the round,
 * which is retried after a growing pause (1 s to 1 min), never in a tight loop.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "model/ingest_worker.h"

#define INGEST_MAX_DBS	64
#define INGEST_MAX_WORKERS 8	/* per database */

typedef struct IngestDb
{
	Oid			dboid;			/* InvalidOid: a free entry */
	bool		wanted;			/* start (or keep) its workers */
	bool		idle_exit;		/* a worker exited: nothing registered */
	bool		busy;			/* a round found rows to do: start the others */
	pid_t		pid[INGEST_MAX_WORKERS];	/* its workers, 0 if none */
} IngestDb;

typedef struct IngestShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	IngestDb	dbs[INGEST_MAX_DBS];
} IngestShared;

static IngestShared *ingest = NULL;
static bool ingest_preloaded = false;
static int	ingest_workers = 2;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
ingest_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(IngestShared)));
}

static void
ingest_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ingest = ShmemInitStruct("imgsearch ingest", sizeof(IngestShared), &found);
	if (!found)
	{
		memset(ingest, 0, sizeof(*ingest));
		SpinLockInit(&ingest->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

void
imgs_ingest_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("imgsearch.ingest_workers",
							"Ingest workers per database with a registered table.",
							"Each fills rows one image at a time through the model workers; "
							"as many as imgsearch.model_workers keeps them all busy.",
							&ingest_workers,
							2, 1, INGEST_MAX_WORKERS,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);
	ingest_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ingest_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ingest_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "imgsearch");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "imgs_ingest_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "imgsearch ingest launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "imgsearch ingest launcher");
	RegisterBackgroundWorker(&worker);
}

/* The entry of dboid, made if need be (NULL when the table is full); mutex held. */
static IngestDb *
db_entry(Oid dboid)
{
	IngestDb   *free_entry = NULL;

	for (int i = 0; i < INGEST_MAX_DBS; i++)
	{
		if (ingest->dbs[i].dboid == dboid)
			return &ingest->dbs[i];
		if (ingest->dbs[i].dboid == InvalidOid && free_entry == NULL)
			free_entry = &ingest->dbs[i];
	}
	if (free_entry)
	{
		memset(free_entry, 0, sizeof(*free_entry));
		free_entry->dboid = dboid;
	}
	return free_entry;
}

/* Asks the launcher for this database's worker (mutex not held). */
static void
wake_launcher(void)
{
	IngestDb   *db;
	Latch	   *latch;

	SpinLockAcquire(&ingest->mutex);
	db = db_entry(MyDatabaseId);
	if (db)
	{
		db->wanted = true;
		db->idle_exit = false;
	}
	latch = ingest->launcher_latch;
	SpinLockRelease(&ingest->mutex);
	if (db == NULL)
		ereport(WARNING,
				(errmsg("imgsearch ingest serves at most %d databases", INGEST_MAX_DBS)));
	if (latch)
		SetLatch(latch);
}

/*
 * The wake waits for the commit: a worker started before the registration
 * is visible would find nothing and leave.
 */
static bool wake_at_commit = false;

static void
ingest_xact_callback(XactEvent event, void *arg)
{
	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT)
	{
		wake_at_commit = false;
		wake_launcher();
	}
	else if (event == XACT_EVENT_ABORT)
		wake_at_commit = false;
}

PG_FUNCTION_INFO_V1(imgsearch_ingest_wake);
Datum
imgsearch_ingest_wake(PG_FUNCTION_ARGS)
{
	static bool callback_registered = false;

	if (!ingest_preloaded || ingest == NULL)
	{
		ereport(NOTICE,
				(errmsg("no ingest worker runs: imgsearch is not in shared_preload_libraries"),
				 errhint("Add shared_preload_libraries = 'imgsearch' to postgresql.conf and restart; "
						 "until then imgsearch_ingest_batch(table, n) fills features by hand.")));
		PG_RETURN_VOID();
	}
	if (!callback_registered)
	{
		RegisterXactCallback(ingest_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------------
 * The launcher
 */

static BackgroundWorkerHandle *worker_handles[INGEST_MAX_DBS][INGEST_MAX_WORKERS];

/* Worker n of the database in slot; its main argument is slot * INGEST_MAX_WORKERS + n. */
static void
start_worker(int slot, int n)
{
	BackgroundWorker worker;
	Oid			dboid = ingest->dbs[slot].dboid;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does */
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "imgsearch");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "imgs_ingest_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "imgsearch ingest worker %d for database %u", n, dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "imgsearch ingest worker");
	worker.bgw_main_arg = Int32GetDatum(slot * INGEST_MAX_WORKERS + n);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &worker_handles[slot][n]))
	{
		worker_handles[slot][n] = NULL;
		ereport(LOG, (errmsg("imgsearch ingest launcher could not start a worker for database %u "
							 "(max_worker_processes?)", dboid)));
	}
}

/* Whether database dboid still exists and accepts connections. */
static bool
database_exists(Oid dboid)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!found && HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);

		found = d->oid == dboid && d->datallowconn;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

/* Every database that accepts connections, wanted once at the launcher's start. */
static void
want_every_database(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		IngestDb   *db;

		if (!d->datallowconn || d->datistemplate)
			continue;
		SpinLockAcquire(&ingest->mutex);
		db = db_entry(d->oid);
		if (db && !db->idle_exit)
			db->wanted = true;
		SpinLockRelease(&ingest->mutex);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
}

PGDLLEXPORT void imgs_ingest_launcher_main(Datum arg);
void
imgs_ingest_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&ingest->mutex);
	ingest->launcher_latch = MyLatch;
	/* workers of an earlier launcher are gone or will be found by their pids */
	for (int i = 0; i < INGEST_MAX_DBS; i++)
		ingest->dbs[i].idle_exit = false;
	SpinLockRelease(&ingest->mutex);
	want_every_database();

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		for (int i = 0; i < INGEST_MAX_DBS; i++)
		{
			bool		start[INGEST_MAX_WORKERS] = {false};
			bool		any = false;

			for (int n = 0; n < INGEST_MAX_WORKERS; n++)
			{
				pid_t		pid = 0;

				if (worker_handles[i][n] == NULL)
					continue;
				if (GetBackgroundWorkerPid(worker_handles[i][n], &pid) == BGWH_STOPPED)
				{
					pfree(worker_handles[i][n]);
					worker_handles[i][n] = NULL;
				}
				else if (n >= ingest_workers)
					TerminateBackgroundWorker(worker_handles[i][n]);	/* the setting went down */
			}
			SpinLockAcquire(&ingest->mutex);
			for (int n = 0; n < INGEST_MAX_WORKERS; n++)
			{
				if (ingest->dbs[i].dboid == InvalidOid || worker_handles[i][n] != NULL)
					continue;
				ingest->dbs[i].pid[n] = 0;
				/* a worker that left with work to do comes back; an idle one when asked */
				start[n] = n < ingest_workers && ingest->dbs[i].wanted && !ingest->dbs[i].idle_exit &&
					(n == 0 || ingest->dbs[i].busy);	/* the others only while there is work */
				any |= start[n];
			}
			SpinLockRelease(&ingest->mutex);
			if (any && !database_exists(ingest->dbs[i].dboid))
			{
				/* dropped: forget it */
				SpinLockAcquire(&ingest->mutex);
				memset(&ingest->dbs[i], 0, sizeof(IngestDb));
				SpinLockRelease(&ingest->mutex);
				any = false;
			}
			for (int n = 0; any && n < INGEST_MAX_WORKERS; n++)
				if (start[n])
					start_worker(i, n);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---------------------------------------------------------------------------
 * A database's worker
 */

static int	my_slot;			/* the database's entry */
static int	my_number;			/* which of its workers */

/* Runs sql (no result wanted) with SPI; errors raise. */
static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *values)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "imgsearch ingest: SPI failed (%d) on: %s", rc, sql);
}

/* The transaction of one step of a round: begun, with SPI and a snapshot. */
static void
step_begin(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
step_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * One batch of table relid, in a transaction of its own, as its owner: the
 * batch runs as a security-restricted operation with the owner's user id
 * (as autovacuum runs a table's functions), so nothing it runs, the owner's
 * triggers included, can SET ROLE or RESET ROLE back to this superuser.
 * The errors of its rows are recorded after, as the worker. Returns the rows
 * it handled.
 */
static int
ingest_table(const char *schema, Oid relid, int batch_size, Oid owner)
{
	Oid			types[5] = {OIDOID, INT4OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	int			nrows;
	int			ndone = 0;
	SPITupleTable *results;
	Oid			save_userid;
	int			save_sec_context;

	step_begin("imgsearch ingest batch");
	args[0] = ObjectIdGetDatum(relid);
	args[1] = Int32GetDatum(batch_size);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	spi_exec(psprintf("SELECT key, error_state, error_message FROM %s.imgsearch_ingest_batch($1::regclass, $2)",
					  schema), 2, types, args);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	results = SPI_tuptable;
	nrows = (int) SPI_processed;
	for (int r = 0; r < nrows; r++)
	{
		char	   *key = SPI_getvalue(results->vals[r], results->tupdesc, 1);
		char	   *sqlstate = SPI_getvalue(results->vals[r], results->tupdesc, 2);
		char	   *message = SPI_getvalue(results->vals[r], results->tupdesc, 3);

		if (sqlstate == NULL)
		{
			ndone++;
			continue;
		}
		args[2] = CStringGetTextDatum(key);
		args[3] = CStringGetTextDatum(sqlstate);
		args[4] = CStringGetTextDatum(message ? message : "");
		spi_exec(psprintf("INSERT INTO %s.imgsearch_ingest_errors (relid, key, sqlstate, message) "
						  "VALUES ($1, $3, $4, $5) ON CONFLICT (relid, key) DO UPDATE SET "
						  "sqlstate = EXCLUDED.sqlstate, message = EXCLUDED.message, failed_at = now()",
						  schema), 5, types, args);
	}
	if (ndone > 0)
	{
		args[1] = Int32GetDatum(ndone);
		spi_exec(psprintf("INSERT INTO %s.imgsearch_ingest_log (relid, images) VALUES ($1, $2)", schema),
				 2, types, args);
	}
	step_end();
	return nrows;
}

/*
 * One round: a batch of each registered table, each in its own transaction
 * (one table's failure, a table dropped meanwhile, rolls back nothing of
 * the others). Returns the rows handled; -1 when the database has nothing to
 * do (no imgsearch with ingest, or no registration). *failed: some table's
 * batch failed with an error that is not a row's.
 */
static int
ingest_round(bool prune, bool *failed)
{
	char	   *schema;
	int			nregs;
	Oid		   *relids;
	int		   *batch_sizes;
	Oid		   *owners;
	int			worked = 0;
	MemoryContext round_ctx = CurrentMemoryContext;

	*failed = false;
	step_begin("imgsearch ingest round");
	/* imgsearch with ingest (0.2 on): an older version has no registrations */
	spi_exec("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
			 "WHERE e.extname = 'imgsearch' AND EXISTS (SELECT 1 FROM pg_class c "
			 "WHERE c.relnamespace = e.extnamespace AND c.relname = 'imgsearch_ingest')", 0, NULL, NULL);
	if (SPI_processed == 0)
	{
		step_end();
		return -1;
	}
	schema = MemoryContextStrdup(round_ctx, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	/*
	 * The database's own imgsearch.model (ALTER DATABASE ... SET), as it is
	 * now: a session reads it when it connects, this worker every round.
	 * Not transaction-local: the batches run in transactions of their own.
	 */
	spi_exec("SELECT set_config('imgsearch.model', substr(c, 17), false) "
			 "FROM pg_db_role_setting s, unnest(s.setconfig) c "
			 "WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) "
			 "AND s.setrole = 0 AND c LIKE 'imgsearch.model=%'", 0, NULL, NULL);
	/* registrations whose table is gone are skipped (the drop's event trigger removes them) */
	spi_exec(psprintf("SELECT i.relid::oid, i.batch_size, c.relowner FROM %s.imgsearch_ingest i "
					  "JOIN pg_class c ON c.oid = i.relid ORDER BY 1", schema), 0, NULL, NULL);
	nregs = (int) SPI_processed;
	relids = MemoryContextAlloc(round_ctx, sizeof(Oid) * Max(nregs, 1));
	batch_sizes = MemoryContextAlloc(round_ctx, sizeof(int) * Max(nregs, 1));
	owners = MemoryContextAlloc(round_ctx, sizeof(Oid) * Max(nregs, 1));
	for (int i = 0; i < nregs; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];

		relids[i] = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		batch_sizes[i] = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		owners[i] = DatumGetObjectId(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	}
	if (prune)
		spi_exec(psprintf("DELETE FROM %s.imgsearch_ingest_log WHERE done_at < now() - interval '1 hour'", schema),
				 0, NULL, NULL);
	step_end();
	if (nregs == 0)
		return -1;

	for (int i = 0; i < nregs; i++)
	{
		PG_TRY();
		{
			worked += ingest_table(schema, relids[i], batch_sizes[i], owners[i]);
		}
		PG_CATCH();
		{
			/* not a row's error: report it; the other tables go on */
			MemoryContextSwitchTo(round_ctx);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			*failed = true;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(round_ctx);
	}
	return worked;
}

PGDLLEXPORT void imgs_ingest_worker_main(Datum arg);
void
imgs_ingest_worker_main(Datum arg)
{
	Oid			dboid;
	long		pause_ms = 1000;
	TimestampTz last_prune = 0;
	MemoryContext loop_ctx;

	my_slot = DatumGetInt32(arg) / INGEST_MAX_WORKERS;
	my_number = DatumGetInt32(arg) % INGEST_MAX_WORKERS;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	SpinLockAcquire(&ingest->mutex);
	dboid = ingest->dbs[my_slot].dboid;
	ingest->dbs[my_slot].pid[my_number] = MyProcPid;
	SpinLockRelease(&ingest->mutex);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* a bulk load: behind every search at the model workers */
	SetConfigOption("imgsearch.model_priority", "background", PGC_SUSET, PGC_S_OVERRIDE);
	loop_ctx = AllocSetContextCreate(TopMemoryContext, "imgsearch ingest round", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		int			worked = 0;
		bool		failed = false;
		TimestampTz now = GetCurrentTimestamp();
		bool		prune = TimestampDifferenceExceeds(last_prune, now, 60 * 1000);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_ctx);
		MemoryContextSwitchTo(loop_ctx);
		PG_TRY();
		{
			worked = ingest_round(prune, &failed);
		}
		PG_CATCH();
		{
			/* not a row's error: report it, pause, try again (never a tight loop) */
			MemoryContextSwitchTo(loop_ctx);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			failed = true;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);
		if (prune && !failed)
			last_prune = now;
		if (worked > 0 && !ingest->dbs[my_slot].busy)
		{
			Latch	   *latch;

			/* work: the launcher starts this database's other workers */
			SpinLockAcquire(&ingest->mutex);
			ingest->dbs[my_slot].busy = true;
			latch = ingest->launcher_latch;
			SpinLockRelease(&ingest->mutex);
			if (latch)
				SetLatch(latch);
		}
		if (worked == 0 && !failed)
		{
			/*
			 * Nothing to do: the other workers leave, so that an idle
			 * database holds one max_worker_processes slot; worker 0 stays
			 * (it notices new rows) and calls them back when it finds work.
			 */
			SpinLockAcquire(&ingest->mutex);
			ingest->dbs[my_slot].busy = false;
			SpinLockRelease(&ingest->mutex);
			if (my_number > 0)
				proc_exit(0);
		}

		if (worked < 0)
		{
			/* nothing registered here: leave until imgsearch_ingest_start asks again */
			SpinLockAcquire(&ingest->mutex);
			ingest->dbs[my_slot].idle_exit = true;
			ingest->dbs[my_slot].wanted = false;
			ingest->dbs[my_slot].busy = false;
			SpinLockRelease(&ingest->mutex);
			ereport(DEBUG1, (errmsg("imgsearch ingest worker: nothing registered in this database")));
			proc_exit(0);
		}
		pause_ms = failed ? Min(pause_ms * 2, 60000L) : 1000;
		if (worked > 0 && !failed)
			continue;			/* more may be waiting */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pause_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
