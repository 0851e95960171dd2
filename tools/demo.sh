#!/bin/bash
# The demo's local PostgreSQL cluster: `tools/demo.sh start|stop|status`.
# start is idempotent: it reuses the cluster under .demo/ when it exists.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$(pg_config --bindir)
export PATH=$PGBIN:$PATH
port=${IMGSEARCH_DEMO_PORT:-54329}
db=imgsearch

if [ "$(id -u)" -eq 0 ]; then
	owner=postgres
	as_owner() { runuser -u "$owner" -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

# The cluster's owner must reach the data directory; a checkout under /root
# is closed to it, so fall back to a directory of its own.
demo_dir=$repo/.demo
if ! as_owner test -x "$repo"; then
	demo_dir=/var/tmp/imgsearch-demo
fi
data=$demo_dir/pgdata

start() {
	mkdir -p "$demo_dir"
	chown "$owner" "$demo_dir"
	if [ ! -f "$data/PG_VERSION" ]; then
		echo "demo: creating a cluster in $data"
		as_owner initdb -D "$data" -U postgres -A trust --locale=C -E UTF8 >"$demo_dir/initdb.log"
		cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$demo_dir'
shared_buffers = 512MB
CONF
	fi
	if ! as_owner pg_ctl -D "$data" status >/dev/null 2>&1; then
		as_owner pg_ctl -D "$data" -l "$demo_dir/postgres.log" -w start >/dev/null
	fi
	psql -qX -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
		psql -qX -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE $db"
	psql -qX -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "CREATE EXTENSION IF NOT EXISTS imgsearch"
	cat <<MSG
demo: PostgreSQL is running with the imgsearch extension created.
  connect:  psql -h 127.0.0.1 -p $port -U postgres $db
  try:      SELECT '[1,2,3]'::imgfeat <-> '[4,6,8]';
  stop:     make demo-stop
MSG
}

stop() {
	if [ -f "$data/PG_VERSION" ] && as_owner pg_ctl -D "$data" status >/dev/null 2>&1; then
		as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null
		echo "demo: stopped"
	else
		echo "demo: not running"
	fi
}

case "${1:-}" in
	start) start ;;
	stop) stop ;;
	status) as_owner pg_ctl -D "$data" status ;;
	*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
