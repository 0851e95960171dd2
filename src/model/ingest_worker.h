/*
 * ingest_worker.h — the ingest launcher and workers (ingest_worker.c): with
 * imgsearch in shared_preload_libraries, features of registered tables
 * (imgsearch_ingest_start, sql/ingest.sql) are filled in the background.
 */
#ifndef IMGS_INGEST_WORKER_H
#define IMGS_INGEST_WORKER_H

/* From _PG_init: with shared_preload_libraries, the shared memory and the launcher. */
extern void imgs_ingest_init(void);

#endif
