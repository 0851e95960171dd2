# Sourced by tools/demo.sh, tools/eval.sh and tools/shards.sh (which set
# $repo first): what they share to run PostgreSQL clusters of their own on
# this machine, on 127.0.0.1, superuser postgres, trust authentication.
PGBIN=$(pg_config --bindir)
export PATH=$PGBIN:$PATH

# initdb refuses root: as root, the clusters belong to postgres (made by the
# postgresql package).
if [ "$(id -u)" -eq 0 ]; then
	owner=postgres
	as_owner() { runuser -u "$owner" -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

# local_dir NAME FALLBACK: $repo/.NAME, or FALLBACK where the clusters'
# owner cannot reach the checkout (one under /root is closed to it).
local_dir() {
	if as_owner test -x "$repo"; then echo "$repo/.$1"; else echo "$2"; fi
}

# own_dir DIR: makes DIR, owned by the clusters' owner.
own_dir() {
	mkdir -p "$1"
	chown "$owner" "$1"
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# port_of DATA: the port the cluster in DATA listens on.
port_of() { sed -n 's/^port = //p' "$1/postgresql.conf" | tail -n 1; }

# init_cluster DATA PORT SOCKET_DIR LOG [CONF_LINE...]: initdb DATA unless
# it has a cluster, listening on 127.0.0.1:PORT, sockets in SOCKET_DIR, plus
# the CONF_LINEs; initdb's output in LOG. PORT "free": a free port.
init_cluster() {
	local data=$1 port=$2 sockets=$3 log=$4
	shift 4
	[ -f "$data/PG_VERSION" ] && return 0
	as_owner initdb -D "$data" -U postgres -A trust --locale=C -E UTF8 >"$log"
	[ "$port" = free ] && port=$(free_port)
	{
		echo "listen_addresses = '127.0.0.1'"
		echo "port = $port"
		echo "unix_socket_directories = '$sockets'"
		printf '%s\n' "$@"
	} >>"$data/postgresql.conf"
}

# start_cluster DATA LOG: starts the cluster in DATA unless it runs.
start_cluster() {
	as_owner pg_ctl -D "$1" status >/dev/null 2>&1 ||
		as_owner pg_ctl -D "$1" -l "$2" -w start >/dev/null
}

# psql_at PORT ARGS...: psql as postgres on 127.0.0.1:PORT, stopping at errors.
psql_at() {
	local port=$1
	shift
	PGOPTIONS='-c client_min_messages=warning' psql -qX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# ensure_database PORT DB: database DB, with imgsearch, on the cluster at PORT.
ensure_database() {
	psql_at "$1" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$2'" | grep -q 1 ||
		psql_at "$1" -d postgres -c "CREATE DATABASE $2"
	psql_at "$1" -d "$2" -c "CREATE EXTENSION IF NOT EXISTS imgsearch"
}

# server_model DIR: prints the path of a copy, in DIR/models, that the
# server (running as $owner) can read, of the model: IMGSEARCH_MODEL, or the
# default one (make model: random weights).
server_model() {
	local model=${IMGSEARCH_MODEL:-}
	if [ -z "$model" ]; then
		make -s -C "$repo" model >&2
		model=$repo/models/vgg16_pool_random.pt
	fi
	mkdir -p "$1/models"
	cp -u "$model" "$1/models/"
	chmod 755 "$1/models"
	chmod 644 "$1/models/$(basename "$model")"
	# the sidecar too: the server refuses a model file that does not match its sha256
	local sidecar=${model%.*}.json
	if [ -f "$sidecar" ]; then
		cp -u "$sidecar" "$1/models/"
		chmod 644 "$1/models/$(basename "$sidecar")"
	fi
	echo "$1/models/$(basename "$model")"
}
