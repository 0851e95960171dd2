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
PGBIN=$(pg_config --bindir)
export PATH=$PGBIN:$PATH

if [ -n "${PGHOST:-}${PGPORT:-}${PGDATABASE:-}${PGSERVICE:-}" ]; then
	exec /usr/bin/python3 "$repo/tools/eval.py" "$@"
fi

if [ "$(id -u)" -eq 0 ]; then
	owner=postgres
	as_owner() { runuser -u "$owner" -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi
eval_dir=$repo/.eval
as_owner test -x "$repo" || eval_dir=/var/tmp/imgsearch-eval   # the server's owner must reach its data
export IMGSEARCH_EVAL_DIR=$eval_dir
data=$eval_dir/pgdata
port=${IMGSEARCH_EVAL_PORT:-54339}
mkdir -p "$eval_dir"
chown "$owner" "$eval_dir"

model=${IMGSEARCH_MODEL:-}
if [ -z "$model" ]; then
	make -s -C "$repo" model
	model=$repo/models/vgg16_pool_random.pt
fi
mkdir -p "$eval_dir/models"
cp -u "$model" "$eval_dir/models/"
model=$eval_dir/models/$(basename "$model")
chmod 755 "$eval_dir/models"
chmod 644 "$model"

if [ ! -f "$data/PG_VERSION" ]; then
	echo "eval: creating a cluster in $data"
	as_owner initdb -D "$data" -U postgres -A trust --locale=C -E UTF8 >"$eval_dir/initdb.log"
	cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$eval_dir'
shared_buffers = 512MB
CONF
fi
as_owner pg_ctl -D "$data" -l "$eval_dir/postgres.log" -w start >/dev/null
trap 'as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=imgsearch_eval
psql -qX -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE'" | grep -q 1 ||
	psql -qX -d postgres -c "CREATE DATABASE $PGDATABASE"
psql -qX -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS imgsearch"
psql -qX -c "ALTER DATABASE $PGDATABASE SET imgsearch.model = '$model'"
/usr/bin/python3 "$repo/tools/eval.py" "$@"
