#!/bin/bash
# make eval's tests (test/check.sh runs them against its cluster, PG* set):
#   run.sh metrics                  the AP and recall code against hand-worked cases
#   run.sh demo|oxford|classes WORK make eval's tools/eval.sh, on the PG* database, end to end on a tiny collection
#                                   in that layout (built in WORK), checked by
#                                   check_result.py against numpy; under a minute
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
layout=$1

if [ "$layout" = metrics ]; then
	exec /usr/bin/python3 "$here/metrics_test.py"
fi
work=$2
mkdir -p "$work"
[ -d "$work/collections/$layout" ] || /usr/bin/python3 "$here/make_collections.py" "$work/collections"

export PGDATABASE=imgsearch_eval_$layout
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE" -c "CREATE DATABASE $PGDATABASE"
psql -qX -c "CREATE EXTENSION imgsearch"
per_class=1
result=$work/results-$layout/$layout-$(date +%F).json

eval_run() { # log
	local start=$SECONDS status=0
	"$repo/tools/eval.sh" "$work/collections/$layout" --k 10 --per-class $per_class \
		--out "$work/results-$layout" >"$1" 2>&1 || status=$?
	cat "$1"
	[ $status -eq 0 ] || { echo "FAIL tools/eval.sh exited with $status"; exit 1; }
	local took=$((SECONDS - start))
	[ $took -lt 60 ] || { echo "FAIL tools/eval.sh took $took s (the issue allows under a minute)"; exit 1; }
	echo "ok   tools/eval.sh took $took s"
}
eval_run "$work/eval-$layout.log"
/usr/bin/python3 "$here/check_result.py" "$layout" "$work/collections/$layout" "$result" $per_class

if [ "$layout" = demo ]; then
	# A second run resumes: nothing to load or extract again, the same scores.
	cp "$result" "$work/first.json"
	eval_run "$work/eval-$layout-again.log"
	if grep -qE '^(images|features|query features):' "$work/eval-$layout-again.log"; then
		echo "FAIL the second run loaded or extracted again"; exit 1
	fi
	/usr/bin/python3 - "$work/first.json" "$result" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
scores = lambda r: [(x['label'], x['map_at_k'], x['map'], x['recall_at_k']) for x in r['results']]
assert scores(a) == scores(b), 'the second run scored differently'
print('ok   the second run resumed: nothing extracted again, the same scores')
PY
fi
