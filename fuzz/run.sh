#!/bin/bash
# Builds and runs the libFuzzer harnesses (see docs/development.md, "Fuzzing").
#
#   fuzz/run.sh build              configure and build them into build/fuzz (clang-14)
#   fuzz/run.sh list               the harness names
#   fuzz/run.sh regress [H...]     every seed (fuzz/corpus/H) and regression input
#                                  (fuzz/regressions/H) through harness H: none may fail,
#                                  but those listed in fuzz/expected-failures, which must
#                                  (XFAIL; one that passes is an XPASS, a failure)
#   fuzz/run.sh fuzz [H...]        fuzz each harness for FUZZ_SECONDS (default 300); the
#                                  corpus grows in build/fuzz/corpus/H, findings go to
#                                  FUZZ_CRASH_DIR/H (default build/fuzz/crashes/H); a summary
#   fuzz/run.sh check H            test/check.sh's bounded run of one harness: regress, then
#                                  a fixed number of inputs (FUZZ_RUNS, default per harness:
#                                  check_runs) from a fixed seed (FUZZ_SEED, default 1) and
#                                  the seed corpus only. A count, not a time: the same inputs
#                                  on every machine, however fast or loaded, so a finding is
#                                  found every time or never (a bound in seconds let CI, on a
#                                  faster machine, reach an input a loaded run here had not)
#
# Exit status: 0 when nothing failed. Harnesses: imgfeat_text, imgfeat_recv, image_decode.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${FUZZ_BUILD_DIR:-$repo/build/fuzz}
harnesses=(imgfeat_text imgfeat_recv image_decode)
CC=${FUZZ_CC:-clang-14}
CXX=${FUZZ_CXX:-clang++-14}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

# Per harness libFuzzer options. image_decode: a decode may allocate a few bytes
# per pixel its max_pixels (4 M) allows, far below 256 MB; a bomb goes above.
options() {
	case $1 in
	imgfeat_text) echo "-timeout=20 -max_len=8192 -dict=$here/imgfeat_text.dict" ;;
	imgfeat_recv) echo "-timeout=20 -max_len=8192" ;;
	image_decode) echo "-timeout=60 -max_len=65536 -malloc_limit_mb=256 -rss_limit_mb=1536" ;;
	*) echo "fuzz/run.sh: no harness '$1' (have: ${harnesses[*]})" >&2; return 1 ;;
	esac
}

# Inputs test/check.sh's run tries per harness: about 10 s each on this
# machine when idle.
check_runs() {
	case $1 in
	imgfeat_text | imgfeat_recv) echo 2000000 ;;
	image_decode) echo 15000 ;;
	esac
}

binary() { echo "$build/$1_fuzzer"; }

cmd_build() {
	if ! command -v "$CC" >/dev/null || ! command -v "$CXX" >/dev/null; then
		echo "fuzz/run.sh: $CC/$CXX not found (make deps installs clang-14 and libclang-rt-14-dev)" >&2
		return 1
	fi
	mkdir -p "$build"
	{
		cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER="$CC" -DCMAKE_CXX_COMPILER="$CXX" &&
			cmake --build "$build" -j "$(nproc)"
	} >"$build/build.log" 2>&1 || { cat "$build/build.log" >&2; return 1; }
	grep -i 'warning:' "$build/build.log" >&2
	echo "fuzz harnesses built in $build"
}

need_built() {
	local h
	for h in "$@"; do
		[ -x "$(binary "$h")" ] || { echo "fuzz/run.sh: $(binary "$h") is not built (fuzz/run.sh build)" >&2; return 1; }
	done
}

# The expected failures of harness $1, one file name per line.
expected_failures() {
	sed -n "s|^$1/\([^ #]*\).*|\1|p" "$here/expected-failures" 2>/dev/null
}

# Shows the lines of a libFuzzer log that say what went wrong.
show_finding() {
	grep -E 'ERROR:|SUMMARY:|invariant broken|runtime error:|uncaught|Test unit written' "$1" | head -n 8 | sed 's/^/      /'
}

cmd_regress() {
	local h status=0
	for h in "$@"; do
		options "$h" >/dev/null || return 1
		need_built "$h" || return 1
		local bin opts log xfail f name seeds
		bin=$(binary "$h"); opts=$(options "$h")
		log=$(mktemp); xfail=$(expected_failures "$h")
		seeds=("$here/corpus/$h"/*)
		# The seeds all at once: none may fail.
		if [ -e "${seeds[0]}" ]; then
			if "$bin" $opts "${seeds[@]}" >"$log" 2>&1; then
				echo "  ok      $h: ${#seeds[@]} seed inputs"
			else
				echo "  FAILED  $h: a seed input (fuzz/corpus/$h)"; show_finding "$log"; status=1
			fi
		fi
		# Each regression input alone, so that each gets its verdict.
		for f in "$here/regressions/$h"/*; do
			[ -e "$f" ] || continue
			name=$(basename "$f")
			"$bin" $opts "$f" >"$log" 2>&1
			local rc=$?
			if grep -qxF "$name" <<<"$xfail"; then
				if [ $rc -ne 0 ]; then
					echo "  XFAIL   $h/$name (expected to fail: fuzz/expected-failures)"; show_finding "$log"
				else
					echo "  XPASS   $h/$name passes now: remove it from fuzz/expected-failures"; status=1
				fi
			elif [ $rc -ne 0 ]; then
				echo "  FAILED  $h/$name (fuzz/regressions/$h/$name)"; show_finding "$log"; status=1
			else
				echo "  ok      $h/$name"
			fi
		done
		rm -f "$log"
	done
	return $status
}

# Fuzzes harness $1 into working corpus $3 for a budget $2 ("300s" or "15000 runs");
# extra args go to libFuzzer. Prints one summary line; returns non-zero on a finding.
fuzz_one() {
	local h=$1 budget=$2 corpus=$3; shift 3
	local limit
	case $budget in
	*" runs") limit=-runs=${budget% runs} ;;
	*s) limit=-max_total_time=${budget%s} ;;
	esac
	local bin opts crashes log rc
	bin=$(binary "$h"); opts=$(options "$h")
	crashes=${FUZZ_CRASH_DIR:-$build/crashes}/$h
	mkdir -p "$corpus" "$crashes"
	log=${FUZZ_CRASH_DIR:-$build/crashes}/$h.log
	"$bin" $opts "$limit" -print_final_stats=1 -artifact_prefix="$crashes/" \
		"$@" "$corpus" "$here/corpus/$h" >"$log" 2>&1
	rc=$?
	local runs cov
	runs=$(LC_ALL=C sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -aoE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
	if [ $rc -eq 0 ]; then
		echo "  ok      $h: ${runs:-?} runs (budget ${budget}), ${cov:-no coverage line}"
	else
		echo "  FOUND   $h: exit $rc after ${runs:-?} runs; input kept in $crashes/ (log: $log)"
		show_finding "$log"
		echo "      to keep it as a regression: cp $crashes/<file> fuzz/regressions/$h/<name>"
	fi
	return $rc
}

cmd_fuzz() {
	local h status=0 seconds=${FUZZ_SECONDS:-300}
	need_built "$@" || return 1
	for h in "$@"; do options "$h" >/dev/null || return 1; done
	echo "fuzzing ${*} for ${seconds}s each (FUZZ_SECONDS); findings in ${FUZZ_CRASH_DIR:-$build/crashes}/"
	for h in "$@"; do
		fuzz_one "$h" "${seconds}s" "$build/corpus/$h" || status=1
	done
	echo
	[ $status -eq 0 ] && echo "no findings" || echo "findings: see above"
	return $status
}

cmd_check() {
	local h=$1 status=0 tmp
	cmd_regress "$h" || status=1
	tmp=$(mktemp -d)
	if ! fuzz_one "$h" "${FUZZ_RUNS:-$(check_runs "$h")} runs" "$tmp" -seed="${FUZZ_SEED:-1}"; then
		if grep -qxF @fuzz-oom <<<"$(expected_failures "$h")" &&
			grep -q 'ERROR: libFuzzer: out-of-memory' "${FUZZ_CRASH_DIR:-$build/crashes}/$h.log"; then
			echo "  XFAIL   $h: the out-of-memory finding above is expected (fuzz/expected-failures: $h/@fuzz-oom)"
		else
			status=1
		fi
	fi
	rm -rf "$tmp"
	return $status
}

cmd=${1:-}
[ $# -gt 0 ] && shift
[ $# -eq 0 ] && [ "$cmd" != check ] && set -- "${harnesses[@]}"
case $cmd in
build) cmd_build ;;
list) printf '%s\n' "${harnesses[@]}" ;;
regress) cmd_regress "$@" ;;
fuzz) cmd_fuzz "$@" ;;
check) [ $# -eq 1 ] || { echo "usage: fuzz/run.sh check HARNESS" >&2; exit 2; }; need_built "$1" && cmd_check "$1" ;;
*) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
