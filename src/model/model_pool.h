/*
 * model_pool.h — the model workers: background workers that each load the
 * VGG16 model once and serve every backend's vgg16_features calls (and, by
 * the same queue at a lower priority, bulk work such as ingest), so that
 * backends never load libtorch, a session's first call waits for no model
 * load, and memory stays flat in the number of sessions.
 *
 * The pool exists when imgsearch is in shared_preload_libraries and
 * imgsearch.model_workers > 0. A backend ships each image in a DSM segment,
 * puts its handle on a FIFO in shared memory (interactive requests before
 * background ones) and waits on an shm_mq in the same segment for the
 * feature or the error. Without the pool (or with imgsearch.model_in_backend
 * on) the backend runs the model itself, as before.
 */
#ifndef IMGS_MODEL_POOL_H
#define IMGS_MODEL_POOL_H

#include "postgres.h"

#include "model/model_core.h"

/* From _PG_init: the settings; with shared_preload_libraries also the shared memory and the workers. */
extern void imgs_model_pool_init(void);

/* True when this backend's calls go to the pool. */
extern bool imgs_model_pool_active(void);

/*
 * Runs one image through a model worker: the model at model_path, the image
 * cropped to box (NULL: whole), refused over max_pixels pixels or
 * max_memory bytes of decoding. Writes at most out_cap floats to out and
 * returns the feature's dimension; errors are raised with the worker's
 * SQLSTATE. Interactive requests go before background ones.
 */
extern int	imgs_model_pool_extract(const char *model_path, const char *data, Size len, const int32 *box,
									int64 max_pixels, int64 max_memory, bool background,
									float *out, int out_cap);

/* imgsearch.model_priority is background: this session's requests queue behind interactive ones. */
extern bool imgs_model_pool_background(void);

/*
 * What a worker knows of the model at model_path, where one has it loaded:
 * its dims, metadata (copied, NUL-terminated), load time and load count.
 * False where no worker has it (then the backend loads it to know).
 */
extern bool imgs_model_pool_info(const char *model_path, int *dims, char *metadata, Size metadata_len,
								 double *load_seconds, uint64 *generation);

/* The background worker's entry point (bgw_function_name). */
extern PGDLLEXPORT void imgs_model_worker_main(Datum arg);

#endif
