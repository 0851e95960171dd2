#!/bin/bash
# The web suites of make check: web/test/run.sh SUITE DIR
#   setup        small dataset, databases imgsearch_gw (gateway fixtures) and
#                imgsearch_web (the API, loaded and indexed), the page's build
#   unit         vitest: the page's logic
#   conformance  the gateway against the fixture API (and real PostgREST when
#                a postgrest binary is on PATH)
#   api          api.search/methods/stats in SQL and over HTTP; api_nav: the
#                gallery, kept uploads and links, several examples
#   security     what web_anon can and cannot do, in SQL and over HTTP
#   write        adding images (api.add_image, api.image_status): refused to
#                web_anon, done by imgsearch_writer; the ingest worker's features
#   load         bursts of concurrent searches through gateways it starts: the
#                sessions, the queue and its fast 503, /ready
#   browser      the page in Debian's chromium, driven by playwright-core
#                (browser.test.js; browser_nav.test.js: the gallery, links (URL
#                state), several examples; browser_write.test.js: adding images,
#                duplicate groups, expanding groups, the smaller defects)
# DIR keeps the state between suites. The cluster comes from PGHOST, PGPORT
# and PGUSER (a superuser), as test/check.sh exports them. Each suite starts
# the servers it needs and stops them when it ends.
set -euo pipefail
suite=$1
dir=$2
web=$(cd "$(dirname "$0")/.." && pwd)
repo=$(dirname "$web")
mkdir -p "$dir"
cd "$web"

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_http() { # url (the gateway listens once its sessions are warm: seconds)
	for _ in $(seq 600); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "run.sh: $1 did not come up" >&2
	return 1
}

# Starts the gateway on a free port for database $1; sets api_url.
start_gateway() {
	local port
	port=$(free_port)
	PGRST_DB_URI="postgresql://authenticator@$PGHOST:$PGPORT/$1" PGRST_SERVER_HOST=127.0.0.1 \
		PGRST_SERVER_PORT=$port GATEWAY_MAX_BODY=${GATEWAY_MAX_BODY:-12582912} \
		node gateway/server.js "$web/postgrest.conf" >"$dir/gateway-$1.log" 2>&1 &
	pids+=($!)
	api_url=http://127.0.0.1:$port
	wait_http "$api_url/"
}

export WEB_TEST_DIR=$dir PGHOST PGPORT PGUSER

case $suite in
setup)
	"$web/deps.sh"
	# The seeded random test model of the model suites (test/check.sh
	# exports it to IMGSEARCH_TEST_DATA); else one exported here.
	if [ -n "${IMGSEARCH_TEST_DATA:-}" ]; then
		model=$IMGSEARCH_TEST_DATA/vgg16_pool.pt
	else
		model=$dir/vgg16_pool.pt
		[ -f "$model" ] || /usr/bin/python3 "$repo/tools/export_vgg16.py" --layer pool --weights random --seed 0 --out "$model"
	fi
	chmod 755 "$dir"           # the server, another OS user, reads the model

	/usr/bin/python3 "$repo/tools/build_dataset.py" "$dir/dataset" --sources 6 --views 4 --queries 1

	psql -qX -d postgres -c "DROP DATABASE IF EXISTS imgsearch_gw" -c "DROP DATABASE IF EXISTS imgsearch_web" \
		-c "CREATE DATABASE imgsearch_gw" -c "CREATE DATABASE imgsearch_web"
	psql -qX -v ON_ERROR_STOP=1 -d imgsearch_gw -f db/roles.sql -f test/gateway_fixtures.sql
	PGDATABASE=imgsearch_web /usr/bin/python3 "$repo/tools/load_dataset.py" "$dir/dataset" \
		--model "$model" --batch 8
	npx vite build --logLevel warn
	;;
unit)
	npx vitest run
	;;
conformance)
	export GATEWAY_MAX_BODY=100000
	start_gateway imgsearch_gw
	API_URL=$api_url API_IMPL=gateway node --test test/conformance.test.js
	if command -v postgrest >/dev/null; then
		port=$(free_port)
		PGRST_DB_URI="postgresql://authenticator@$PGHOST:$PGPORT/imgsearch_gw" PGRST_SERVER_HOST=127.0.0.1 \
			PGRST_SERVER_PORT=$port postgrest "$web/postgrest.conf" >"$dir/postgrest.log" 2>&1 &
		pids+=($!)
		wait_http "http://127.0.0.1:$port/"
		API_URL=http://127.0.0.1:$port API_IMPL=postgrest node --test test/conformance.test.js
	else
		echo "run.sh: no postgrest on PATH; conformance checked against the gateway only"
	fi
	;;
api | security | write)
	start_gateway imgsearch_web
	API_URL=$api_url PGDATABASE=imgsearch_web node --test "test/$suite.test.js"
	if [ "$suite" = api ]; then   # the gallery, kept uploads, several examples
		API_URL=$api_url PGDATABASE=imgsearch_web node --test test/api_nav.test.js
	fi
	;;
load)
	PGDATABASE=imgsearch_web node --test test/load.test.js
	;;
browser)
	port=$(free_port)
	# the page's origin is the one the API allows
	PGRST_SERVER_CORS_ALLOWED_ORIGINS=http://127.0.0.1:$port start_gateway imgsearch_web
	node node_modules/vite/bin/vite.js preview --port "$port" --strictPort >"$dir/preview.log" 2>&1 &
	pids+=($!)
	wait_http "http://127.0.0.1:$port/"
	# one file at a time (node --test would run them side by side); every file runs
	rc=0
	for t in test/browser.test.js test/browser_nav.test.js test/browser_write.test.js; do
		API_URL=$api_url PAGE_URL="http://127.0.0.1:$port/?api=$api_url" PGDATABASE=imgsearch_web \
			node --test "$t" || rc=1
	done
	exit $rc
	;;
*)
	echo "usage: $0 setup|unit|conformance|api|security|write|load|browser DIR" >&2
	exit 2
	;;
esac
