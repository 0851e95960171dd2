#!/bin/bash
# Runs every test suite of imgsearch against throwaway clusters, after the
# extension is installed (make check does that first). Clusters belong to an
# unprivileged user (initdb refuses root) and live in a temp dir on free ports.
#
# Suites: pg_regress (test/sql -> expected/), pgTAP (test/pgtap/*.sql via
# pg_prove), perl TAP (test/t/*.pl via prove, PostgreSQL::Test::Cluster), web,
# eval (make eval: test/eval/run.sh), fuzz (the libFuzzer harnesses of fuzz/, briefly: fuzz/run.sh check), unit
# (C/C++ cores tested without PostgreSQL: test/*/run.sh).
# Each test file counts once; the last line is "N passed, N failed".
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pgxs_src=$(dirname "$(pg_config --pgxs)")/..
PGBIN=$(pg_config --bindir)
PG_REGRESS=$pgxs_src/test/regress/pg_regress
PERL_TEST_LIB=$pgxs_src/test/perl
export PATH=$PGBIN:$PATH

if [ "$(id -u)" -eq 0 ]; then
	owner=postgres                     # created by the postgresql package
	as_owner() { runuser -u "$owner" -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

work=$(mktemp -d /tmp/imgsearch-check.XXXXXX)
chmod 755 "$work"
# The clusters' owner may not be able to read the checkout (e.g. under /root).
cp -a "$repo/test" "$repo/expected" "$work/"
# the API's SQL and tools/shards.sh, for t/022_shards (the web API on a coordinator)
mkdir -p "$work/src/web"
cp -a "$repo/web/db" "$work/src/web/"
cp -a "$repo/tools" "$work/src/"
# results/ must be writable by the server too (COPY TO a file in tests)
mkdir -p "$work/regress/sql" "$work/regress/out/results" "$work/tap"
cp "$repo"/test/sql/*.sql "$work/regress/sql/"
cp -a "$repo/expected" "$work/regress/expected"
chown -R "$owner" "$work"
cd "$work"   # commands run as the owner start here, not in an unreadable checkout

# vgg16_features test data: the seeded random-weight models (exported once,
# cached in build/), images, and their features computed by torchvision.
export IMGSEARCH_TEST_DATA=$work/model
/usr/bin/python3 "$repo/test/model/fixtures.py" --cache "$repo/build/test-models" \
	--out "$IMGSEARCH_TEST_DATA" >"$work/fixtures.log" 2>&1 ||
	{ cat "$work/fixtures.log"; echo "0 passed, 1 failed"; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the shared cluster for pg_regress and pgTAP ---------------------------
export PGHOST=127.0.0.1 PGPORT=$(free_port) PGUSER=postgres
data=$work/data
as_owner initdb -D "$data" -U postgres -A trust --locale=C -E UTF8 >"$work/initdb.log" 2>&1 ||
	{ cat "$work/initdb.log"; echo "0 passed, 1 failed"; exit 1; }
cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$work'
lc_messages = 'C'
fsync = off
shared_buffers = 256MB
max_connections = 40
imgsearch.model = '$IMGSEARCH_TEST_DATA/vgg16_pool.pt'
CONF
as_owner pg_ctl -D "$data" -l "$work/postgres.log" -w start >/dev/null ||
	{ cat "$work/postgres.log"; echo "0 passed, 1 failed"; exit 1; }
stop_cluster() { as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true; }
trap stop_cluster EXIT

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

# Runs one test command; its output is shown only when it fails.
run_case() { # name command...
	local name=$1; shift
	local log=$work/case-$((passed + failed)).log
	"$@" >"$log" 2>&1
	local status=$?
	[ $status -ne 0 ] && sed 's/^/    | /' "$log" | tail -n 60
	record "$name" $status
}

# --- pg_regress --------------------------------------------------------------
echo "pg_regress:"
regress_tests=$(cd "$repo/test/sql" && ls *.sql 2>/dev/null | sed 's/\.sql$//')
if [ -n "$regress_tests" ]; then
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
echo "pgTAP:"
psql -qX -d postgres -c "CREATE DATABASE imgsearch_tap" >/dev/null &&
	psql -qX -d imgsearch_tap -c "CREATE EXTENSION pgtap; CREATE EXTENSION imgsearch;" >/dev/null ||
	record "pgtap setup" 1
for f in "$repo"/test/pgtap/*.sql; do
	[ -e "$f" ] || continue
	run_case "pgtap/$(basename "$f" .sql)" pg_prove --verbose -d imgsearch_tap "$f"
done

# --- perl TAP (each test makes its own clusters) -------------------------------
echo "perl TAP:"
for f in "$work"/test/t/*.pl; do
	[ -e "$f" ] || continue
	run_case "t/$(basename "$f" .pl)" as_owner env -C "$work" \
		PATH="$PATH" PG_REGRESS="$PG_REGRESS" TESTDIR="$work/tap" PERL5LIB="$PERL_TEST_LIB" IMGSEARCH_SRC="$work/src" \
		prove --verbose "$f"
done

# --- web: the API, its gateway, the page (web/test/run.sh) ---------------------
echo "web:"
for s in setup unit conformance api security browser; do
	run_case "web/$s" "$repo/web/test/run.sh" "$s" "$work/web"
done

# --- eval: make eval's metrics, and tools/eval.py on a tiny collection per layout
echo "eval:"
for s in metrics demo oxford classes; do
	run_case "eval/$s" "$repo/test/eval/run.sh" "$s" "$work/eval"
done

stop_cluster
trap - EXIT

# --- fuzz: the libFuzzer harnesses (fuzz/run.sh), bounded -------------------------
# Each harness is one test: every seed and regression input through it, then
# FUZZ_CHECK_SECONDS of fuzzing with a fixed seed. Needs no cluster.
echo "fuzz:"
fuzz_build_log=$work/fuzz-build.log
"$repo/fuzz/run.sh" build >"$fuzz_build_log" 2>&1
fuzz_built=$?
for h in $("$repo/fuzz/run.sh" list); do
	if [ $fuzz_built -ne 0 ]; then
		sed 's/^/    | /' "$fuzz_build_log" | tail -n 30
		record "fuzz/$h (build failed)" 1
		continue
	fi
	xfail=$(grep -c "^$h/[^@]" "$repo/fuzz/expected-failures" 2>/dev/null)
	label=fuzz/$h
	[ "${xfail:-0}" -gt 0 ] && label="fuzz/$h ($xfail known failures expected, see fuzz/expected-failures)"
	run_case "$label" env FUZZ_SECONDS="${FUZZ_CHECK_SECONDS:-12}" FUZZ_SEED=1 \
		FUZZ_CRASH_DIR="$work/fuzz-crashes" "$repo/fuzz/run.sh" check "$h"
done

# --- unit: C/C++ cores tested alone, each test/<core>/run.sh one test -----------------
echo "unit:"
for t in "$repo"/test/*/run.sh; do
	[ -e "$t" ] || continue
	case "$t" in "$repo"/test/eval/*) continue ;; esac   # eval has a section of its own above
	run_case "unit/$(basename "$(dirname "$t")")" env BUILD_DIR="$repo/build" "$t"
done

echo
if [ $failed -eq 0 ]; then
	rm -rf "$work"
else
	echo "failed: ${failures[*]}"
	echo "logs kept in $work"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
