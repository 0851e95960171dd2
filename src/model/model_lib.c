/*
 * model_lib.c — the magic block of imgsearch_model.so, the module that holds
 * the VGG16 feature extractor (torch + OpenCV). Built by CMake, not linked
 * into imgsearch.so: see model_core.h.
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;
