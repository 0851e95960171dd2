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
#   make fuzz             build the libFuzzer harnesses (fuzz/, into build/fuzz), run
#                         the regression inputs, then fuzz each harness FUZZ_SECONDS
#                         (default 300); FUZZ_HARNESSES picks some (fuzz/run.sh list)

EXTENSION  := imgsearch
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" imgsearch.control)
PG_CONFIG  ?= pg_config
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc)

# Goals that set things up and run them. They never mix with the PGXS build
# in one make process (PGXS defines a `check` of its own); they call it as a
# sub-make instead.
DRIVER_GOALS := deps check demo demo-stop bench eval model fuzz

ifneq ($(filter $(DRIVER_GOALS),$(MAKECMDGOALS)),)

.PHONY: $(DRIVER_GOALS)
deps:
	@tools/install_deps.sh
check: deps
	@$(MAKE) --no-print-directory -s install
	@test/check.sh
demo: deps
	@$(MAKE) --no-print-directory -s install
	@tools/demo.sh start
demo-stop:
	@tools/demo.sh stop
bench: deps
	@$(MAKE) --no-print-directory -s install
	@for b in bench/*_bench.py; do /usr/bin/python3 $$b || exit 1; done

EVAL_ARGS ?=
eval: deps
	@$(MAKE) --no-print-directory -s install
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
bench: model   # bench/vgg16_bench.py runs the default model
$(DEFAULT_MODEL): tools/export_vgg16.py
	@tools/install_deps.sh
	/usr/bin/python3 tools/export_vgg16.py --layer pool --weights random --seed 0 --out $@

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
SQL_PARTS   = sql/header.sql sql/type.sql sql/cxx.sql sql/faissflat.sql sql/kdtree.sql sql/lsh.sql sql/check.sql sql/recall.sql sql/model.sql sql/shards.sql
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))

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

$(DATA_built): $(SQL_PARTS) imgsearch.control
	cat $(SQL_PARTS) > $@

endif
