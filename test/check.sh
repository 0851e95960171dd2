#!/bin/bash
# Runs imgsearch's test suites against throwaway clusters, after the extension
# is installed (make check does that first):
#
#   test/check.sh                      every suite
#   test/check.sh SUITE...             just those: a section, or one suite of it
#   test/check.sh --list               the suites' names
#
# Sections and their suites:
#   regress/NAME  pg_regress, test/sql/NAME.sql against test/expected/NAME.out
#   pgtap/NAME    pgTAP, test/pgtap/NAME.sql through pg_prove
#   t/NAME        perl TAP, test/t/NAME.pl (PostgreSQL::Test::Cluster, test/perl)
#   web/NAME      the API, its gateway, the page (web/test/run.sh; setup first)
#   eval/NAME     make eval's metrics, and tools/eval.py on a tiny collection
#   fuzz/NAME     a libFuzzer harness of fuzz/, briefly (fuzz/run.sh check)
#   unit/NAME     a C/C++ core tested without PostgreSQL (test/NAME/NAME_core_test.c,
#                 built by CMake into build/, run by ctest as unit/NAME)
# e.g. test/check.sh pgtap/lsh_exact t/019_lsh_crash
#
# Clusters belong to an unprivileged user (initdb refuses root) and live in a
# temp dir on free ports. Each suite counts once; the last line is
# "N passed, N failed".
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/local_cluster.sh"   # PATH, owner, as_owner, free_port, init_cluster, start_cluster
pgxs_src=$(dirname "$(pg_config --pgxs)")/..
PG_REGRESS=$pgxs_src/test/regress/pg_regress
PERL_TEST_LIB=$pgxs_src/test/perl

# --- which suites --------------------------------------------------------------
sections=(regress pgtap t web eval fuzz unit)
list_suites() { # section: its suites' names, in the order they run
	case $1 in
	regress) (cd "$repo/test/sql" && ls *.sql 2>/dev/null | sed 's/\.sql$//') ;;
	pgtap) (cd "$repo/test/pgtap" && ls *.sql 2>/dev/null | sed 's/\.sql$//') ;;
	t) (cd "$repo/test/t" && ls *.pl 2>/dev/null | sed 's/\.pl$//') ;;
	web) printf '%s\n' setup unit conformance api security write load browser ;;
	eval) printf '%s\n' metrics demo oxford classes ;;
	fuzz) "$repo/fuzz/run.sh" list ;;
	unit) for t in "$repo"/test/*/*_core_test.c; do   # as CMakeLists.txt finds them
			[ -e "$t" ] && basename "$(dirname "$t")"
		done ;;
	esac
}

usage() {
	sed -n '2,/^set /p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

declare -A wanted=()
if [ $# -eq 0 ]; then
	for s in "${sections[@]}"; do wanted[$s]=all; done
fi
for arg in "$@"; do
	case $arg in
	-h | --help) usage ;;
	--list)
		for s in "${sections[@]}"; do list_suites "$s" | sed "s|^|$s/|"; done
		exit 0 ;;
	esac
	arg=${arg%/}
	section=${arg%%/*}
	name=${arg#*/}
	case " ${sections[*]} " in *" $section "*) ;; *)
		echo "check.sh: no section '$section' (sections: ${sections[*]})" >&2; exit 2 ;;
	esac
	if [ "$section" = "$arg" ]; then
		wanted[$section]=all
	elif ! list_suites "$section" | grep -xF "$name" >/dev/null; then
		echo "check.sh: no suite '$arg' (test/check.sh --list)" >&2; exit 2
	elif [ "${wanted[$section]:-}" != all ]; then
		wanted[$section]+=" $name "
	fi
done

# selected SECTION: the chosen suites of SECTION, in run order.
selected() {
	local sel=${wanted[$1]:-}
	[ -n "$sel" ] || return 0
	if [ "$sel" = all ]; then list_suites "$1"; return; fi
	list_suites "$1" | while read -r n; do
		case "$sel" in *" $n "*) echo "$n" ;; esac
	done
}
# Every web suite needs web/setup's state.
[ -n "${wanted[web]:-}" ] && [ "${wanted[web]}" != all ] && wanted[web]+=" setup "
has() { [ -n "${wanted[$1]:-}" ]; }

# --- a work dir the clusters' owner can read -------------------------------------
work=$(mktemp -d /tmp/imgsearch-check.XXXXXX)
chmod 755 "$work"
# The clusters' owner may not be able to read the checkout (e.g. under /root).
cp -a "$repo/test" "$work/"
# the API's SQL and tools/shards.sh, for t/022_shards (the web API on a coordinator)
mkdir -p "$work/src/web"
cp -a "$repo/web/db" "$work/src/web/"
cp -a "$repo/tools" "$work/src/"
# results/ must be writable by the server too (COPY TO a file in tests)
mkdir -p "$work/regress/sql" "$work/regress/out/results" "$work/tap"
cp "$repo"/test/sql/*.sql "$work/regress/sql/"
cp -a "$repo/test/expected" "$work/regress/expected"
chown -R "$owner" "$work"
cd "$work"   # commands run as the owner start here, not in an unreadable checkout

passed=0
failed=0
failures=()
record() { # name status
	if [ "$2" -eq 0 ]; then
		passed=$((passed + 1)); printf '  ok      %s\n' "$1"
	else
		failed=$((failed + 1)); failures+=("$1"); printf '  FAILED  %s\n' "$1"
	fi
}
finish() {
	echo
	if [ $failed -eq 0 ]; then
		rm -rf "$work"
	else
		echo "failed: ${failures[*]}"
		echo "logs kept in $work"
	fi
	echo "$passed passed, $failed failed"
	[ $failed -eq 0 ]
	exit
}
setup_failed() { # what log
	cat "$2"
	record "$1" 1
	stop_cluster
	finish
}

# Runs one test command; its output is shown only when it fails.
run_case() { # name command...
	local name=$1; shift
	local log=$work/case-$((passed + failed)).log
	"$@" >"$log" 2>&1
	local status=$?
	[ $status -ne 0 ] && sed 's/^/    | /' "$log" | tail -n 60
	record "$name" $status
}

# vgg16_features test data: the seeded random-weight models (exported once,
# cached in build/), images, and their features computed by torchvision.
export IMGSEARCH_TEST_DATA=$work/model
if has regress || has pgtap || has t || has web || has eval; then
	/usr/bin/python3 "$repo/test/model/fixtures.py" --cache "$repo/build/test-models" \
		--out "$IMGSEARCH_TEST_DATA" >"$work/fixtures.log" 2>&1 ||
		setup_failed "test fixtures (test/model/fixtures.py)" "$work/fixtures.log"
fi

# --- the shared cluster for pg_regress, pgTAP, web and eval ------------------------
# with a model worker: every vgg16_features call of these suites goes through it
data=$work/data
stop_cluster() { [ -f "$data/postmaster.pid" ] && as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1; true; }
trap stop_cluster EXIT
if has regress || has pgtap || has web || has eval; then
	export PGHOST=127.0.0.1 PGPORT=$(free_port) PGUSER=postgres
	init_cluster "$data" "$PGPORT" "$work" "$work/initdb.log" \
		"lc_messages = 'C'" "fsync = off" "shared_buffers = 256MB" "max_connections = 40" \
		"imgsearch.model = '$IMGSEARCH_TEST_DATA/vgg16_pool.pt'" \
		"shared_preload_libraries = 'imgsearch'" "imgsearch.model_workers = 1" 2>>"$work/initdb.log" ||
		setup_failed "initdb" "$work/initdb.log"
	start_cluster "$data" "$work/postgres.log" || setup_failed "cluster start" "$work/postgres.log"
fi

# --- pg_regress --------------------------------------------------------------
regress_tests=$(selected regress)
if [ -n "$regress_tests" ]; then
	echo "pg_regress:"
	"$PG_REGRESS" --inputdir="$work/regress" --outputdir="$work/regress/out" \
		--bindir="$PGBIN" --host="$PGHOST" --port="$PGPORT" --user="$PGUSER" \
		--dbname=imgsearch_regress --load-extension=imgsearch \
		$regress_tests >"$work/regress/pg_regress.log" 2>&1
	regress_status=$?
	# Every test file counts: one that pg_regress did not report as ok
	# (missing expected file, aborted run) is a failure.
	for name in $regress_tests; do
		result=$(sed -nE "s/^(test| ) +$name +\.\.\. +(ok|FAILED|failed).*/\2/p" "$work/regress/pg_regress.log")
		[ "$result" = ok ] && s=0 || s=1
		[ -n "$result" ] && label=regress/$name || label="regress/$name (no result)"
		record "$label" $s
	done
	if [ $regress_status -ne 0 ]; then
		[ -f "$work/regress/out/regression.diffs" ] &&
			head -n 150 "$work/regress/out/regression.diffs" | sed 's/^/    | /'
		grep -qE '\.\.\. +(ok|FAILED|failed)' "$work/regress/pg_regress.log" ||
			sed 's/^/    | /' "$work/regress/pg_regress.log"
	fi
fi

# --- pgTAP -------------------------------------------------------------------
pgtap_tests=$(selected pgtap)
if [ -n "$pgtap_tests" ]; then
	echo "pgTAP:"
	psql -qX -d postgres -c "CREATE DATABASE imgsearch_tap" >/dev/null &&
		psql -qX -d imgsearch_tap -c "CREATE EXTENSION pgtap; CREATE EXTENSION imgsearch;" >/dev/null ||
		record "pgtap setup" 1
	for name in $pgtap_tests; do
		run_case "pgtap/$name" pg_prove --verbose -d imgsearch_tap "$work/test/pgtap/$name.sql"
	done
fi

# --- perl TAP (each test makes its own clusters) -------------------------------
tap_tests=$(selected t)
if [ -n "$tap_tests" ]; then
	echo "perl TAP:"
	for name in $tap_tests; do
		run_case "t/$name" as_owner env -C "$work" \
			PATH="$PATH" PG_REGRESS="$PG_REGRESS" TESTDIR="$work/tap" \
			PERL5LIB="$PERL_TEST_LIB:$work/test/perl" IMGSEARCH_SRC="$work/src" \
			IMGSEARCH_TEST_DATA="$IMGSEARCH_TEST_DATA" \
			prove --verbose "$work/test/t/$name.pl"
	done
fi

# --- web: the API, its gateway, the page (web/test/run.sh) ---------------------
web_suites=$(selected web)
if [ -n "$web_suites" ]; then
	echo "web:"
	for s in $web_suites; do
		run_case "web/$s" "$repo/web/test/run.sh" "$s" "$work/web"
	done
fi

# --- eval: make eval's metrics, and tools/eval.py on a tiny collection per layout
eval_suites=$(selected eval)
if [ -n "$eval_suites" ]; then
	echo "eval:"
	for s in $eval_suites; do
		run_case "eval/$s" "$repo/test/eval/run.sh" "$s" "$work/eval"
	done
fi

stop_cluster
trap - EXIT

# --- fuzz: the libFuzzer harnesses (fuzz/run.sh), bounded -------------------------
# Each harness is one test: every seed and regression input through it, then
# a fixed number of fuzzed inputs (FUZZ_CHECK_RUNS, default per harness) from a
# fixed seed: the same inputs on every machine. Needs no cluster.
fuzz_harnesses=$(selected fuzz)
if [ -n "$fuzz_harnesses" ]; then
	echo "fuzz:"
	fuzz_build_log=$work/fuzz-build.log
	"$repo/fuzz/run.sh" build >"$fuzz_build_log" 2>&1
	fuzz_built=$?
	for h in $fuzz_harnesses; do
		if [ $fuzz_built -ne 0 ]; then
			sed 's/^/    | /' "$fuzz_build_log" | tail -n 30
			record "fuzz/$h (build failed)" 1
			continue
		fi
		xfail=$(grep -c "^$h/[^@]" "$repo/fuzz/expected-failures" 2>/dev/null)
		label=fuzz/$h
		[ "${xfail:-0}" -gt 0 ] && label="fuzz/$h ($xfail known failures expected, see fuzz/expected-failures)"
		run_case "$label" env ${FUZZ_CHECK_RUNS:+FUZZ_RUNS=$FUZZ_CHECK_RUNS} FUZZ_SEED=1 \
			FUZZ_CRASH_DIR="$work/fuzz-crashes" "$repo/fuzz/run.sh" check "$h"
	done
fi

# --- unit: C/C++ cores tested alone, built by CMake (as make does), run by ctest ----------
# Each ctest test unit/NAME is one suite. Needs no cluster.
unit_tests=$(selected unit)
if [ -n "$unit_tests" ]; then
	echo "unit:"
	unit_build_log=$work/unit-build.log
	{
		cmake -S "$repo" -B "$repo/build" -DCMAKE_BUILD_TYPE=Release \
			-DPG_INCLUDEDIR_SERVER="$(pg_config --includedir-server)" &&
			cmake --build "$repo/build" -j "$(nproc)" --target $(printf '%s_core_test ' $unit_tests)
	} >"$unit_build_log" 2>&1
	unit_built=$?
	[ $unit_built -ne 0 ] && sed 's/^/    | /' "$unit_build_log" | tail -n 60
	for name in $unit_tests; do
		if [ $unit_built -ne 0 ]; then
			record "unit/$name (build failed)" 1
			continue
		fi
		run_case "unit/$name" ctest --test-dir "$repo/build" -R "^unit/$name\$" --no-tests=error --output-on-failure
	done
fi

finish
