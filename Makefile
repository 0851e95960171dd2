# imgsearch — image retrieval inside PostgreSQL.
#
#   make / make install   build with PGXS (C glue) and CMake (C++ core)
#   make deps             install every Debian package the project needs
#   make check            deps, build, install, run every test suite
#   make demo             deps, build, install, start the demo (see docs/web.md)
#   make demo-stop        stop the demo
#   make bench            build, install, run every bench/*_bench.py (never part of check)
#   make eval             build, install, reproduce the paper's Table I on the demo
#                         collection (tools/eval.sh; EVAL_ARGS="--large" or
#                         EVAL_ARGS="--layout oxford DIR": docs/eval.md)
#   make model            export the default VGG16 model (pool, random weights)
#                         to models/vgg16_pool_random.pt
#   make model-int8       the same weights quantized to int8 (needs AVX-512 VNNI to
#                         run), calibrated on CALIBRATION (a folder of images; default
#                         the demo collection): models/vgg16_pool_random_int8.pt
#   make fuzz             build the libFuzzer harnesses (fuzz/, into build/fuzz), run
#                         the regression inputs, then fuzz each harness FUZZ_SECONDS
#                         (default 300); FUZZ_HARNESSES picks some (fuzz/run.sh list)

EXTENSION  := imgsearch
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" imgsearch.control)
PG_CONFIG  ?= pg_config
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc)

# This Makefile is two: the driver (the goals below, which set things up and
# run them) and, in a sub-make with IMGS_PGXS=1, the PGXS build (PGXS has a
# `check` of its own). Any mix of goals works: make clean check, make install check.
ifndef IMGS_PGXS

.NOTPARALLEL:
PGXS_GOALS := all install uninstall installcheck clean distclean
.DEFAULT_GOAL := all
.PHONY: $(PGXS_GOALS) deps check demo demo-stop bench eval model model-int8 fuzz
$(PGXS_GOALS):
	@$(MAKE) --no-print-directory IMGS_PGXS=1 $@

deps:
	@tools/install_deps.sh
# make check: packages (root only when some are missing), build, install
# (root, or the owner of PostgreSQL's directories), every suite (test/check.sh).
# CHECK_SUITES picks some: make check CHECK_SUITES="pgtap/lsh_exact t/019_lsh_crash"
CHECK_SUITES ?=
check: deps
	@$(MAKE) --no-print-directory -s IMGS_PGXS=1 install
	@test/check.sh $(CHECK_SUITES)
demo: deps
	@$(MAKE) --no-print-directory -s IMGS_PGXS=1 install
	@tools/demo.sh start
demo-stop:
	@tools/demo.sh stop
bench: deps
	@$(MAKE) --no-print-directory -s IMGS_PGXS=1 install
	@for b in bench/*_bench.py; do /usr/bin/python3 $$b || exit 1; done

EVAL_ARGS ?=
eval: deps
	@$(MAKE) --no-print-directory -s IMGS_PGXS=1 install
	@tools/eval.sh $(EVAL_ARGS)

FUZZ_SECONDS ?= 300
FUZZ_HARNESSES ?=
fuzz: deps
	@fuzz/run.sh build
	@status=0; fuzz/run.sh regress $(FUZZ_HARNESSES) || status=1; \
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh fuzz $(FUZZ_HARNESSES) || status=1; exit $$status

# Random weights: no semantic quality (see docs/model.md for ImageNet weights).
DEFAULT_MODEL := models/vgg16_pool_random.pt
model: $(DEFAULT_MODEL)
bench: model model-int8   # bench/vgg16_bench.py runs the default model and its int8 export
$(DEFAULT_MODEL): tools/export_vgg16.py
	@tools/install_deps.sh
	/usr/bin/python3 tools/export_vgg16.py --layer pool --weights random --seed 0 --out $@
# int8 (docs/model.md): calibrated on CALIBRATION, else the demo collection
INT8_MODEL := models/vgg16_pool_random_int8.pt
CALIBRATION ?=
model-int8: $(INT8_MODEL)
$(INT8_MODEL): tools/export_vgg16.py
	@tools/install_deps.sh
	/usr/bin/python3 tools/export_vgg16.py --layer pool --weights random --seed 0 --int8 \
		$(if $(CALIBRATION),--calibration $(CALIBRATION)) --out $@

else

MODULE_big  = $(EXTENSION)
# model_lib.c is the magic block of imgsearch_model.so (built by CMake).
C_SOURCES  := $(filter-out src/model/model_lib.c,$(sort $(wildcard src/*.c src/*/*.c)))
CXX_SOURCES:= $(sort $(wildcard src/*.cpp src/*/*.cpp))
CXX_HEADERS:= $(sort $(wildcard src/*/*.h src/*/*.hpp))
OBJS        = $(C_SOURCES:.c=.o)
CORE_LIB    = $(BUILD_DIR)/libimgsearch_core.a
# The VGG16 extractor (torch, OpenCV): a module of its own, loaded on first use.
MODEL_LIB   = $(BUILD_DIR)/imgsearch_model$(DLSUFFIX)

# The install script is the concatenation of these parts, in this order.
SQL_PARTS   = sql/header.sql sql/type.sql sql/cxx.sql sql/faissflat.sql sql/kdtree.sql sql/lsh.sql sql/check.sql sql/recall_setting.sql sql/recall.sql sql/model.sql sql/image.sql sql/shards.sql sql/model_workers.sql sql/ingest.sql sql/shard_ingest.sql sql/sharded_search.sql sql/range.sql sql/examples.sql sql/duplicates.sql
# The upgrade from 0.3: a header, then the parts 0.4 changed or added (the same text as in the install script).
# Released versions' scripts (0.1, 0.2, 0.3 and the upgrades between them) are kept as they were released.
UPGRADE_0_4_PARTS = sql/upgrade--0.3--0.4.sql sql/recall_setting.sql
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql sql/$(EXTENSION)--0.3--0.4.sql
# released versions' install scripts (as released) and the upgrade scripts
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*.sql))

# make installcheck: pg_regress (test/sql against test/expected) on the running
# server that PG* point to. vgg16_features needs the fixtures test/check.sh
# makes (IMGSEARCH_TEST_DATA) and that server's imgsearch.model set to them.
REGRESS     = $(filter-out $(if $(IMGSEARCH_TEST_DATA),,vgg16_features image_functions),$(basename $(notdir $(wildcard test/sql/*.sql))))
REGRESS_OPTS = --inputdir=test --outputdir=$(BUILD_DIR)/regress --load-extension=imgsearch --dbname=imgsearch_regress
REGRESS_PREP = regress-outputdir
.PHONY: regress-outputdir
regress-outputdir:
	@mkdir -p $(BUILD_DIR)/regress/results
	@$(if $(IMGSEARCH_TEST_DATA),,echo "installcheck: vgg16_features and image_functions left out (IMGSEARCH_TEST_DATA is not set; test/check.sh regress runs it)")

PG_CPPFLAGS = -I$(CURDIR)/src
# The core archive first, then what it uses (PGXS links with --as-needed).
SHLIB_LINK  = $(CORE_LIB) \
	-lfaiss -lblas -llapack -fopenmp -lstdc++ -lm
EXTRA_CLEAN = $(BUILD_DIR) $(DATA_built)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(shlib): $(CORE_LIB)
$(OBJS): $(wildcard src/*.h src/*/*.h)

$(CORE_LIB) $(MODEL_LIB) &: $(CXX_SOURCES) $(CXX_HEADERS) src/model/model_lib.c CMakeLists.txt
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release \
		-DPG_INCLUDEDIR_SERVER="$(shell $(PG_CONFIG) --includedir-server)" >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@touch $(CORE_LIB) $(MODEL_LIB)  # CMake leaves an unchanged target's date alone

all: $(MODEL_LIB)
install: install-model-lib
uninstall: uninstall-model-lib
.PHONY: install-model-lib uninstall-model-lib
install-model-lib: $(MODEL_LIB) installdirs
	$(INSTALL_SHLIB) $(MODEL_LIB) '$(DESTDIR)$(pkglibdir)/imgsearch_model$(DLSUFFIX)'
uninstall-model-lib:
	rm -f '$(DESTDIR)$(pkglibdir)/imgsearch_model$(DLSUFFIX)'

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS) imgsearch.control
	cat $(SQL_PARTS) > $@
sql/$(EXTENSION)--0.3--0.4.sql: $(UPGRADE_0_4_PARTS)
	cat $(UPGRADE_0_4_PARTS) > $@

endif
