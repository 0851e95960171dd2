#!/bin/bash
# The demo's local PostgreSQL cluster: `tools/demo.sh start|stop|status`.
# start is idempotent: it reuses the cluster under .demo/ when it exists.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=$(pg_config --bindir)
export PATH=$PGBIN:$PATH
port=${IMGSEARCH_DEMO_PORT:-54329}
api_port=${IMGSEARCH_API_PORT:-3000}
page_port=${IMGSEARCH_PAGE_PORT:-8080}
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
	start_web
}

# The model, the dataset and the load are made once; later starts reuse them.
start_web() {
	local model=${IMGSEARCH_MODEL:-}
	if [ -z "$model" ]; then
		make -s -C "$repo" model
		model=$repo/models/vgg16_pool_random.pt
	fi
	# The server runs as $owner: it reads its own copy of the model.
	mkdir -p "$demo_dir/models"
	cp -u "$model" "$demo_dir/models/"
	model=$demo_dir/models/$(basename "$model")
	chmod 755 "$demo_dir/models"
	chmod 644 "$model"

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
	if ! running api; then
		local api_cmd=(node "$repo/web/gateway/server.js")
		command -v postgrest >/dev/null && api_cmd=(postgrest)
		PGRST_DB_URI="postgresql://authenticator@127.0.0.1:$port/$db" PGRST_SERVER_PORT=$api_port \
			nohup "${api_cmd[@]}" "$repo/web/postgrest.conf" >"$demo_dir/api.log" 2>&1 &
		echo $! >"$demo_dir/api.pid"
		[ "${api_cmd[0]}" = postgrest ] && echo PostgREST >"$demo_dir/api.kind" ||
			echo "the gateway (web/gateway/server.js)" >"$demo_dir/api.kind"
	fi
	if ! running page; then
		(cd "$repo/web"
			nohup node node_modules/vite/bin/vite.js preview --port "$page_port" --strictPort >"$demo_dir/page.log" 2>&1 &
			echo $! >"$demo_dir/page.pid")
	fi
	for _ in $(seq 50); do
		curl -s -o /dev/null "$api_url/" && curl -s -o /dev/null "http://127.0.0.1:$page_port/" && break
		sleep 0.2
	done
	local page_url=http://127.0.0.1:$page_port/
	[ "$api_port" = 3000 ] || page_url="$page_url?api=$api_url"
	cat <<MSG

demo: ready.
  page:     $page_url
  API:      $api_url/rpc/search (PostgREST protocol, served by $(cat "$demo_dir/api.kind"))
  database: psql -h 127.0.0.1 -p $port -U postgres $db
  logs:     $demo_dir/{api,page,postgres}.log
  stop:     make demo-stop

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
