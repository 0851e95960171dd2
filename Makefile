# imgsearch — image retrieval inside PostgreSQL.
#
#   make / make install   build with PGXS (C glue) and CMake (C++ core)
#   make deps             install every Debian package the project needs
#   make check            deps, build, install, run every test suite
#   make demo             deps, build, install, start the demo (see README.md)
#   make demo-stop        stop the demo
#   make bench            build, install, run every bench/*_bench.py (never part of check)

EXTENSION  := imgsearch
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" imgsearch.control)
PG_CONFIG  ?= pg_config
BUILD_DIR  ?= build
JOBS       ?= $(shell nproc)

# Goals that set things up and run them. They never mix with the PGXS build
# in one make process (PGXS defines a `check` of its own); they call it as a
# sub-make instead.
DRIVER_GOALS := deps check demo demo-stop bench

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

else

MODULE_big  = $(EXTENSION)
C_SOURCES  := $(sort $(wildcard src/*.c src/*/*.c))
CXX_SOURCES:= $(sort $(wildcard src/*.cpp src/*/*.cpp))
CXX_HEADERS:= $(sort $(wildcard src/*/*.h src/*/*.hpp))
OBJS        = $(C_SOURCES:.c=.o)
CORE_LIB    = $(BUILD_DIR)/libimgsearch_core.a

# The install script is the concatenation of these parts, in this order.
SQL_PARTS   = sql/header.sql sql/type.sql sql/cxx.sql sql/faissflat.sql
DATA_built  = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA        = $(filter-out $(DATA_built),$(wildcard sql/$(EXTENSION)--*--*.sql))

PG_CPPFLAGS = -I$(CURDIR)/src
# The core archive first, then what it uses (PGXS links with --as-needed).
SHLIB_LINK  = $(CORE_LIB) \
	-ltorch -ltorch_cpu -lc10 \
	-lopencv_imgcodecs -lopencv_imgproc -lopencv_core \
	-lfaiss -lblas -llapack -fopenmp -lstdc++ -lm
EXTRA_CLEAN = $(BUILD_DIR) $(DATA_built)

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

$(shlib): $(CORE_LIB)
$(OBJS): $(wildcard src/*.h src/*/*.h)

$(CORE_LIB): $(CXX_SOURCES) $(CXX_HEADERS) CMakeLists.txt
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

$(DATA_built): $(SQL_PARTS) imgsearch.control
	cat $(SQL_PARTS) > $@

endif
