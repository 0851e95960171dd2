#!/bin/bash
# A coordinator and N shard clusters on this machine, on free loopback ports,
# for trying and testing scale-out over postgres_fdw (see
# docs/sharding.md):
#
#   tools/shards.sh start N    create (or reuse) and start them
#   tools/shards.sh stop       stop them all
#   tools/shards.sh status     ports and row counts
#   tools/shards.sh reindex    REINDEX gallery.images on every shard (after a
#                              load: kdtree and lsh built on no rows have no tree)
#   tools/shards.sh sql HOST:PORT ...   print the coordinator's SQL for these
#                              shards (what start runs; for real servers too:
#                              IMGSEARCH_SHARDS_DB and IMGSEARCH_SHARDS_USER name
#                              the shards' database and user, default imgsearch
#                              and postgres)
#
# Every cluster has a database imgsearch with the extension. Each shard holds
# an ordinary gallery.images (web/db/schema.sql) with the same indexes; the
# coordinator's gallery.images is partitioned by hash on id, one foreign table
# partition per shard. IMGSEARCH_SHARDS_DIR (default /var/tmp/imgsearch-shards)
# holds the clusters.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/local_cluster.sh"
dir=${IMGSEARCH_SHARDS_DIR:-/var/tmp/imgsearch-shards}
db=imgsearch
shard_db=${IMGSEARCH_SHARDS_DB:-$db}
shard_user=${IMGSEARCH_SHARDS_USER:-postgres}

shard_port() { port_of "$dir/$1"; }

# The shard's part: the table and its indexes (L2 and cosine for the exact
# index methods, L2 for lsh).
shard_sql() {
	cat "$repo/web/db/schema.sql"
	cat <<'SQL'
CREATE INDEX IF NOT EXISTS images_feat_faissflat ON gallery.images USING faissflat (feat);
CREATE INDEX IF NOT EXISTS images_feat_faissflat_cos ON gallery.images USING faissflat (feat imgfeat_cosine_ops);
CREATE INDEX IF NOT EXISTS images_feat_kdtree ON gallery.images USING kdtree (feat);
CREATE INDEX IF NOT EXISTS images_feat_kdtree_cos ON gallery.images USING kdtree (feat imgfeat_cosine_ops);
CREATE INDEX IF NOT EXISTS images_feat_lsh ON gallery.images USING lsh (feat);
SQL
}

# The coordinator's part for shards "host:port" ... (database imgsearch,
# user postgres): servers, user mappings, the partitioned table, and the
# servers and tables per method (imgsearch_shard_methods: postgres_fdw ships
# no settings, so imgsearch.method reaches a shard by the server's options).
coordinator_sql() {
	local n=$# i=0 s host port
	cat <<'SQL'
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
SQL
	cat "$repo/web/db/schema.sql"
	cat <<'SQL'
-- gallery.images becomes partitioned: same columns, no unique indexes
-- (foreign tables have none; each shard enforces its own).
DO $$
BEGIN
	IF (SELECT relkind FROM pg_class WHERE oid = 'gallery.images'::regclass) = 'r' THEN
		ALTER TABLE gallery.images RENAME TO images_template;
		CREATE TABLE gallery.images (LIKE gallery.images_template INCLUDING DEFAULTS)
			PARTITION BY HASH (id);
		DROP TABLE gallery.images_template;
	END IF;
END $$;
SQL
	for s in "$@"; do
		host=${s%:*} port=${s##*:}
		cat <<SQL
CREATE SERVER IF NOT EXISTS shard$i FOREIGN DATA WRAPPER postgres_fdw
	OPTIONS (host '$host', port '$port', dbname '$shard_db', extensions 'imgsearch',
	         async_capable 'true', connect_timeout '5', fetch_size '1000');
CREATE USER MAPPING IF NOT EXISTS FOR PUBLIC SERVER shard$i
	OPTIONS (user '$shard_user', password_required 'false');
CREATE FOREIGN TABLE IF NOT EXISTS gallery.images_$i PARTITION OF gallery.images
	FOR VALUES WITH (MODULUS $n, REMAINDER $i) SERVER shard$i
	OPTIONS (schema_name 'gallery', table_name 'images');
SQL
		i=$((i + 1))
	done
	echo "SELECT count(*) AS method_tables FROM imgsearch_shard_methods('gallery.images');"
}

start_node() { # name
	init_cluster "$dir/$1" free "$dir" "$dir/$1-initdb.log" "shared_buffers = 256MB" "lc_messages = 'C'" \
		"shared_preload_libraries = 'imgsearch'" "imgsearch.model_workers = 1"
	start_cluster "$dir/$1" "$dir/$1.log"
	ensure_database "$(shard_port "$1")" "$db"
}

start() {
	local n=${1:?usage: tools/shards.sh start N}
	[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "shards: N must be a positive number" >&2; exit 2; }
	own_dir "$dir"
	local have
	have=$(find "$dir" -mindepth 1 -maxdepth 1 -name 'shard*' -type d 2>/dev/null | wc -l)
	if [ "$have" -ne 0 ] && [ "$have" -ne "$n" ]; then
		echo "shards: $dir has $have shards; tools/shards.sh stop and remove it to change N" >&2
		exit 2
	fi
	local shards=() i
	for i in $(seq 0 $((n - 1))); do
		start_node "shard$i"
		shard_sql | psql_at "$(shard_port "shard$i")" -d "$db" >/dev/null
		shards+=("127.0.0.1:$(shard_port "shard$i")")
	done
	start_node coordinator
	coordinator_sql "${shards[@]}" | psql_at "$(shard_port coordinator)" -d "$db" >/dev/null
	status
}

stop() {
	local data
	for data in "$dir"/coordinator "$dir"/shard*; do
		[ -f "$data/PG_VERSION" ] || continue
		as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	done
}

status() {
	local data name port
	for data in "$dir"/coordinator "$dir"/shard*; do
		[ -f "$data/PG_VERSION" ] || continue
		name=$(basename "$data") port=$(shard_port "$name")
		if as_owner pg_ctl -D "$data" status >/dev/null 2>&1; then
			echo "$name: 127.0.0.1:$port, $(psql_at "$port" -d "$db" -tAc 'SELECT count(*) FROM gallery.images') images"
		else
			echo "$name: 127.0.0.1:$port, stopped"
		fi
	done
}

reindex() {
	local data
	for data in "$dir"/shard*; do
		[ -f "$data/PG_VERSION" ] || continue
		psql_at "$(shard_port "$(basename "$data")")" -d "$db" -c 'REINDEX TABLE gallery.images'
	done
}

case "${1:-}" in
	start) start "${2:-}" ;;
	stop) stop ;;
	status) status ;;
	reindex) reindex ;;
	sql) shift; coordinator_sql "$@" ;;
	*) echo "usage: tools/shards.sh start N | stop | status | reindex | sql HOST:PORT ..." >&2; exit 2 ;;
esac
