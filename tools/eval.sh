#!/bin/bash
# make eval: tools/eval.py (the paper's Table I on a collection) on a database.
# With PGHOST, PGPORT, PGDATABASE or PGSERVICE set, on the database they name
# (the role must create schemas and indexes; imgsearch installed there).
# Otherwise on a cluster of eval's own (.eval/, port IMGSEARCH_EVAL_PORT or
# 54339), started for the run and stopped after; its data stays, so a rerun
# resumes loading and extraction. Its model is IMGSEARCH_MODEL or the default
# one (make model: random weights).
# Arguments go to tools/eval.py: make eval EVAL_ARGS="--large" or
# EVAL_ARGS="--layout oxford /data/paris6k".
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/local_cluster.sh"

if [ -n "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
	exec /usr/bin/python3 "$repo/tools/eval.py" "$@"
fi

eval_dir=$(local_dir eval /var/tmp/imgsearch-eval)
export IMGSEARCH_EVAL_DIR=$eval_dir
data=$eval_dir/pgdata
port=${IMGSEARCH_EVAL_PORT:-54339}
own_dir "$eval_dir"
model=$(server_model "$eval_dir")

[ -f "$data/PG_VERSION" ] || echo "eval: creating a cluster in $data"
init_cluster "$data" "$port" "$eval_dir" "$eval_dir/initdb.log" "shared_buffers = 512MB" \
	"shared_preload_libraries = 'imgsearch'" "imgsearch.model_workers = 1"
as_owner pg_ctl -D "$data" -l "$eval_dir/postgres.log" -w start >/dev/null
trap 'as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=imgsearch_eval
ensure_database "$port" "$PGDATABASE"
psql -qX -c "ALTER DATABASE $PGDATABASE SET imgsearch.model = '$model'"
/usr/bin/python3 "$repo/tools/eval.py" "$@"
