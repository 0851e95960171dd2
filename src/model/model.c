/*
 * model.c — SQL entry points of the VGG16 feature extractor (C glue).
 *
 * The extractor itself (decode, resize, torch) lives in imgsearch_model.so,
 * loaded on first use through the table of model_core.h, so a backend that
 * never extracts a feature never maps torch or OpenCV. This file does the
 * PostgreSQL side: GUCs, arguments, palloc, interrupts between images,
 * errors.
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "model/model.h"
#include "model/model_core.h"
#include "model/model_pool.h"
#include "type/imgfeat.h"

/*
 * The batched form runs one image per forward pass: larger batches run no
 * faster on CPU (measured: 1, 4 and 8 within noise), cost ~30 MB of
 * activations per image, and a pass cannot be interrupted, so interrupts are
 * served between images (about 0.5 s apart on 2 cores).
 */

static char *model_path = NULL;
static int	model_threads = 1;
static int	model_max_pixels = 50 * 1000 * 1000;
static int	model_max_decode_kb = 256 * 1024;	/* imgsearch.max_decode_memory */
static int	model_threads_cap = 1;	/* the most a non-superuser may set */

static const ImgsModelApi *model_api = NULL;
static int64 backend_images = 0;	/* images this backend ran through the model, here or in a worker */

/*
 * The last call's result, per form. The planner evaluates STABLE functions
 * of constants for its estimates (unnest(vgg16_features(ARRAY[...])) does)
 * and the executor then calls again with the same value: the second call
 * finds it here instead of running the model again.
 */
typedef struct LastCall
{
	uint8		key[PG_SHA256_DIGEST_LENGTH];	/* see call_key */
	uint64		generation;		/* of the model that computed it */
	Datum		result;			/* in TopMemoryContext; 0 if none */
} LastCall;

static LastCall last_single;
static LastCall last_batch;

/*
 * SHA-256 (hex) of the model file, and the file it was computed from: its
 * path and identity (device, inode, size, mtime, as the extractor tells a new
 * file from the loaded one). Hashed again only when imgsearch.model names
 * another file or the file changed: fc7's 537 MB are hashed once.
 */
typedef struct ModelFileHash
{
	bool		valid;
	char		path[MAXPGPATH];
	dev_t		dev;
	ino_t		ino;
	off_t		size;
	struct timespec mtime;
	char		hex[2 * PG_SHA256_DIGEST_LENGTH + 1];
	bool		sidecar_checked;	/* imgs_model_verify_file found it matches its sidecar */
} ModelFileHash;

static ModelFileHash model_hash;

static const char *file_sha256(const char *path);
static char *metadata_field(Jsonb *meta, const char *key);

static bool
check_model_path(char **newval, void **extra, GucSource source)
{
	if (**newval != '\0' && !is_absolute_path(*newval))
	{
		GUC_check_errdetail("imgsearch.model must be an absolute path.");
		return false;
	}
	return true;
}

/*
 * imgsearch.threads: anyone may choose 1 up to the number of cores (the
 * default); more, which only oversubscribes the machine, takes a superuser.
 * Checked where a user is known: SET, ALTER ROLE/DATABASE ... SET, startup
 * options, a function's SET clause; postgresql.conf and ALTER SYSTEM are a
 * superuser's already.
 */
static bool
check_threads(int *newval, void **extra, GucSource source)
{
	if (*newval > model_threads_cap && source >= PGC_S_DATABASE && IsTransactionState() && !superuser())
	{
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("only superusers may set imgsearch.threads above %d", model_threads_cap);
		GUC_check_errdetail("%d is the number of cores of this machine.", model_threads_cap);
		return false;
	}
	return true;
}

void
imgs_model_init(void)
{
	int			cores = (int) sysconf(_SC_NPROCESSORS_ONLN);

	model_threads_cap = Max(1, Min(cores, 64));

	DefineCustomStringVariable("imgsearch.model",
							   "TorchScript model file used by vgg16_features().",
							   "An absolute path to a file written by tools/export_vgg16.py. "
							   "Only superusers may set it: loading a model runs code from the file.",
							   &model_path,
							   "",
							   PGC_SUSET,
							   0,
							   check_model_path, NULL, NULL);
	DefineCustomIntVariable("imgsearch.threads",
							"Intra-op threads of vgg16_features() in each backend.",
							"Anyone may set 1 up to the number of cores (the default); "
							"only superusers may set more.",
							&model_threads,
							model_threads_cap, 1, 64,
							PGC_USERSET,
							0,
							check_threads, NULL, NULL);
	DefineCustomIntVariable("imgsearch.max_pixels",
							"Largest image, in pixels, that vgg16_features() decodes.",
							"Checked against the image header before decoding. "
							"Only superusers may raise it: a decoded pixel costs 3 bytes.",
							&model_max_pixels,
							50 * 1000 * 1000, 1, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("imgsearch.max_decode_memory",
							"Most memory that decoding one image in vgg16_features() may take.",
							"Computed before decoding from the image's container: the decoded "
							"image and the decoder's own buffers (tiles, strips, scans, bit depth, pages). "
							"Only superusers may raise it.",
							&model_max_decode_kb,
							256 * 1024, 1024, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
	imgs_model_pool_init();
}

int
imgs_model_threads(void)
{
	return model_threads;
}

const char *
imgs_model_path(void)
{
	return model_path ? model_path : "";
}

/* The extractor's function table; maps imgsearch_model.so on first call. */
const ImgsModelApi *
imgs_model_get_api(void)
{
	if (model_api == NULL)
	{
		ImgsModelApiFn fn;
		const ImgsModelApi *api;

		fn = (ImgsModelApiFn) load_external_function("$libdir/imgsearch_model",
													 IMGS_MODEL_API_SYMBOL, true, NULL);
		api = fn();
		if (api->abi_version != IMGS_MODEL_ABI_VERSION)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("imgsearch_model module has interface version %d, imgsearch expects %d",
							api->abi_version, IMGS_MODEL_ABI_VERSION),
					 errhint("Reinstall imgsearch and reconnect.")));
		model_api = api;
	}
	return model_api;
}

static void
require_model_path(void)
{
	if (model_path == NULL || model_path[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("imgsearch.model is not set"),
				 errhint("Export a model (make model writes models/vgg16_pool_random.pt) and have a superuser "
						 "set imgsearch.model to its absolute path, e.g. with ALTER SYSTEM.")));
}

/*
 * Refuses a model file that does not match its sidecar (PATH.json for
 * PATH.pt, written by tools/export_vgg16.py) with XX001: a changed byte in
 * the weights loads without complaint in torch (its zip reader checks no
 * CRC) and gives wrong features. No sidecar, or one without a sha256: not
 * checked. The file is hashed once (see file_sha256) and its sidecar read
 * once per file: later calls cost two stats.
 */
void
imgs_model_verify_file(const char *path)
{
	char		sidecar[MAXPGPATH];
	const char *dot = strrchr(path, '.');
	const char *slash = strrchr(path, '/');
	size_t		stem = (dot && (!slash || dot > slash)) ? (size_t) (dot - path) : strlen(path);
	struct stat st;
	const char *have;
	FILE	   *f;
	MemoryContext cxt;
	MemoryContext old;
	StringInfoData buf;
	char		chunk[4096];
	size_t		got;
	char	   *want;

	if (stem + sizeof(".json") > sizeof(sidecar))
		return;
	memcpy(sidecar, path, stem);
	strcpy(sidecar + stem, ".json");
	if (strcmp(sidecar, path) == 0 || stat(sidecar, &st) != 0)
		return;
	have = file_sha256(path);
	if (model_hash.sidecar_checked)
		return;
	/* a context of its own: the model workers call this from a long-lived one */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "imgsearch model sidecar", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	if ((f = AllocateFile(sidecar, PG_BINARY_R)) == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model sidecar \"%s\": %m", sidecar)));
	initStringInfo(&buf);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0 && buf.len < 1024 * 1024)
		appendBinaryStringInfo(&buf, chunk, got);
	FreeFile(f);
	want = metadata_field(DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data))), "sha256");
	if (want != NULL && pg_strcasecmp(want, have) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model file \"%s\" does not match its sidecar \"%s\"", path, sidecar),
				 errdetail("The file's sha256 is %s; the sidecar records %s.", have, want),
				 errhint("The file is corrupted or was replaced: export it again with tools/export_vgg16.py.")));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	model_hash.sidecar_checked = true;
}

/* Makes imgsearch.model the loaded model (a no-op when it already is). */
static const ImgsModelApi *
load_model(ImgsModelInfo *info)
{
	const ImgsModelApi *api;
	ImgsError	err;

	require_model_path();
	imgs_model_verify_file(model_path);
	api = imgs_model_get_api();
	if (!api->load(model_path, model_threads, info, &err))
		imgs_raise_cxx_error(&err);
	return api;
}

/*
 * The model for a call: NULL with the pool (the workers load it; *generation
 * 0, so a cached result is only reused for the same model path, which the
 * key holds), or the extractor with the model loaded here.
 */
static const ImgsModelApi *
call_model(ImgsModelInfo *info, uint64 *generation)
{
	const ImgsModelApi *api = NULL;

	require_model_path();
	*generation = 0;
	if (!imgs_model_pool_active())
	{
		api = load_model(info);
		*generation = info->generation;
	}
	return api;
}

/* SHA-256 of a call's input bytes, box, limits and model path. */
static void
call_key(const char *data, size_t len, const int32 *box, uint8 *key)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	int32		params[7] = {box != NULL, 0, 0, 0, 0, model_max_pixels, model_max_decode_kb};

	if (box)
		memcpy(params + 1, box, sizeof(int32) * 4);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) params, sizeof(params)) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) model_path, strlen(model_path) + 1) < 0 ||
		pg_cryptohash_final(ctx, key, PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
}

/* A copy of the last call's result if it had this key and model, or 0. */
static Datum
last_call_get(LastCall *last, const uint8 *key, uint64 generation)
{
	if (last->result == 0 || last->generation != generation || memcmp(last->key, key, sizeof(last->key)) != 0)
		return (Datum) 0;
	return datumCopy(last->result, false, -1);
}

static void
last_call_set(LastCall *last, const uint8 *key, uint64 generation, Datum result)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	Datum		copy = datumCopy(result, false, -1);

	MemoryContextSwitchTo(old);
	if (last->result != 0)
		pfree(DatumGetPointer(last->result));
	memcpy(last->key, key, sizeof(last->key));
	last->generation = generation;
	last->result = copy;
}

/*
 * Computes features[i] for images[0..n) with the loaded model, or (api
 * NULL) by the model workers, one request per image; NULL images give NULL
 * features. One image per forward pass, interrupts served before and after
 * each decode and each pass.
 */
static void
extract_features(const ImgsModelApi *api, const ImgsModelInfo *info,
				 int n, bytea *const *images, const int32 *box, ImgFeat **features)
{
	int			out_cap = api ? info->dims : IMGFEAT_MAX_DIM;
	float	   *input = api ? palloc(sizeof(float) * IMGS_MODEL_INPUT_FLOATS) : NULL;
	float	   *output = palloc(sizeof(float) * out_cap);
	int64		max_memory = (int64) model_max_decode_kb * 1024;
	ImgsError	err;

	for (int i = 0; i < n; i++)
	{
		ImgFeat    *f;
		int			dims;

		features[i] = NULL;
		if (images[i] == NULL)
			continue;
		CHECK_FOR_INTERRUPTS();
		if (api == NULL)
		{
			dims = imgs_model_pool_extract(model_path, VARDATA_ANY(images[i]), VARSIZE_ANY_EXHDR(images[i]),
										   box, model_max_pixels, max_memory, imgs_model_pool_background(),
										   output, out_cap);
			backend_images++;
			f = imgfeat_new(dims);
			memcpy(f->x, output, sizeof(float) * dims);
			imgfeat_validate(f);
			features[i] = f;
			continue;
		}
		if (!api->preprocess(VARDATA_ANY(images[i]), VARSIZE_ANY_EXHDR(images[i]), box,
							 model_max_pixels, max_memory, input, &err))
			imgs_raise_cxx_error(&err);
		CHECK_FOR_INTERRUPTS();
		if (!api->forward(input, 1, model_threads, output, &err))
			imgs_raise_cxx_error(&err);
		backend_images++;
		f = imgfeat_new(info->dims);
		memcpy(f->x, output, sizeof(float) * info->dims);
		imgfeat_validate(f);	/* the model's dims and values obey the type's rule too */
		features[i] = f;
	}
	CHECK_FOR_INTERRUPTS();
	if (input)
		pfree(input);
	pfree(output);
}

/* box: a one-dimensional int4[] of {x, y, width, height}, no NULLs. */
static void
get_box(ArrayType *arr, int32 *box)
{
	if (ARR_NDIM(arr) != 1 || ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) != 4 || array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("box must be an array of four integers {x, y, width, height}")));
	memcpy(box, ARR_DATA_PTR(arr), sizeof(int32) * 4);
}

/*
 * What a single-image form keeps in fn_extra when its arguments are constants
 * or query parameters: the last feature and what gave it, so that a query
 * that calls it row by row (feat <-> vgg16_features(:img) in a sequential
 * scan) runs the model once. The FmgrInfo may outlive one query: plpgsql
 * keeps an expression's state for the transaction while its variables,
 * Params to us, change. So the image is compared on each call unless every
 * argument is a Const.
 */
typedef struct SingleCache
{
	char	   *model;			/* imgsearch.model that computed feat */
	ImgFeat    *feat;
	bool		constant;		/* every argument is a Const: nothing to compare */
	bool		has_box;
	int32		box[4];
	Size		len;			/* of data: the image, unless constant */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} SingleCache;

static bool
args_are_consts(FmgrInfo *flinfo)
{
	ListCell   *lc;

	if (flinfo->fn_expr == NULL || !IsA(flinfo->fn_expr, FuncExpr))
		return false;
	foreach(lc, ((FuncExpr *) flinfo->fn_expr)->args)
	{
		if (!IsA(lfirst(lc), Const))
			return false;
	}
	return true;
}

/* True when the cached feature is this call's result. */
static bool
cache_matches(const SingleCache *cache, FunctionCallInfo fcinfo, const int32 *box)
{
	bytea	   *img;

	if (cache == NULL || strcmp(cache->model, model_path) != 0)
		return false;
	if (cache->constant)
		return true;
	img = PG_GETARG_BYTEA_PP(0);
	return cache->len == VARSIZE_ANY_EXHDR(img) &&
		memcmp(cache->data, VARDATA_ANY(img), cache->len) == 0 &&
		cache->has_box == (box != NULL) &&
		(box == NULL || memcmp(cache->box, box, sizeof(cache->box)) == 0);
}

static void
cache_set(FmgrInfo *flinfo, const char *data, Size len, const int32 *box, const ImgFeat *feat)
{
	SingleCache *old = (SingleCache *) flinfo->fn_extra;
	bool		constant = args_are_consts(flinfo);
	SingleCache *cache = MemoryContextAlloc(flinfo->fn_mcxt,
											offsetof(SingleCache, data) + (constant ? 0 : len));

	cache->model = MemoryContextStrdup(flinfo->fn_mcxt, model_path);
	cache->feat = MemoryContextAlloc(flinfo->fn_mcxt, VARSIZE(feat));
	memcpy(cache->feat, feat, VARSIZE(feat));
	cache->constant = constant;
	cache->has_box = box != NULL;
	if (box)
		memcpy(cache->box, box, sizeof(cache->box));
	cache->len = constant ? 0 : len;
	memcpy(cache->data, data, cache->len);
	flinfo->fn_extra = cache;
	if (old)
	{
		pfree(old->model);
		pfree(old->feat);
		pfree(old);
	}
}

static Datum
single_feature(FunctionCallInfo fcinfo, const int32 *box)
{
	FmgrInfo   *flinfo = fcinfo->flinfo;
	SingleCache *cache = (SingleCache *) flinfo->fn_extra;
	bytea	   *img;
	ImgFeat    *feat;
	ImgsModelInfo info;
	const ImgsModelApi *api;
	uint64		generation;
	uint8		key[PG_SHA256_DIGEST_LENGTH];

	if (cache_matches(cache, fcinfo, box))
	{
		feat = palloc(VARSIZE(cache->feat));
		memcpy(feat, cache->feat, VARSIZE(cache->feat));
		PG_RETURN_POINTER(feat);
	}
	img = PG_GETARG_BYTEA_PP(0);
	api = call_model(&info, &generation);
	call_key(VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img), box, key);
	feat = (ImgFeat *) DatumGetPointer(last_call_get(&last_single, key, generation));
	if (feat == NULL)
	{
		extract_features(api, &info, 1, &img, box, &feat);
		last_call_set(&last_single, key, generation, PointerGetDatum(feat));
	}
	if (get_fn_expr_arg_stable(flinfo, 0) && (PG_NARGS() < 2 || get_fn_expr_arg_stable(flinfo, 1)))
		cache_set(flinfo, VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img), box, feat);
	PG_RETURN_POINTER(feat);
}

PG_FUNCTION_INFO_V1(vgg16_features);
Datum
vgg16_features(PG_FUNCTION_ARGS)
{
	return single_feature(fcinfo, NULL);
}

PG_FUNCTION_INFO_V1(vgg16_features_box);
Datum
vgg16_features_box(PG_FUNCTION_ARGS)
{
	int32		box[4];

	get_box(PG_GETARG_ARRAYTYPE_P(1), box);
	return single_feature(fcinfo, box);
}

/* vgg16_features(bytea[]) -> imgfeat[] of the same shape; NULL stays NULL. */
PG_FUNCTION_INFO_V1(vgg16_features_batch);
Datum
vgg16_features_batch(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	Oid			feat_type = get_element_type(get_fn_expr_rettype(fcinfo->flinfo));
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	bytea	  **images;
	ImgFeat   **features;
	ImgsModelInfo info;
	const ImgsModelApi *api;
	uint64		generation;
	uint8		key[PG_SHA256_DIGEST_LENGTH];
	Datum		result;

	if (!OidIsValid(feat_type))
		elog(ERROR, "vgg16_features(bytea[]) must return an array");
	if (ARR_NDIM(arr) == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(feat_type));
	api = call_model(&info, &generation);
	call_key(VARDATA(arr), VARSIZE(arr) - VARHDRSZ, NULL, key);
	result = last_call_get(&last_batch, key, generation);
	if (result != 0)
		PG_RETURN_DATUM(result);

	deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	images = palloc(sizeof(bytea *) * n);
	features = palloc(sizeof(ImgFeat *) * n);
	for (int i = 0; i < n; i++)
		images[i] = nulls[i] ? NULL : DatumGetByteaPP(elems[i]);
	extract_features(api, &info, n, images, NULL, features);
	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(features[i]);
	result = PointerGetDatum(construct_md_array(elems, nulls, ARR_NDIM(arr), ARR_DIMS(arr), ARR_LBOUND(arr),
												feat_type, -1, false, TYPALIGN_INT));
	last_call_set(&last_batch, key, generation, result);
	PG_RETURN_DATUM(result);
}

/*
 * SHA-256 of the file at path, in hex, into *h with the identity of the file
 * it read (fstat of the same descriptor: the hash and the identity are of
 * one file, even when the path is replaced meanwhile).
 */
static void
hash_model_file(const char *path, ModelFileHash *h)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *buf = palloc(1 << 20);
	int			fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	struct stat st;
	ssize_t		got;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open model file \"%s\": %m", path)));
	if (fstat(fd, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file \"%s\": %m", path)));
	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize SHA-256: %s", pg_cryptohash_error(ctx));
	while ((got = read(fd, buf, 1 << 20)) > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (pg_cryptohash_update(ctx, (uint8 *) buf, got) < 0)
			elog(ERROR, "could not update SHA-256: %s", pg_cryptohash_error(ctx));
	}
	if (got < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read model file \"%s\": %m", path)));
	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not finish SHA-256: %s", pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	CloseTransientFile(fd);
	pfree(buf);
	h->valid = false;
	h->sidecar_checked = false;
	strlcpy(h->path, path, sizeof(h->path));
	h->dev = st.st_dev;
	h->ino = st.st_ino;
	h->size = st.st_size;
	h->mtime = st.st_mtim;
	hex_encode((char *) digest, sizeof(digest), h->hex);
	h->hex[2 * PG_SHA256_DIGEST_LENGTH] = '\0';
	h->valid = true;
}

/*
 * SHA-256 (hex) of the file imgsearch.model names, as it is now: a stat per
 * call, the file hashed again only when it is another file than last time
 * (src/model/vgg16_core.cpp reloads a model on the same identity). Raises
 * 55000 when imgsearch.model is unset, 58P01 when the file is missing.
 */
static const char *
file_sha256(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat model file \"%s\": %m", path)));
	if (!model_hash.valid || strcmp(model_hash.path, path) != 0 ||
		model_hash.dev != st.st_dev || model_hash.ino != st.st_ino || model_hash.size != st.st_size ||
		model_hash.mtime.tv_sec != st.st_mtim.tv_sec || model_hash.mtime.tv_nsec != st.st_mtim.tv_nsec)
		hash_model_file(path, &model_hash);
	return model_hash.hex;
}

static const char *
model_file_sha256(void)
{
	require_model_path();
	return file_sha256(model_path);
}

/*
 * imgsearch_model_sha256(): the sha256 column of imgsearch_model_info()
 * without loading the model or asking a model worker: what the ingest
 * records with each feature (sql/ingest.sql), and what a search compares
 * a table's model column with.
 */
PG_FUNCTION_INFO_V1(imgsearch_model_sha256);
Datum
imgsearch_model_sha256(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(model_file_sha256()));
}

/* A string or number member of the model's metadata, or NULL. */
static char *
metadata_field(Jsonb *meta, const char *key)
{
	JsonbValue	v;

	if (meta == NULL || !JB_ROOT_IS_OBJECT(meta) ||
		getKeyJsonValueFromContainer(&meta->root, key, strlen(key), &v) == NULL)
		return NULL;
	if (v.type == jbvString)
		return pnstrdup(v.val.string.val, v.val.string.len);
	if (v.type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v.val.numeric)));
	return NULL;
}

static void
set_text(Datum *values, bool *nulls, int col, const char *s)
{
	nulls[col] = s == NULL;
	values[col] = s ? CStringGetTextDatum(s) : (Datum) 0;
}

/*
 * imgsearch_model_info(): the model imgsearch.model names (loaded if need
 * be), from the metadata tools/export_vgg16.py embeds in it.
 */
PG_FUNCTION_INFO_V1(imgsearch_model_info);
Datum
imgsearch_model_info(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	ImgsModelInfo info;
	Jsonb	   *meta = NULL;
	char	   *weights;
	char	   *source;
	Datum		values[8];
	bool		nulls[8] = {false};

	char		pool_metadata[2048];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "imgsearch_model_info must return a record");
	require_model_path();
	/* a model worker that has it loaded says what it is: this backend loads no torch */
	if (imgs_model_pool_info(model_path, &info.dims, pool_metadata, sizeof(pool_metadata),
							 &info.load_seconds, &info.generation))
		info.metadata = pool_metadata;
	else
		load_model(&info);
	if (info.metadata[0] != '\0')
		meta = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(info.metadata)));

	/* "random (seed 0)", "imagenet (URL)", "file (PATH)" */
	weights = metadata_field(meta, "weights");
	if (weights != NULL && (source = metadata_field(meta, "seed")) != NULL)
		weights = psprintf("%s (seed %s)", weights, source);
	else if (weights != NULL && (source = metadata_field(meta, "source")) != NULL)
		weights = psprintf("%s (%s)", weights, source);
	/* a quantized model says so: "random (seed 0), int8"; fp32 models have no precision */
	if (weights != NULL && (source = metadata_field(meta, "precision")) != NULL)
		weights = psprintf("%s, %s", weights, source);

	set_text(values, nulls, 0, model_path);
	set_text(values, nulls, 1, metadata_field(meta, "layer"));
	values[2] = Int32GetDatum(info.dims);
	set_text(values, nulls, 3, weights);
	/* the file's hash, as imgsearch_model_sha256() gives it (hashed once per file) */
	set_text(values, nulls, 4, model_file_sha256());
	set_text(values, nulls, 5, metadata_field(meta, "note"));
	values[6] = Float8GetDatum(info.load_seconds);
	values[7] = Int64GetDatum(backend_images);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * imgsearch_image_info(img) -> (format, width, height): from the image's
 * header, without decoding it; the size as shown upright (EXIF orientation
 * applied, as vgg16_features sees it). A bad image raises what
 * vgg16_features raises for it (22P03).
 */
PG_FUNCTION_INFO_V1(imgsearch_image_info);
Datum
imgsearch_image_info(PG_FUNCTION_ARGS)
{
	bytea	   *img = PG_GETARG_BYTEA_PP(0);
	TupleDesc	tupdesc;
	const char *format = NULL;
	int64_t		width = 0;
	int64_t		height = 0;
	ImgsError	err;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "imgsearch_image_info must return a record");
	if (!imgs_model_get_api()->image_info(VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img), &format, &width, &height, &err))
		imgs_raise_cxx_error(&err);
	if (format == NULL || width <= 0 || height <= 0)
		elog(ERROR, "imgsearch_image_info: the image core gave no size");
	if (width > PG_INT32_MAX || height > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s image of " INT64_FORMAT "x" INT64_FORMAT " pixels is too large",
						format, (int64) width, (int64) height),
				 errdetail("Width and height are integers of at most %d.", PG_INT32_MAX)));
	values[0] = CStringGetTextDatum(format);
	values[1] = Int32GetDatum((int32) width);
	values[2] = Int32GetDatum((int32) height);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * imgsearch_thumbnail(img, side) -> bytea: a JPEG (quality 85) of the image
 * upright, its longer side at most side pixels (16..2048; never enlarged).
 * Decoded under vgg16_features's limits (imgsearch.max_pixels,
 * imgsearch.max_decode_memory: 54000).
 */
PG_FUNCTION_INFO_V1(imgsearch_thumbnail);
Datum
imgsearch_thumbnail(PG_FUNCTION_ARGS)
{
	bytea	   *img = PG_GETARG_BYTEA_PP(0);
	int32		side = PG_GETARG_INT32(1);
	const ImgsModelApi *api;
	uint8_t    *jpeg = NULL;
	size_t		len = 0;
	bytea	   *result;
	ImgsError	err;

	if (side < 16 || side > 2048)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("thumbnail side must be between 16 and 2048, not %d", side)));
	api = imgs_model_get_api();	/* no model needed */
	CHECK_FOR_INTERRUPTS();
	if (!api->thumbnail(VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img), side, model_max_pixels,
						(int64) model_max_decode_kb * 1024, &jpeg, &len, &err))
		imgs_raise_cxx_error(&err);
	/* the malloc'd JPEG is freed before anything here can raise an error */
	result = (len <= MaxAllocSize - VARHDRSZ) ?
		palloc_extended(len + VARHDRSZ, MCXT_ALLOC_NO_OOM) : NULL;
	if (result != NULL)
	{
		SET_VARSIZE(result, len + VARHDRSZ);
		memcpy(VARDATA(result), jpeg, len);
	}
	free(jpeg);
	if (result == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory for a thumbnail of %zu bytes", len)));
	CHECK_FOR_INTERRUPTS();
	PG_RETURN_BYTEA_P(result);
}
