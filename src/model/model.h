/*
 * model.h — the VGG16 feature extractor's C glue (model.c).
 */
#ifndef IMGS_MODEL_H
#define IMGS_MODEL_H

/* Defines imgsearch.model, imgsearch.threads, imgsearch.max_pixels and
 * imgsearch.max_decode_memory. */
extern void imgs_model_init(void);

#endif
