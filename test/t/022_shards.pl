# Scale-out over postgres_fdw: a coordinator whose partitioned table has a
# foreign-table partition on each of 2 shard clusters answers
# imgsearch_sharded_search with the ids and distances a single cluster holding
# the same rows gives with ORDER BY ... LIMIT k (L2 and cosine; k = 1, 30,
# 100; argsort, faissflat, kdtree), under the method asked for on the shards;
# each shard receives ORDER BY with the imgsearch operator and LIMIT, in
# concurrent (async) foreign scans; rows inserted through the coordinator land
# on the shard their hash says; a stopped shard is an error naming it, at once,
# and one that does not answer after connect_timeout. The web API
# (web/db/api.sql) on a coordinator made by tools/shards.sh's SQL: api.search
# answers as plain SQL on one node does, api.methods lists what every shard
# has an index for, api.stats counts.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use MIME::Base64 qw(encode_base64);
use ImgsTest qw(topk_sql topk_by_probe_sql);

my $connect_timeout = 5;    # seconds, on the server definitions

my @nodes;
for my $name (qw(single shard0 shard1 coord))
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION imgsearch');
	push @nodes, $node;
}
my ($single, $shard0, $shard1, $coord) = @nodes;

# The same rows everywhere: made by one seeded query, on the single node
# directly and through the coordinator (whose partitions route them).
my $rows = q{
	CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
	  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
	SELECT setseed(0.37);
	INSERT INTO items (id, feat, grp) SELECT i, CASE WHEN i % 97 = 0 THEN NULL ELSE rand_vec(64, i) END, (i * 37) % 100
	  FROM generate_series(1, 2000) i;
	CREATE TABLE queries AS SELECT n, rand_vec(64, n) AS q FROM generate_series(1, 3) n;
};
my $indexes = q{
	CREATE INDEX items_ff_l2 ON items USING faissflat (feat);
	CREATE INDEX items_ff_cos ON items USING faissflat (feat imgfeat_cosine_ops);
	CREATE INDEX items_kd_l2 ON items USING kdtree (feat) WITH (leaf_size = 16);
	CREATE INDEX items_kd_cos ON items USING kdtree (feat imgfeat_cosine_ops) WITH (leaf_size = 16);
};
$single->safe_psql('postgres', "CREATE TABLE items (id bigint PRIMARY KEY, feat imgfeat(64), grp int); $rows $indexes");
for my $shard ($shard0, $shard1)
{
	$shard->safe_psql('postgres', "CREATE TABLE items (id bigint PRIMARY KEY, feat imgfeat(64), grp int); $indexes
		CREATE VIEW session_settings AS
		SELECT current_setting('imgsearch.method', true) AS method, current_setting('enable_seqscan') AS seqscan;");
}

my $setup = q{
	CREATE EXTENSION postgres_fdw;
	CREATE TABLE items (id bigint, feat imgfeat(64), grp int) PARTITION BY HASH (id);
};
my $i = 0;
for my $shard ($shard0, $shard1)
{
	my $port = $shard->port;
	my $host = $shard->host;
	$setup .= qq{
		CREATE SERVER shard$i FOREIGN DATA WRAPPER postgres_fdw
		  OPTIONS (host '$host', port '$port', dbname 'postgres', extensions 'imgsearch',
		           async_capable 'true', connect_timeout '$connect_timeout');
		CREATE USER MAPPING FOR PUBLIC SERVER shard$i OPTIONS (user '@{[ $shard->safe_psql('postgres', 'SELECT current_user') ]}');
		CREATE FOREIGN TABLE items_$i PARTITION OF items FOR VALUES WITH (MODULUS 2, REMAINDER $i)
		  SERVER shard$i OPTIONS (table_name 'items');
	};
	$i++;
}
$setup .= q{
	SELECT count(*) FROM imgsearch_shard_methods('items', '{argsort,faissflat,kdtree}');
	-- what a shard's session runs under, through each server
	CREATE FOREIGN TABLE settings_kdtree (method text, seqscan text) SERVER shard1_kdtree
	  OPTIONS (table_name 'session_settings');
	CREATE FOREIGN TABLE settings_argsort (method text, seqscan text) SERVER shard0_argsort
	  OPTIONS (table_name 'session_settings');
	CREATE FOREIGN TABLE settings_auto (method text, seqscan text) SERVER shard0
	  OPTIONS (table_name 'session_settings');
};
is($coord->safe_psql('postgres', $setup), '6', 'one table per foreign partition and method');
$coord->safe_psql('postgres', $rows);

# --- rows land on the shard their hash says --------------------------------
# Routed independently: a local hash-partitioned table on the single node.
$single->safe_psql('postgres', q{
	CREATE TABLE routed (id bigint) PARTITION BY HASH (id);
	CREATE TABLE routed_0 PARTITION OF routed FOR VALUES WITH (MODULUS 2, REMAINDER 0);
	CREATE TABLE routed_1 PARTITION OF routed FOR VALUES WITH (MODULUS 2, REMAINDER 1);
	INSERT INTO routed SELECT id FROM items;
});
my $ids = q{SELECT count(*) || ' ' || md5(string_agg(id::text, ',' ORDER BY id)) FROM };
for my $r (0, 1)
{
	my $shard = ($shard0, $shard1)[$r];
	my $want = $single->safe_psql('postgres', $ids . "routed_$r");
	like($want, qr/^[1-9]\d* /, "remainder $r has rows");
	is($shard->safe_psql('postgres', $ids . 'items'), $want, "shard$r holds the rows of remainder $r");
}
is($coord->safe_psql('postgres', 'SELECT count(*), count(feat) FROM items'),
	$single->safe_psql('postgres', 'SELECT count(*), count(feat) FROM items'),
	'the coordinator sees every row');

# --- the method reaches the shards --------------------------------------------
is($coord->safe_psql('postgres', 'SELECT method, seqscan FROM settings_kdtree'), 'kdtree|off',
	'a kdtree server runs the shard session under kdtree, without sequential scans');
is($coord->safe_psql('postgres', 'SELECT method, seqscan FROM settings_argsort'), 'argsort|on',
	'an argsort server runs it under argsort');
is($coord->safe_psql('postgres', 'SELECT coalesce(method, \'auto\'), seqscan FROM settings_auto'),
	'auto|on', 'the partition\'s own server leaves the shard\'s defaults');

# --- answers identical to one node --------------------------------------------
# "id:distance" lists, one line per operator, method, k and query, in
# ImgsTest::topk_sql's form: rows tied at the k-th distance may be any of them.
my @ks = (1, 30, 100);
for my $op ('<->', '<=>')
{
	for my $method (qw(argsort faissflat kdtree))
	{
		my $seqscan = $method eq 'argsort' ? 'on' : 'off';
		my ($one, $sharded) = ('', '');
		for my $k (@ks)
		{
			$one .= topk_by_probe_sql('queries',
				"SELECT id, feat $op q AS d FROM items WHERE feat IS NOT NULL ORDER BY feat $op q LIMIT $k") . ";\n";
			$sharded .= topk_by_probe_sql('queries',
				"SELECT s.id, s.distance AS d FROM imgsearch_sharded_search('items', q, $k, '$op', '$method')
				   WITH ORDINALITY AS s(id, distance, ord) ORDER BY s.ord") . ";\n";
		}
		my $want = $single->safe_psql('postgres',
			"SET imgsearch.method = '$method'; SET enable_seqscan = $seqscan; $one");
		my $got = $coord->safe_psql('postgres', $sharded);
		is(scalar(() = $want =~ /:/g), 3 * (1 + 30 + 100), "$op $method: one node answers every k");
		is($got, $want, "$op $method: ids and distances identical to one node, k = @ks");
		# the method set on the coordinator is the default
		is($coord->safe_psql('postgres', "SET imgsearch.method = '$method'; "
				. topk_sql("SELECT s.id, s.distance AS d
				            FROM queries, imgsearch_sharded_search('items', q, 30, '$op') WITH ORDINALITY AS s(id, distance, ord)
				            WHERE n = 2 ORDER BY s.ord")),
			$single->safe_psql('postgres', "SET imgsearch.method = '$method'; SET enable_seqscan = $seqscan; "
				. topk_sql("SELECT id, feat $op q AS d FROM items, queries WHERE n = 2 AND feat IS NOT NULL
				            ORDER BY feat $op q LIMIT 30")),
			"$op $method: imgsearch.method on the coordinator picks the shards' method");
	}
}

# --- filtered: what one node returns for WHERE filter ORDER BY ... LIMIT k ------
# A 10% and a 1% filter (grp < 10, grp = 3), k = 30 and 100 (more rows than
# the 1% filter keeps: every one of them), through imgsearch_sharded_search's
# filter under each method, and the partitioned table queried as is (the
# coordinator's own plan).
for my $op ('<->', '<=>')
{
	for my $method (qw(argsort faissflat kdtree))
	{
		my $seqscan = $method eq 'argsort' ? 'on' : 'off';
		my ($one, $sharded, $plain) = ('', '', '');
		for my $filter ('grp < 10', 'grp = 3')
		{
			for my $k (30, 100)
			{
				$one .= topk_by_probe_sql('queries',
					"SELECT id, feat $op q AS d FROM items WHERE feat IS NOT NULL AND $filter ORDER BY feat $op q LIMIT $k") . ";\n";
				$sharded .= topk_by_probe_sql('queries',
					"SELECT s.id, s.distance AS d
					   FROM imgsearch_sharded_search('items', q, $k, '$op', '$method', filter => '$filter')
					   WITH ORDINALITY AS s(id, distance, ord) ORDER BY s.ord") . ";\n";
				$plain .= topk_by_probe_sql('queries',
					"SELECT id, feat $op q AS d FROM items WHERE feat IS NOT NULL AND $filter ORDER BY feat $op q LIMIT $k") . ";\n";
			}
		}
		my $want = $single->safe_psql('postgres',
			"SET imgsearch.method = '$method'; SET enable_seqscan = $seqscan; $one");
		my $qualifying = $single->safe_psql('postgres', 'SELECT count(*) FROM items WHERE feat IS NOT NULL AND grp = 3');
		my $min = sub { $_[0] < $_[1] ? $_[0] : $_[1] };
		is(scalar(() = $want =~ /:/g), 3 * (30 + 100 + $min->(30, $qualifying) + $min->(100, $qualifying)),
			"$op $method filtered: one node answers min(k, qualifying rows) ($qualifying rows with grp = 3)");
		is($coord->safe_psql('postgres', $sharded), $want,
			"$op $method: imgsearch_sharded_search with a filter returns what one node returns");
		is($coord->safe_psql('postgres', "SET imgsearch.method = '$method'; $plain"), $want,
			"$op $method: the partitioned table queried with WHERE returns what one node returns");
	}
}
# The filter reaches the shards. With it, ORDER BY and LIMIT too where rows
# are many (postgres_fdw sorts a few rows on the coordinator: its choice, by
# cost; the filter already cut what is sent).
for my $case (['grp < 50', qr/WHERE .*\(\(grp < 50\)\).* ORDER BY .* LIMIT 30\b/, 'the filter, ORDER BY and LIMIT'],
	['grp = 3', qr/WHERE .*\(\(grp = 3\)\)/, 'the filter'])
{
	my ($filter, $re, $what) = @$case;
	my $fplan = $coord->safe_psql('postgres', qq{
		SELECT format('PREPARE f(imgfeat, int) AS %s', imgsearch_sharded_query('items', '<->', 'kdtree', filter => '$filter')) \\gexec
		SELECT q AS qv FROM queries WHERE n = 1 \\gset
		EXPLAIN (VERBOSE, COSTS OFF) EXECUTE f(:'qv', 30);
	});
	my @fremote = $fplan =~ /Remote SQL: (.*)/g;
	is(scalar(@fremote), 2, "$filter: one remote query per shard");
	like($_, $re, "$filter: the shard receives $what") for @fremote;
}
my ($fret, $fout, $ferr) = $coord->psql('postgres',
	q{\set VERBOSITY verbose
	  SELECT * FROM imgsearch_sharded_search('items', (SELECT q FROM queries WHERE n = 1), 5, filter => '  ')});
like($ferr, qr/ERROR:  22023: filter must be a boolean expression, not empty/, 'an empty filter is refused (22023)');

# The index methods ran on the shards: every index was scanned there.
# (Statistics reach pg_stat_user_indexes when the fdw session is idle.)
for my $shard ($shard0, $shard1)
{
	ok($shard->poll_query_until('postgres',
		q{SELECT count(*) = 4 FROM pg_stat_user_indexes WHERE relname = 'items' AND idx_scan > 0 AND indexrelname LIKE 'items\_%\_%'}),
		$shard->name . ': faissflat and kdtree indexes (L2, cosine) were scanned');
}

# --- the pushdown ---------------------------------------------------------------
my $plan = $coord->safe_psql('postgres', q{
	SELECT format('PREPARE s(imgfeat, int) AS %s', imgsearch_sharded_query('items', '<=>', 'faissflat')) \gexec
	SELECT q AS qv FROM queries WHERE n = 1 \gset
	EXPLAIN (VERBOSE, COSTS OFF) EXECUTE s(:'qv', 30);
});
my @remote = $plan =~ /Remote SQL: (.*)/g;
is(scalar(@remote), 2, 'one remote query per shard');
like($_, qr/ORDER BY \(feat OPERATOR\(public\.<=>\) '\[[^]]+\]'\) ASC NULLS LAST LIMIT 30\b/,
	'the shard receives ORDER BY with the imgsearch operator and LIMIT k') for @remote;
is(scalar(() = $plan =~ /Async Foreign Scan on public\.items_\d_faissflat/g), 2,
	'the shards are queried concurrently (async foreign scans)');
like($plan, qr/^ *-> +Append/m, 'in one Append');
unlike($plan, qr/Merge Append/, 'not a Merge Append (which reads its branches one after another)');

# For comparison: the partitioned table's own plan keeps LIMIT here
my $own = $coord->safe_psql('postgres', q{
	EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY feat <-> (SELECT q FROM queries WHERE n = 1) LIMIT 30;
});
like($own, qr/Merge Append/, 'plain partitioned planning merges the shards\' ordered scans');
unlike($own, qr/Remote SQL: .* LIMIT/, 'plain partitioned planning sends no LIMIT to the shards');

# --- the web API on a coordinator -------------------------------------------------
# web/db's api.search, api.methods and api.stats on a coordinator made by
# tools/shards.sh's SQL (database web on the same clusters) give what plain
# SQL on the single node holding the same rows gives.
SKIP:
{
	my $src = $ENV{IMGSEARCH_SRC};
	my $data = $ENV{IMGSEARCH_TEST_DATA};
	skip 'IMGSEARCH_SRC or IMGSEARCH_TEST_DATA is not set (run test/check.sh)', 1 unless $src && $data;

	my $user = $coord->safe_psql('postgres', 'SELECT current_user');
	my $web_sql = join '', map { slurp_file("$src/web/db/$_") } qw(roles.sql schema.sql api.sql);
	my $gallery = q{
		CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
		  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
		SELECT setseed(0.61);
		INSERT INTO gallery.images
		SELECT i, 'img' || i, 'g' || i % 7, 100 + i, 80, '\x00', decode(lpad(to_hex(i), 4, '0'), 'hex'),
		       CASE WHEN i % 50 = 0 THEN NULL ELSE rand_vec(512, i) END
		  FROM generate_series(1, 400) i;
	};
	for my $node (@nodes)
	{
		$node->safe_psql('postgres', 'CREATE DATABASE web');
		$node->safe_psql('web', 'CREATE EXTENSION imgsearch');
	}
	for my $node ($single, $coord)
	{
		$node->append_conf('postgresql.conf', "imgsearch.model = '$data/vgg16_pool.pt'");
		$node->reload;
	}
	# faissflat and kdtree on every shard, lsh on one: no lsh on the coordinator
	my $index_sql = q{
		CREATE INDEX images_feat_faissflat ON gallery.images USING faissflat (feat);
		CREATE INDEX images_feat_kdtree ON gallery.images USING kdtree (feat);
	};
	$shard0->safe_psql('web', slurp_file("$src/web/db/schema.sql") . $index_sql
		. 'CREATE INDEX images_feat_lsh ON gallery.images USING lsh (feat);');
	$shard1->safe_psql('web', slurp_file("$src/web/db/schema.sql") . $index_sql);
	$single->safe_psql('web', $web_sql . $gallery . $index_sql);
	my @shards = map { $_->host . ':' . $_->port } ($shard0, $shard1);
	my ($coord_sql, $err) = run_command([ 'env', 'IMGSEARCH_SHARDS_DB=web', "IMGSEARCH_SHARDS_USER=$user",
		'bash', "$src/tools/shards.sh", 'sql', @shards ]);
	like($coord_sql, qr/PARTITION OF gallery\.images/, 'tools/shards.sh sql: the coordinator\'s SQL') or diag $err;
	$coord->safe_psql('web', $coord_sql . $web_sql . $gallery);
	is($shard0->safe_psql('web', 'SELECT count(*) FROM gallery.images')
		+ $shard1->safe_psql('web', 'SELECT count(*) FROM gallery.images'), 400,
		'api: rows inserted through the coordinator are on the shards');

	is($coord->safe_psql('web', q{SELECT string_agg(method || ':' || coalesce(index_name, '-'), ' ') FROM api.methods()}),
		'argsort:- faissflat:images_feat_faissflat kdtree:images_feat_kdtree',
		'api.methods() on the coordinator: the methods every shard has an index for');
	is($coord->safe_psql('web', q{SELECT s->>'images', s->>'with_features', s->>'groups', s->'methods' FROM api.stats() s}),
		'400|392|7|["argsort", "faissflat", "kdtree"]', 'api.stats() on the coordinator');

	my $b64 = encode_base64(slurp_file("$data/images/gray.jpg"), '');
	# independent: the single node's plain scan of the same rows, under the
	# same model. Both in topk_sql's form: rank:id:name:width:thumb:distance,
	# but a row at the k-th distance '*:distance' (ties).
	my $row = q{concat_ws(':', r, id, name, width, thumb)};
	my $want_sql = sub {
		my $k = shift;
		return topk_sql(qq{SELECT row_number() OVER (ORDER BY d, id) AS r, * FROM
			(SELECT id, name, width, encode(thumb, 'base64') AS thumb,
			        (feat <-> (SELECT vgg16_features(decode('$b64', 'base64'))))::float8 AS d
			   FROM gallery.images WHERE feat IS NOT NULL ORDER BY d, id LIMIT $k) x ORDER BY r}, $row);
	};
	for my $k (1, 30, 392)
	{
		my $want = $single->safe_psql('web', 'SET enable_indexscan = off; ' . $want_sql->($k));
		is(scalar(() = $want =~ /,/g), $k - 1, "api: the single node's scan has k = $k rows");
		for my $method (qw(auto argsort faissflat kdtree))
		{
			my $got = $coord->safe_psql('web', 'SET ROLE web_anon; ' . topk_sql(qq{
				SELECT rank AS r, id, name, width, thumb, distance AS d FROM api.search('$b64', $k, '$method') ORDER BY rank},
				$row));
			is($got, $want, "api.search on the coordinator, $method, k = $k: ranks, ids, rows, distances of one node");
		}
	}
	like($coord->safe_psql('web', qq{BEGIN; SELECT count(*) FROM api.search('$b64', 5, 'kdtree');
		SELECT current_setting('response.headers'); COMMIT;}),
		qr/"X-Search-Method" : "kdtree index scan on 2 shards \(sharded\)"/, 'X-Search-Method says what ran where');
	for my $shard ($shard0, $shard1)
	{
		ok($shard->poll_query_until('web',
			q{SELECT count(*) = 2 FROM pg_stat_user_indexes WHERE relname = 'images' AND idx_scan > 0 AND indexrelname IN ('images_feat_faissflat', 'images_feat_kdtree')}),
			$shard->name . ': the faissflat and kdtree indexes ran there');
	}
	my ($ret, $out, $stderr) = $coord->psql('web', qq{SELECT * FROM api.search('$b64', 5, 'lsh')});
	like($stderr, qr/unknown method "lsh"/, 'a method one shard lacks is refused');
	# the duplicate groups are the shards': refused with a hint, as web_anon
	($ret, $out, $stderr) = $coord->psql('web', q{SET ROLE web_anon; SELECT * FROM api.duplicates(0.03)},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($stderr, qr/0A000: duplicate groups are not available on a coordinator/, 'api.duplicates on a coordinator: 0A000');
}

# --- a shard that is down ------------------------------------------------------
$shard1->stop;
my $start = time;
my ($ret, $stdout, $stderr) = $coord->psql('postgres',
	q{SELECT count(*) FROM queries, imgsearch_sharded_search('items', q, 5, '<->', 'faissflat')});
my $elapsed = time - $start;
isnt($ret, 0, 'a query with a shard down fails');
like($stderr, qr/could not connect to server "shard1_faissflat"/, 'the error names the shard\'s server');
cmp_ok($elapsed, '<', $connect_timeout + 5, "within connect_timeout ($connect_timeout s) and a margin");
($ret, $stdout, $stderr) = $coord->psql('postgres', q{SELECT count(*) FROM items});
like($stderr, qr/could not connect to server "shard1"/, 'a plain query on the partitioned table names it too');
$shard1->start;

# A shard that accepts the connection but never answers (its postmaster
# stopped by SIGSTOP): the error comes after connect_timeout, not a hang.
my $postmaster = (split /\n/, slurp_file($shard1->data_dir . '/postmaster.pid'))[0];
kill 'STOP', $postmaster;
$start = time;
($ret, $stdout, $stderr) = $coord->psql('postgres',
	q{SELECT count(*) FROM queries, imgsearch_sharded_search('items', q, 5, '<->', 'kdtree')});
$elapsed = time - $start;
kill 'CONT', $postmaster;
isnt($ret, 0, 'a query with a shard that does not answer fails');
like($stderr, qr/could not connect to server "shard1_kdtree"/, 'naming the shard\'s server');
cmp_ok($elapsed, '>=', $connect_timeout - 1, "after connect_timeout ($connect_timeout s)");
cmp_ok($elapsed, '<', $connect_timeout + 10, 'not much later');
is($coord->safe_psql('postgres',
	q{SELECT count(*) FROM queries, imgsearch_sharded_search('items', q, 5, '<->', 'faissflat')}),
	'15', 'back when the shard is');

# --- bad input ----------------------------------------------------------------
for my $case ([ q{'items', q, 5, '<+>'}, qr/unknown operator/ ],
	[ q{'items', q, 5, '<->', 'bogus'}, qr/unknown method "bogus"/ ],
	[ q{'items', q, 0}, qr/k must be at least 1/ ],
	[ q{'items', q, 5, '<->', 'lsh'}, qr/no foreign table public\.items_0_lsh, public\.items_1_lsh for method lsh/ ])
{
	($ret, $stdout, $stderr) = $coord->psql('postgres',
		"SELECT * FROM queries, imgsearch_sharded_search($case->[0]) WHERE n = 1");
	like($stderr, $case->[1], "error: $case->[0]");
}

$_->stop for @nodes;
done_testing();
