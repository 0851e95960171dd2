/*
 * model_core.h — the VGG16 feature extractor's C API (plain C, no
 * PostgreSQL, torch or OpenCV headers).
 *
 * The extractor (image_core.cpp, vgg16_core.cpp) is built into its own
 * module, imgsearch_model.so, so that libtorch and OpenCV (about 1 s and
 * 160 MB to map) are loaded only by backends that extract features. The C
 * glue in imgsearch.so (model.c) finds the table below with
 * load_external_function() on first use and calls through it.
 *
 * Every entry returns false after filling an ImgsError on failure (see
 * cxx_error.h); none calls PostgreSQL, and none may run outside the
 * backend's main thread.
 */
#ifndef IMGS_MODEL_CORE_H
#define IMGS_MODEL_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "cxx/cxx_error.h"

#ifdef __cplusplus
extern "C"
{
#endif

/* Bumped whenever ImgsModelApi changes: the two modules must agree. */
#define IMGS_MODEL_ABI_VERSION 3

/* The model's input: RGB, 224 x 224, ImageNet mean/std, channels first. */
#define IMGS_MODEL_SIDE 224
#define IMGS_MODEL_INPUT_FLOATS (3 * IMGS_MODEL_SIDE * IMGS_MODEL_SIDE)

/* SQLSTATEs of the extractor's errors, besides those of cxx_error.h. */
#define IMGS_SQLSTATE_INVALID_BINARY	"22P03"	/* not a decodable image */
#define IMGS_SQLSTATE_UNDEFINED_FILE	"58P01"	/* model file missing */
#define IMGS_SQLSTATE_SYSTEM_ERROR		"58000"	/* model file unreadable */
#define IMGS_SQLSTATE_NOT_CONFIGURED	"55000"	/* object_not_in_prerequisite_state */
#define IMGS_SQLSTATE_NOT_SUPPORTED		"0A000"	/* feature_not_supported: the CPU cannot run the model */

typedef struct ImgsModelInfo
{
	int			dims;			/* output dimension, found by a probe run */
	/* JSON that tools/export_vgg16.py embeds ("" if none): owned by the core,
	 * valid until the next load */
	const char *metadata;
	double		load_seconds;	/* of the load that produced this model */
	uint64_t	generation;		/* changes whenever a model is loaded */
} ImgsModelInfo;

typedef struct ImgsModelApi
{
	int			abi_version;

	/*
	 * Makes the model in file `path` current: loads it (TorchScript, then
	 * optimize_for_inference and a probe run) unless the file already loaded
	 * is the same (path, inode, size, mtime). The previous model is freed.
	 * threads: as for forward (the probe runs with them).
	 */
	bool		(*load) (const char *path, int threads, ImgsModelInfo *info, ImgsError *err);

	/*
	 * Decodes an image (JPEG, PNG, WebP, BMP, TIFF; EXIF orientation applied),
	 * crops it to box = {x, y, width, height} (clipped; NULL: whole image) and
	 * writes the model input to out[IMGS_MODEL_INPUT_FLOATS]. Images whose
	 * header claims more than max_pixels pixels, or whose decoding would
	 * allocate more than max_memory bytes (by their container's fields), are
	 * refused before decoding. Decoders' messages never reach stderr.
	 */
	bool		(*preprocess) (const void *data, size_t len, const int32_t *box,
							   int64_t max_pixels, int64_t max_memory, float *out, ImgsError *err);

	/*
	 * Runs the current model on n preprocessed images with `threads` intra-op
	 * threads (created with signals blocked); writes n * dims L2-normalised
	 * floats to out.
	 */
	bool		(*forward) (const float *in, int n, int threads, float *out, ImgsError *err);

	/*
	 * From the image's header only (no decoding): its format ("JPEG", "PNG",
	 * "WebP", "BMP", "TIFF": a static string) and its size as shown upright
	 * (EXIF orientation applied, as preprocess sees it).
	 */
	bool		(*image_info) (const void *data, size_t len, const char **format,
							   int64_t *width, int64_t *height, ImgsError *err);

	/*
	 * Decodes an image with preprocess's limits, turns it upright, shrinks it
	 * so that its longer side is at most side (16..2048; never enlarged) and
	 * encodes it as JPEG (quality 85) into *out, a malloc'd buffer of *out_len
	 * bytes that the caller frees.
	 */
	bool		(*thumbnail) (const void *data, size_t len, int side, int64_t max_pixels,
							  int64_t max_memory, uint8_t **out, size_t *out_len, ImgsError *err);
} ImgsModelApi;

/* The one symbol imgsearch_model.so exports (besides its magic block). */
typedef const ImgsModelApi *(*ImgsModelApiFn) (void);
#define IMGS_MODEL_API_SYMBOL "imgs_model_api"

#ifdef __cplusplus
}
#endif

#endif
