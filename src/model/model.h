/*
 * model.h — the VGG16 feature extractor's C glue (model.c).
 */
#ifndef IMGS_MODEL_H
#define IMGS_MODEL_H

/* Defines imgsearch.model, imgsearch.threads, imgsearch.max_pixels and
 * imgsearch.max_decode_memory. */
extern void imgs_model_init(void);

/* For the model workers (model_pool.c): the extractor's table, and imgsearch.threads. */
struct ImgsModelApi;
extern const struct ImgsModelApi *imgs_model_get_api(void);
extern int	imgs_model_threads(void);
extern const char *imgs_model_path(void);	/* imgsearch.model, "" when unset */
/* Raises XX001 when the file does not match the sha256 of its .json sidecar. */
extern void imgs_model_verify_file(const char *path);

#endif
