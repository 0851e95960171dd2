#!/bin/bash
# The demo's local PostgreSQL cluster: `tools/demo.sh start|stop|status`.
# start is idempotent: it reuses the cluster under .demo/ when it exists.
# With IMGSEARCH_DEMO_SHARDS=N, the database is a coordinator over N shards
# instead (tools/shards.sh, in .demo/shards; docs/sharding.md): the same
# load, API and page on it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/local_cluster.sh"
port=${IMGSEARCH_DEMO_PORT:-54329}
api_port=${IMGSEARCH_API_PORT:-3000}
page_port=${IMGSEARCH_PAGE_PORT:-8080}
shards=${IMGSEARCH_DEMO_SHARDS:-}
db=imgsearch

demo_dir=$(local_dir demo /var/tmp/imgsearch-demo)
data=$demo_dir/pgdata
shards_dir=$demo_dir/shards

start() {
	own_dir "$demo_dir"
	if [ -n "$shards" ]; then
		IMGSEARCH_SHARDS_DIR=$shards_dir "$repo/tools/shards.sh" start "$shards"
		port=$(port_of "$shards_dir/coordinator")
	else
		[ -f "$data/PG_VERSION" ] || echo "demo: creating a cluster in $data"
		init_cluster "$data" "$port" "$demo_dir" "$demo_dir/initdb.log" "shared_buffers = 512MB" \
			"shared_preload_libraries = 'imgsearch'" "imgsearch.model_workers = 1"
		start_cluster "$data" "$demo_dir/postgres.log"
		ensure_database "$port" "$db"
	fi
	start_web
}

# The model, the dataset and the load are made once; later starts reuse them.
start_web() {
	local model
	model=$(server_model "$demo_dir")
	# the server's own setting: the model workers load it at start and reload
	# it when it changes, so no search waits for a model load
	psql_at "$port" -d postgres -c "ALTER SYSTEM SET imgsearch.model = '$model'" -c "SELECT pg_reload_conf()" >/dev/null

	local data=$demo_dir/dataset${IMGSEARCH_DEMO_LARGE:+-large}
	if [ ! -f "$data/manifest.tsv" ]; then
		echo "demo: building the dataset in $data (about a minute)"
		/usr/bin/python3 "$repo/tools/build_dataset.py" "$data.tmp" ${IMGSEARCH_DEMO_LARGE:+--large}
		rm -rf "$data"
		mv "$data.tmp" "$data"
	fi
	echo "demo: loading (features are extracted once, then reused; interrupt and rerun to resume)"
	PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=$db \
		/usr/bin/python3 "$repo/tools/load_dataset.py" "$data" --model "$model"

	"$repo/web/deps.sh"
	if [ ! -f "$repo/web/dist/index.html" ] ||
		[ -n "$(find "$repo/web/src" "$repo/web/index.html" -newer "$repo/web/dist/index.html")" ]; then
		(cd "$repo/web" && npx vite build --logLevel warn)
	fi

	local api_url=http://127.0.0.1:$api_port
	# an API server of an earlier start on the other database (one node or shards) goes
	if running api && [ "$(cat "$demo_dir/api.port" 2>/dev/null)" != "$port" ]; then
		kill "$(cat "$demo_dir/api.pid")"
		rm -f "$demo_dir/api.pid"
		sleep 1
	fi
	if ! running api; then
		local api_cmd=(node "$repo/web/gateway/server.js")
		command -v postgrest >/dev/null && api_cmd=(postgrest)
		PGRST_DB_URI="postgresql://authenticator@127.0.0.1:$port/$db" PGRST_SERVER_PORT=$api_port \
			PGRST_SERVER_CORS_ALLOWED_ORIGINS="http://127.0.0.1:$page_port, http://localhost:$page_port" \
			nohup "${api_cmd[@]}" "$repo/web/postgrest.conf" >"$demo_dir/api.log" 2>&1 &
		echo $! >"$demo_dir/api.pid"
		echo "$port" >"$demo_dir/api.port"
		[ "${api_cmd[0]}" = postgrest ] && echo PostgREST >"$demo_dir/api.kind" ||
			echo "the gateway (web/gateway/server.js)" >"$demo_dir/api.kind"
	fi
	if ! running page; then
		(cd "$repo/web"
			nohup node node_modules/vite/bin/vite.js preview --port "$page_port" --strictPort >"$demo_dir/page.log" 2>&1 &
			echo $! >"$demo_dir/page.pid")
	fi
	# the API listens once its sessions are warm (seconds)
	for _ in $(seq 300); do
		curl -s -o /dev/null "$api_url/" && curl -s -o /dev/null "http://127.0.0.1:$page_port/" && break
		sleep 0.2
	done
	local page_url=http://127.0.0.1:$page_port/
	[ "$api_port" = 3000 ] || page_url="$page_url?api=$api_url"
	cat <<MSG

demo: ready.
  page:     $page_url
  API:      $api_url/rpc/search (PostgREST protocol, served by $(cat "$demo_dir/api.kind"))
  database: psql -h 127.0.0.1 -p $port -U postgres $db${shards:+ (the coordinator over $shards shards:
            IMGSEARCH_SHARDS_DIR=$shards_dir tools/shards.sh status)}
  logs:     $demo_dir/{api,page,postgres}.log${shards:+, $shards_dir/*.log}
  stop:     make demo-stop

  In psql, beyond ORDER BY feat <-> q LIMIT k (docs/methods.md):
    WHERE ... ORDER BY feat <-> q LIMIT 30                      a filter: complete, in order
    WHERE feat <<->> imgsearch_sphere(q, 0.03)                   every image within 0.03 (range)
    ORDER BY feat <-> imgsearch_examples(ARRAY[a, b], ARRAY[c])  more like a and b, less like c
    SELECT * FROM imgsearch_duplicates('gallery.images_feat_kdtree', 0.03)  duplicate groups

  The model is $(basename "$model"). The default one has RANDOM weights: it finds
  other crops and edits of the same photograph, but knows nothing of what images
  show. For real retrieval, export VGG16 with ImageNet weights and restart:
    /usr/bin/python3 tools/export_vgg16.py --layer pool --weights vgg16-397923af.pth --out models/vgg16_pool_imagenet.pt
    IMGSEARCH_MODEL=\$PWD/models/vgg16_pool_imagenet.pt make demo
  (vgg16-397923af.pth is torchvision's ImageNet checkpoint; features are extracted again.)
MSG
}

# running NAME: the process in .demo/NAME.pid is alive
running() {
	[ -f "$demo_dir/$1.pid" ] && kill -0 "$(cat "$demo_dir/$1.pid")" 2>/dev/null
}

stop() {
	for name in page api; do
		if running "$name"; then
			kill "$(cat "$demo_dir/$name.pid")"
			echo "demo: stopped the $name server"
		fi
		rm -f "$demo_dir/$name.pid"
	done
	if [ -d "$shards_dir" ]; then
		IMGSEARCH_SHARDS_DIR=$shards_dir "$repo/tools/shards.sh" stop
		echo "demo: stopped the shards"
	fi
	if [ -f "$data/PG_VERSION" ] && as_owner pg_ctl -D "$data" status >/dev/null 2>&1; then
		as_owner pg_ctl -D "$data" -m fast -w stop >/dev/null
		echo "demo: stopped"
	elif [ ! -d "$shards_dir" ]; then
		echo "demo: not running"
	fi
}

status() {
	[ ! -d "$shards_dir" ] || IMGSEARCH_SHARDS_DIR=$shards_dir "$repo/tools/shards.sh" status
	[ ! -f "$data/PG_VERSION" ] || as_owner pg_ctl -D "$data" status
}

case "${1:-}" in
	start) start ;;
	stop) stop ;;
	status) status ;;
	*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
