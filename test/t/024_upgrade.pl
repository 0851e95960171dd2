# The upgrade from the first release ($old, 0.1), through 0.2 and 0.3, to this
# version ($new, 0.4): the standard is that a change to the SQL surface bumps the version
# and ships an upgrade script, tested here. On 0.1: a table of imgfeat(16)
# vectors (seeded random, exact duplicates for tied distances, NULLs), an
# index of every method and operator class (faissflat: L2, cosine, inner
# product; kdtree: L2, cosine; lsh: L2, cosine, inner product) and each
# index's and the sequential scan's top k (1, 10, 100, all) for 5 queries.
# Then ALTER EXTENSION imgsearch UPDATE (extversion 0.4), and:
# - each index answers as before the update and as a sequential scan and
#   sort (lsh probing every bucket; lsh at its default budget as before),
#   compared fair to ties: the distances as lists, the ids as sets within a
#   distance, the last distance's ids free (LIMIT may cut a tie: the
#   distance printed is each row's own); imgsearch_index_check passes on
#   each; so after inserts (NULLs too), deletes, VACUUM, inserts into the
#   slots VACUUM freed and REINDEX;
# - the L2 and cosine indexes built on 0.1 serve 0.3's range operators and
#   several-examples ordering as a sequential scan answers, and
#   imgsearch_duplicates finds the exact duplicates through one;
# - imgsearch_model_workers() is there: not for PUBLIC (a plain role gets
#   42501), a pg_monitor member may run it: no rows without workers, a row
#   for a worker with one;
# - the upgraded catalog is the catalog of a fresh $new install (CREATE
#   EXTENSION in another database), line for line: the member objects;
#   functions with their volatility, strictness, parallel labels, cost,
#   settings, bodies and ACLs; pg_init_privs; types, operators, operator
#   classes and families, casts, aggregates, access methods; member tables
#   and views (columns, constraints, indexes, policies, triggers); comments;
#   the members' dependencies; the extension's row (config tables). The
#   difference is printed when there is one ("-" fresh only, "+" upgraded
#   only); a changed label, ACL and comment show that the listing sees them.
#   Every earlier version installed updates to the same catalog;
# - there is no way back: ALTER EXTENSION imgsearch UPDATE TO '0.1' fails
#   cleanly (22023) and leaves $new as it was;
# - without imgsearch in shared_preload_libraries (as every 0.1 install ran:
#   0.1 needed no preloading), a session loads the $new library: the indexes
#   answer, and 0.1 can still be created, used and updated;
# - DROP EXTENSION (CASCADE: the table's column is of its type) and CREATE
#   EXTENSION give a fresh $new, equal to the other database's.
# The cluster runs with imgsearch preloaded and no model workers
# (imgsearch.model_workers = 0), then without preloading, then with a worker
# (no model: the worker loads none, so no libtorch).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf', qq{
lc_messages = 'C'
jit = off
shared_preload_libraries = 'imgsearch'
imgsearch.model_workers = 0
});
$node->start;

# The previous release and this one: a version bump changes them (and the
# checks of what the new version adds: imgsearch_model_workers() for 0.2).
my ($old, $new) = ('0.1', '0.4');
my $db = 'postgres';
is($node->safe_psql($db, q{SELECT default_version FROM pg_available_extensions WHERE name = 'imgsearch'}),
	$new, "the installed imgsearch's default version is $new (a bump updates this test)");
$node->safe_psql($db, "CREATE EXTENSION imgsearch VERSION '$old'");
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'"),
	$old, "CREATE EXTENSION imgsearch VERSION '$old'");
is($node->safe_psql($db, q{SELECT count(*) FROM pg_proc WHERE proname = 'imgsearch_model_workers'}),
	'0', "$old has no imgsearch_model_workers()");
is($node->safe_psql($db, q{SELECT count(*) FROM pg_proc WHERE proname IN ('imgsearch_image_info', 'imgsearch_thumbnail')}),
	'0', "$old has no imgsearch_image_info() nor imgsearch_thumbnail()");

# --- data and indexes on 0.1 ----------------------------------------------------
$node->safe_psql($db, q{
	SELECT setseed(0.24);
	CREATE TABLE feats (id int PRIMARY KEY, v imgfeat(16));
	INSERT INTO feats
	SELECT i, (SELECT array_agg((2 * random() - 1)::real) FROM generate_series(1, 16) WHERE i > 0)::imgfeat
	FROM generate_series(1, 3000) i;
	-- exact duplicates: every distance to them ties
	INSERT INTO feats SELECT 3000 + id, v FROM feats WHERE id <= 20;
	INSERT INTO feats SELECT i, NULL FROM generate_series(-10, -1) i;
	-- queries 1-4 random; 5 the vector of row 7 (and 3007): a tie at distance 0
	CREATE TABLE queries (n int PRIMARY KEY, q imgfeat(16));
	INSERT INTO queries
	SELECT n, (SELECT array_agg((2 * random() - 1)::real) FROM generate_series(1, 16) WHERE n > 0)::imgfeat
	FROM generate_series(1, 4) n;
	INSERT INTO queries SELECT 5, v FROM feats WHERE id = 7;
	CREATE INDEX feats_ff_l2 ON feats USING faissflat (v);
	CREATE INDEX feats_ff_cos ON feats USING faissflat (v imgfeat_cosine_ops);
	CREATE INDEX feats_ff_ip ON feats USING faissflat (v imgfeat_ip_ops);
	CREATE INDEX feats_kd_l2 ON feats USING kdtree (v);
	CREATE INDEX feats_kd_cos ON feats USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 16);
	CREATE INDEX feats_lsh_l2 ON feats USING lsh (v);
	CREATE INDEX feats_lsh_cos ON feats USING lsh (v imgfeat_cosine_ops) WITH (bits = 64, buckets = 40);
	CREATE INDEX feats_lsh_ip ON feats USING lsh (v imgfeat_ip_ops);
});

# [ method, operator, index ]: every method and operator class
my @cases = (
	[ 'faissflat', '<->', 'feats_ff_l2' ],
	[ 'faissflat', '<=>', 'feats_ff_cos' ],
	[ 'faissflat', '<#>', 'feats_ff_ip' ],
	[ 'kdtree', '<->', 'feats_kd_l2' ],
	[ 'kdtree', '<=>', 'feats_kd_cos' ],
	[ 'lsh', '<->', 'feats_lsh_l2' ],
	[ 'lsh', '<=>', 'feats_lsh_cos' ],
	[ 'lsh', '<#>', 'feats_lsh_ip' ]);
my @ops = ('<->', '<=>', '<#>');
my $exhaustive = 'SET lsh.probes = 0; SET lsh.candidates = 0;';

# The top k (1, 10, 100, all) of every query by $op, under imgsearch.method
# $method (argsort: a sequential scan and sort; an index method: its index,
# the sequential scan off) and $budget (lsh.probes, lsh.candidates): one line
# "n|k|id:distance,id:distance..." per query and k, in the order returned.
sub answers
{
	my ($method, $op, $budget, $dbname) = @_;
	my $seq = $method eq 'argsort' ? 'on' : 'off';
	return $node->safe_psql($dbname // $db, qq{
		SET imgsearch.method = '$method'; SET enable_seqscan = $seq;
		RESET lsh.probes; RESET lsh.candidates; $budget
		SELECT n || '|' || coalesce(k::text, 'all') || '|' || coalesce(
		         (SELECT string_agg(id || ':' || d, ',' ORDER BY rn)
		          FROM (SELECT id, d, row_number() OVER () AS rn
		                FROM (SELECT id, v $op q AS d FROM feats WHERE v IS NOT NULL
		                      ORDER BY v $op q LIMIT k) r) s), '')
		FROM queries, (VALUES (1), (10), (100), (NULL)) ks(k)
		ORDER BY n, k NULLS LAST;
	});
}

# '' when the answers $got and $want (answers' lines) are the same up to
# ties: the same queries and k, the same distances in the same order, no id
# twice, and the same ids at each distance but the last (where LIMIT may have
# cut a tie, any of the tied rows is right: the distance printed is each
# row's own); otherwise what differs.
sub tie_diff
{
	my ($got, $want) = @_;
	my @g = split /\n/, $got;
	my @w = split /\n/, $want;
	return "got " . scalar(@g) . " answers, want " . scalar(@w) if @g != @w;
	my @diffs;
	for my $i (0 .. $#w)
	{
		my ($gn, $gk, $gl) = split /\|/, $g[$i], -1;
		my ($wn, $wk, $wl) = split /\|/, $w[$i], -1;
		if ("$gn|$gk" ne "$wn|$wk")
		{
			push @diffs, "answer $i is for query $gn, k $gk; want query $wn, k $wk";
			next;
		}
		my @gp = map { [ split /:/ ] } grep { $_ ne '' } split /,/, $gl;
		my @wp = map { [ split /:/ ] } grep { $_ ne '' } split /,/, $wl;
		my $gd = join(',', map { $_->[1] } @gp);
		my $wd = join(',', map { $_->[1] } @wp);
		if ($gd ne $wd)
		{
			push @diffs, "query $gn, k $gk: distances\n  got  $gd\n  want $wd";
			next;
		}
		my %seen;
		my @twice = grep { $seen{ $_->[0] }++ } @gp;
		push @diffs, "query $gn, k $gk: id $twice[0][0] twice" if @twice;
		# the ids of each distance but the last, as sets
		my (%gs, %ws);
		push @{ $gs{ $_->[1] } }, $_->[0] for @gp;
		push @{ $ws{ $_->[1] } }, $_->[0] for @wp;
		my $last = @wp ? $wp[-1][1] : undef;
		for my $d (sort keys %ws)
		{
			next if defined $last && $d eq $last;
			my $gi = join(',', sort { $a <=> $b } @{ $gs{$d} });
			my $wi = join(',', sort { $a <=> $b } @{ $ws{$d} });
			push @diffs, "query $gn, k $gk, distance $d: ids {$gi}, want {$wi}" if $gi ne $wi;
		}
	}
	return join("\n", @diffs);
}

# '' when each case's index is what its method's search runs on
sub plans
{
	my ($dbname) = @_;
	my @wrong;
	for my $case (@cases)
	{
		my ($method, $op, $index) = @$case;
		my $plan = $node->safe_psql($dbname // $db, qq{
			SET imgsearch.method = '$method'; SET enable_seqscan = off;
			EXPLAIN (COSTS OFF) SELECT id FROM feats WHERE v IS NOT NULL
			ORDER BY v $op (SELECT q FROM queries WHERE n = 1) LIMIT 10;
		});
		push @wrong, "$index: $plan" unless $plan =~ /Index Scan using $index on feats/;
	}
	return join("\n", @wrong);
}

# The sequential scan's answers by each operator; each index's, probing
# every bucket for lsh (exact) and, for lsh, at its default budget.
sub all_answers
{
	my ($dbname) = @_;
	my %a;
	$a{"argsort $_"} = answers('argsort', $_, '', $dbname) for @ops;
	for my $case (@cases)
	{
		my ($method, $op, $index) = @$case;
		$a{$index} = answers($method, $op, $method eq 'lsh' ? $exhaustive : '', $dbname);
		$a{"$index default"} = answers($method, $op, '', $dbname) if $method eq 'lsh';
	}
	return \%a;
}

# Every index answers as the sequential scan and passes imgsearch_index_check.
sub indexes_agree
{
	my ($stage, $dbname) = @_;
	is(plans($dbname), '', "$stage: each search runs on its index");
	my $a = all_answers($dbname);
	for my $case (@cases)
	{
		my ($method, $op, $index) = @$case;
		is(tie_diff($a->{$index}, $a->{"argsort $op"}), '',
			"$stage: $index answers as the sequential scan"
			  . ($method eq 'lsh' ? ' (probing every bucket)' : ''));
		my ($ret, $out, $err) = $node->psql($dbname // $db,
			qq{SELECT method || ':' || (heap_rows = (SELECT count(v) FROM feats))
			   FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", "0:$method:true:", "$stage: imgsearch_index_check passes on $index");
	}
	return $a;
}

my $before = indexes_agree($old);
like($before->{'argsort <->'}, qr/^5\|1\|(7|3007):0\n5\|10\|(7:0,3007|3007:0,7):0,/m,
	"$old: query 5 ties at distance 0 (rows 7 and 3007)");

# --- the update -------------------------------------------------------------------
$node->safe_psql($db, 'ALTER EXTENSION imgsearch UPDATE');
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'"),
	$new, "ALTER EXTENSION imgsearch UPDATE: extversion $new");

my $after = indexes_agree('updated');
for my $key (sort keys %$before)
{
	is(tie_diff($after->{$key}, $before->{$key}), '', "updated: $key answers as before the update");
}

# --- imgsearch_model_workers() and its privileges ----------------------------------------
$node->safe_psql($db, q{
	CREATE ROLE plain LOGIN;
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
});
is($node->safe_psql($db, q{
	SELECT format('%s %s %s', p.prorettype::regtype, p.proretset, has_function_privilege('public', p.oid, 'EXECUTE'))
	FROM pg_proc p WHERE p.oid = 'imgsearch_model_workers()'::regprocedure}),
	'record t f', 'imgsearch_model_workers() returns a set of records, not executable by PUBLIC');
my ($ret, $out, $err) = $node->psql($db,
	"\\set VERBOSITY verbose\nSET ROLE plain; SELECT count(*) FROM imgsearch_model_workers()");
like($err, qr/ERROR:  42501: permission denied for function imgsearch_model_workers/,
	'a plain role gets 42501 from imgsearch_model_workers()');
is($node->safe_psql($db, 'SET ROLE monitor; SELECT count(*) FROM imgsearch_model_workers()'),
	'0', 'a pg_monitor member runs imgsearch_model_workers(): no rows without workers');

# --- imgsearch_sharded_ingest_status() on a plain node ---------------------------------------
# (t/026_shard_ingest runs it on a coordinator.) The updated extension has it,
# and it refuses what is not a coordinator's partitioned table of foreign tables.
if ($node->safe_psql($db, q{SELECT to_regproc('imgsearch_sharded_ingest_status') IS NOT NULL}) eq 't')
{
	$node->safe_psql($db, q{CREATE TABLE parts (id bigint) PARTITION BY HASH (id);
		CREATE TABLE parts_0 PARTITION OF parts FOR VALUES WITH (MODULUS 1, REMAINDER 0);});
	for my $case ([ q{'feats'}, qr/ERROR:  42809: "public.feats" is not a partitioned table/ ],
		[ q{'parts'}, qr/ERROR:  42809: partition public.parts_0 of public.parts is not a postgres_fdw foreign table/ ],
		[ 'NULL', qr/ERROR:  22004: parent must not be null/ ])
	{
		($ret, $out, $err) = $node->psql($db,
			"\\set VERBOSITY verbose\nSELECT * FROM imgsearch_sharded_ingest_status($case->[0])");
		like($err, $case->[1], "updated: imgsearch_sharded_ingest_status($case->[0]) is refused");
	}
	$node->safe_psql($db, 'DROP TABLE parts');
}
else
{
	fail("$new has imgsearch_sharded_ingest_status()");
}

# --- imgsearch_image_info() and imgsearch_thumbnail(), which 0.2 added ----------------------
# A 40x30 24-bit BMP, made here: its header, then bottom-up rows of 120 bytes.
my $bmp = 'BM' . pack('VvvV', 54 + 120 * 30, 0, 0, 54)
  . pack('VllvvVVllVV', 40, 40, 30, 1, 24, 0, 120 * 30, 2835, 2835, 0, 0)
  . join('', map { my $y = $_; join('', map { pack('CCC', 4 * $_, 8 * $y, 100) } 0 .. 39) } 0 .. 29);
my $bmp_hex = unpack('H*', $bmp);
is($node->safe_psql($db, "SELECT format('%s %s %s', i.format, i.width, i.height) FROM imgsearch_image_info('\\x$bmp_hex') i"),
	'BMP 40 30', 'updated: imgsearch_image_info() reads a BMP header');
is($node->safe_psql($db, "SELECT format('%s %s %s', i.format, i.width, i.height) "
	  . "FROM imgsearch_image_info(imgsearch_thumbnail('\\x$bmp_hex', 16)) i"),
	'JPEG 16 12', 'updated: imgsearch_thumbnail() makes a 16x12 JPEG of it');
($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\nSELECT imgsearch_image_info('\\x00')");
like($err, qr/ERROR:  22P03: data is not an image/, 'updated: imgsearch_image_info() of no image is 22P03');

# --- 0.3's queries, through the indexes built on 0.1 -------------------------------------
# ALTER OPERATOR FAMILY gave the old operator classes the range operators
# (<<->>, <<=>>) and the several-examples operators (<->, <=> imgexamples):
# each L2 and cosine index built on 0.1 serves them, as a sequential scan
# answers; imgsearch_duplicates finds the 20 pairs of exact duplicates.
my $q03 = q{
	SELECT n, (SELECT max(d) FROM (SELECT v OP q AS d FROM feats WHERE v IS NOT NULL ORDER BY d LIMIT 40) t) AS r
	FROM queries WHERE n IN (1, 5)};
for my $case (grep { $_->[1] ne '<#>' } @cases)
{
	my ($method, $op, $index) = @$case;
	my $sphere_op = $op eq '<->' ? '<<->>' : '<<=>>';
	(my $radii = $q03) =~ s/OP/$op/;
	my $range = qq{
		SELECT n || '|' || count(f.id) || '|' || string_agg(f.id::text, ',' ORDER BY f.id)
		FROM ($radii) rq JOIN queries USING (n), feats f
		WHERE f.v $sphere_op imgsearch_sphere(queries.q, rq.r)
		GROUP BY n ORDER BY n};
	my $seq = $node->safe_psql($db, "SET imgsearch.method = 'argsort'; SET enable_indexscan = off; SET enable_bitmapscan = off; $range");
	like($seq, qr/^1\|4\d\|/, "updated $op: the reference range holds about 40 rows");
	is($node->safe_psql($db, "SET imgsearch.method = '$method'; SET enable_seqscan = off; $range"), $seq,
		"updated: $index answers a range search ($sphere_op) as a sequential scan");
	my $examples = qq{
		SELECT '1|20|' || string_agg(id || ':' || d, ',' ORDER BY rn)
		FROM (SELECT id, d, row_number() OVER () AS rn FROM (
		        SELECT id, v $op imgsearch_examples(ARRAY[(SELECT q FROM queries WHERE n = 1), (SELECT q FROM queries WHERE n = 5)],
		                                          ARRAY[(SELECT q FROM queries WHERE n = 2)]) AS d
		        FROM feats WHERE v IS NOT NULL
		        ORDER BY v $op imgsearch_examples(ARRAY[(SELECT q FROM queries WHERE n = 1), (SELECT q FROM queries WHERE n = 5)],
		                                          ARRAY[(SELECT q FROM queries WHERE n = 2)]) LIMIT 20) r) s};
	my $want = $node->safe_psql($db, "SET imgsearch.method = 'argsort'; $examples");
	my $plan = $node->safe_psql($db, "SET imgsearch.method = '$method'; SET enable_seqscan = off; $exhaustive EXPLAIN (COSTS OFF) $examples");
	like($plan, qr/Index Scan using $index /, "updated: $index serves ORDER BY v $op imgsearch_examples(...)");
	is(tie_diff($node->safe_psql($db, "SET imgsearch.method = '$method'; SET enable_seqscan = off; $exhaustive $examples"), $want), '',
		"updated: $index orders by the best score of several examples as a sort does");
}
is($node->safe_psql($db, q{
	SELECT count(*) || ' ' || bool_and(ids[2] = ids[1] + 3000)
	FROM (SELECT array_agg(f.id ORDER BY f.id) AS ids
	      FROM imgsearch_duplicates('feats_kd_l2', 0) d JOIN feats f ON f.ctid = d.row_tid
	      GROUP BY d.group_id) g}),
	'20 true', 'updated: imgsearch_duplicates on a 0.1 kdtree index finds the 20 pairs of exact duplicates');

# --- 0.4: imgsearch_recall and imgsearch_tune name lsh.error_bound ----------------------
is($node->safe_psql($db, q{SET lsh.probes = 7; SET lsh.candidates = 123; SET lsh.error_bound = 1.5;
	SELECT setting FROM imgsearch_recall('feats_lsh_l2', 3, 5)}),
	'SET lsh.probes = 7; SET lsh.candidates = 123; SET lsh.error_bound = 1.5',
	'updated: imgsearch_recall on a 0.1 lsh index names the budget in force, lsh.error_bound too');

# --- inserts, deletes, VACUUM, REINDEX on 0.2 -------------------------------------------
$node->safe_psql($db, q{
	SELECT setseed(0.25);
	INSERT INTO feats
	SELECT i, (SELECT array_agg((2 * random() - 1)::real) FROM generate_series(1, 16) WHERE i > 0)::imgfeat
	FROM generate_series(3021, 3600) i;
	INSERT INTO feats SELECT 3600 + id, v FROM feats WHERE id BETWEEN 21 AND 30;
	INSERT INTO feats SELECT i, NULL FROM generate_series(-20, -11) i;
});
indexes_agree('inserts');
$node->safe_psql($db, 'DELETE FROM feats WHERE id % 5 = 0 OR id BETWEEN -15 AND -11');
indexes_agree('deletes');
$node->safe_psql($db, 'VACUUM (INDEX_CLEANUP ON) feats');
indexes_agree('VACUUM');
$node->safe_psql($db, q{
	SELECT setseed(0.26);
	INSERT INTO feats
	SELECT i, (SELECT array_agg((2 * random() - 1)::real) FROM generate_series(1, 16) WHERE i > 0)::imgfeat
	FROM generate_series(3701, 4000) i;
});
indexes_agree('inserts after VACUUM');
$node->safe_psql($db, 'REINDEX TABLE feats');
my $reindexed = indexes_agree('REINDEX');

# --- the upgraded catalog is a fresh install's ----------------------------------------
# One line per fact about the extension and its members, sorted.
my $catalog_sql = q{
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'imgsearch'),
mem AS (SELECT d.classid, d.objid, d.objsubid FROM pg_depend d, ext
        WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e')
SELECT format('member: %s', pg_describe_object(classid, objid, objsubid)) FROM mem
UNION ALL
SELECT format('comment: %s = %s', pg_describe_object(ds.classoid, ds.objoid, ds.objsubid), replace(ds.description, E'\n', '\n'))
FROM pg_description ds
WHERE (ds.classoid, ds.objoid) IN (SELECT classid, objid FROM mem UNION ALL SELECT 'pg_extension'::regclass, oid FROM ext)
UNION ALL
SELECT format('init privileges: %s %s %s', pg_describe_object(ip.classoid, ip.objoid, ip.objsubid), ip.privtype, ip.initprivs)
FROM pg_init_privs ip JOIN mem m ON m.classid = ip.classoid AND m.objid = ip.objoid
UNION ALL
SELECT format('function: %s kind=%s volatile=%s strict=%s parallel=%s secdef=%s leakproof=%s cost=%s rows=%s returns=%s%s args=(%s) language=%s src=%s bin=%s config=%s acl=%s owner=%s',
  p.oid::regprocedure, p.prokind, p.provolatile, p.proisstrict, p.proparallel, p.prosecdef, p.proleakproof, p.procost,
  p.prorows, CASE WHEN p.proretset THEN 'setof ' ELSE '' END, p.prorettype::regtype, pg_get_function_arguments(p.oid),
  l.lanname, replace(p.prosrc, E'\n', '\n'), p.probin, p.proconfig, coalesce(p.proacl::text, 'default'), pg_get_userbyid(p.proowner))
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang JOIN mem m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL
SELECT format('aggregate: %s kind=%s transfn=%s finalfn=%s combinefn=%s serialfn=%s deserialfn=%s transtype=%s transspace=%s initval=%s finalextra=%s finalmodify=%s',
  g.aggfnoid::regprocedure, g.aggkind, g.aggtransfn::regprocedure, nullif(g.aggfinalfn, 0)::regprocedure,
  nullif(g.aggcombinefn, 0)::regprocedure, nullif(g.aggserialfn, 0)::regprocedure, nullif(g.aggdeserialfn, 0)::regprocedure,
  g.aggtranstype::regtype, g.aggtransspace, g.agginitval, g.aggfinalextra, g.aggfinalmodify)
FROM pg_aggregate g JOIN mem m ON m.classid = 'pg_proc'::regclass AND m.objid = g.aggfnoid
UNION ALL
SELECT format('type: %s len=%s byval=%s type=%s category=%s preferred=%s delim=%s in=%s out=%s recv=%s send=%s typmodin=%s typmodout=%s analyze=%s subscript=%s align=%s storage=%s notnull=%s elem=%s array=%s acl=%s owner=%s',
  t.oid::regtype, t.typlen, t.typbyval, t.typtype, t.typcategory, t.typispreferred, t.typdelim,
  t.typinput::regprocedure, t.typoutput::regprocedure, t.typreceive::regprocedure, t.typsend::regprocedure,
  t.typmodin::regprocedure, t.typmodout::regprocedure, t.typanalyze::regprocedure, t.typsubscript::regprocedure,
  t.typalign, t.typstorage, t.typnotnull, t.typelem::regtype, t.typarray::regtype, coalesce(t.typacl::text, 'default'),
  pg_get_userbyid(t.typowner))
FROM pg_type t JOIN mem m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL
SELECT format('operator: %s code=%s result=%s commutator=%s negator=%s restrict=%s join=%s merges=%s hashes=%s owner=%s',
  o.oid::regoperator, o.oprcode::regprocedure, o.oprresult::regtype, nullif(o.oprcom, 0)::regoperator,
  nullif(o.oprnegate, 0)::regoperator, nullif(o.oprrest, 0)::regprocedure, nullif(o.oprjoin, 0)::regprocedure,
  o.oprcanmerge, o.oprcanhash, pg_get_userbyid(o.oprowner))
FROM pg_operator o JOIN mem m ON m.classid = 'pg_operator'::regclass AND m.objid = o.oid
UNION ALL
SELECT format('access method: %s type=%s handler=%s', a.amname, a.amtype, a.amhandler::regprocedure)
FROM pg_am a JOIN mem m ON m.classid = 'pg_am'::regclass AND m.objid = a.oid
UNION ALL
SELECT format('operator class: %s using %s family=%s for=%s default=%s keytype=%s owner=%s',
  c.opcname, a.amname, f.opfname, c.opcintype::regtype, c.opcdefault, nullif(c.opckeytype, 0)::regtype,
  pg_get_userbyid(c.opcowner))
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod JOIN pg_opfamily f ON f.oid = c.opcfamily
JOIN mem m ON m.classid = 'pg_opclass'::regclass AND m.objid = c.oid
UNION ALL
SELECT format('operator family %s using %s: operator %s %s (%s, %s) purpose=%s sortfamily=%s',
  f.opfname, a.amname, ao.amopstrategy, ao.amopopr::regoperator, ao.amoplefttype::regtype, ao.amoprighttype::regtype,
  ao.amoppurpose, (SELECT sf.opfname || ' using ' || sa.amname FROM pg_opfamily sf JOIN pg_am sa ON sa.oid = sf.opfmethod
                   WHERE sf.oid = ao.amopsortfamily))
FROM pg_amop ao JOIN pg_opfamily f ON f.oid = ao.amopfamily JOIN pg_am a ON a.oid = f.opfmethod
JOIN mem m ON m.classid = 'pg_opfamily'::regclass AND m.objid = f.oid
UNION ALL
SELECT format('operator family %s using %s: support %s (%s, %s) %s',
  f.opfname, a.amname, ap.amprocnum, ap.amproclefttype::regtype, ap.amprocrighttype::regtype, ap.amproc::regprocedure)
FROM pg_amproc ap JOIN pg_opfamily f ON f.oid = ap.amprocfamily JOIN pg_am a ON a.oid = f.opfmethod
JOIN mem m ON m.classid = 'pg_opfamily'::regclass AND m.objid = f.oid
UNION ALL
SELECT format('cast: %s -> %s function=%s context=%s method=%s', c.castsource::regtype, c.casttarget::regtype,
  nullif(c.castfunc, 0)::regprocedure, c.castcontext, c.castmethod)
FROM pg_cast c JOIN mem m ON m.classid = 'pg_cast'::regclass AND m.objid = c.oid
UNION ALL
SELECT format('depends: %s -> %s (%s)', pg_describe_object(d.classid, d.objid, d.objsubid),
  pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
FROM pg_depend d JOIN mem m ON m.classid = d.classid AND m.objid = d.objid
WHERE d.refclassid <> 'pg_extension'::regclass
UNION ALL
SELECT format('relation: %s kind=%s persistence=%s rls=%s force_rls=%s options=%s acl=%s owner=%s',
  c.oid::regclass, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.reloptions,
  coalesce(c.relacl::text, 'default'), pg_get_userbyid(c.relowner))
FROM pg_class c JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL
SELECT format('view: %s: %s', c.oid::regclass, replace(pg_get_viewdef(c.oid), E'\n', '\n'))
FROM pg_class c JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT format('column: %s.%s %s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s',
  a.attrelid::regclass, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, nullif(a.attcollation, 0)::regcollation, a.attacl)
FROM pg_attribute a JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = a.attrelid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('constraint: %s on %s: %s', co.conname, co.conrelid::regclass, pg_get_constraintdef(co.oid))
FROM pg_constraint co JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = co.conrelid
UNION ALL
SELECT format('index: %s', pg_get_indexdef(i.indexrelid))
FROM pg_index i JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
UNION ALL
SELECT format('policy: %s on %s: command=%s permissive=%s roles=%s using=%s check=%s', po.polname, po.polrelid::regclass,
  po.polcmd, po.polpermissive, (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END ORDER BY 1)
                                 FROM unnest(po.polroles) r),
  pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid))
FROM pg_policy po JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = po.polrelid
UNION ALL
SELECT format('trigger: %s enabled=%s', pg_get_triggerdef(tg.oid), tg.tgenabled)
FROM pg_trigger tg JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = tg.tgrelid
WHERE NOT tg.tgisinternal
UNION ALL
SELECT format('sequence: %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s', s.seqrelid::regclass,
  s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
FROM pg_sequence s JOIN mem m ON m.classid = 'pg_class'::regclass AND m.objid = s.seqrelid
UNION ALL
SELECT format('extension: %s version=%s schema=%s relocatable=%s config=%s condition=%s owner=%s',
  e.extname, e.extversion, e.extnamespace::regnamespace, e.extrelocatable, e.extconfig::regclass[], e.extcondition,
  pg_get_userbyid(e.extowner))
FROM pg_extension e JOIN ext ON ext.oid = e.oid
};

sub catalog
{
	my ($dbname) = @_;
	return [ sort split /\n/, $node->safe_psql($dbname, $catalog_sql) ];
}

# '' when the sorted lines are the same; otherwise "-" the lines only in
# $want, "+" those only in $got.
sub catalog_diff
{
	my ($got, $want) = @_;
	my (%g, %w);
	$g{$_}++ for @$got;
	$w{$_}++ for @$want;
	my @d = ((map { "- $_" } grep { ($w{$_} // 0) > ($g{$_} // 0) } sort keys %w),
		(map { "+ $_" } grep { ($g{$_} // 0) > ($w{$_} // 0) } sort keys %g));
	return join("\n", @d);
}

$node->safe_psql($db, 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION imgsearch');
is($node->safe_psql('fresh', "SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'"),
	$new, "a fresh CREATE EXTENSION imgsearch is $new");
my $fresh = catalog('fresh');
my $upgraded = catalog($db);
cmp_ok(scalar(@$fresh), '>', 300, 'the catalog listing covers the extension (' . scalar(@$fresh) . ' lines)');
ok((grep { /^function: imgsearch_model_workers\(\) .* acl=\{postgres=X\/postgres,pg_monitor=X\/postgres\}/ } @$fresh),
	'the listing shows imgsearch_model_workers() with its ACL');
is(catalog_diff($upgraded, $fresh), '', "the upgraded catalog is a fresh $new install's (- fresh only, + upgraded only)");
# every earlier version installed beside this one (the released ones) updates
# to the same catalog, by whatever path of upgrade scripts leads here
my @earlier = split /\n/, $node->safe_psql($db, qq{
	SELECT version FROM pg_available_extension_versions WHERE name = 'imgsearch' AND version <> '$new' ORDER BY 1});
ok((grep { $_ eq $old } @earlier), "$old is installed beside $new (earlier versions: @earlier)");
for my $v (@earlier)
{
	(my $vdb = "from_$v") =~ s/\W/_/g;
	$node->safe_psql($db, "CREATE DATABASE $vdb");
	$node->safe_psql($vdb, "CREATE EXTENSION imgsearch VERSION '$v'; ALTER EXTENSION imgsearch UPDATE");
	is(catalog_diff(catalog($vdb), $fresh), '', "$v updated to $new: the catalog is a fresh install's");
}
# the comparison sees a label, an ACL and a comment (changed in a transaction rolled back)
my $changed = [ sort split /\n/, $node->safe_psql('fresh', qq{
	BEGIN;
	ALTER FUNCTION imgsearch_model_workers() PARALLEL SAFE;
	GRANT EXECUTE ON FUNCTION imgsearch_model_workers() TO PUBLIC;
	COMMENT ON ACCESS METHOD lsh IS 'changed';
	$catalog_sql;
	ROLLBACK;
}) ];
my $seen = catalog_diff($changed, $fresh);
ok($seen =~ /^- function: imgsearch_model_workers\(\) .* parallel=r .* acl=\{postgres=X\/postgres,pg_monitor=X\/postgres\} /m
	  && $seen =~ /^\+ function: imgsearch_model_workers\(\) .* parallel=s .* acl=\{(?:[^} ]*,)?=X\/postgres[,}]/m
	  && $seen =~ /^\+ comment: access method lsh = changed$/m,
	'the comparison sees a changed parallel label, ACL and comment')
  or diag($seen);

# --- no downgrade --------------------------------------------------------------------------
($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\nALTER EXTENSION imgsearch UPDATE TO '$old'");
isnt($ret, 0, "ALTER EXTENSION imgsearch UPDATE TO '$old' fails");
like($err, qr/ERROR:  22023: extension "imgsearch" has no update path from version "\Q$new\E" to version "\Q$old\E"/,
	'no downgrade path: 22023');
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'"),
	$new, "still $new after the refused downgrade");
is(catalog_diff(catalog($db), $fresh), '', 'the catalog is unchanged by the refused downgrade');
($ret, $out, $err) = $node->psql($db, 'ALTER EXTENSION imgsearch UPDATE');
is($ret, 0, "ALTER EXTENSION imgsearch UPDATE at $new succeeds");
like($err, qr/NOTICE:  version "\Q$new\E" of extension "imgsearch" is already installed/, '... a no-op notice');

# --- without shared_preload_libraries: as 0.1 ran -------------------------------------------
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', undef);
$node->adjust_conf('postgresql.conf', 'imgsearch.model_workers', undef);
$node->restart;
($ret, $out, $err) = $node->psql($db, "SELECT count(*) FROM feats WHERE v <-> v = 0");
is("$ret:$err", '0:', "without imgsearch in shared_preload_libraries, a session loads the $new library");
my $loads = $ret == 0;
SKIP:
{
	skip 'the library does not load without shared_preload_libraries', 1 unless $loads;
	my $unloaded = indexes_agree('without preloading');
	is(join("\n", map { tie_diff($unloaded->{$_}, $reindexed->{$_}) || () } sort keys %$reindexed), '',
		'without preloading, every answer is the one with it');
	is($node->safe_psql($db, 'SET ROLE monitor; SELECT count(*) FROM imgsearch_model_workers()'),
		'0', 'without preloading, imgsearch_model_workers() returns no rows');
	$node->safe_psql($db, 'CREATE DATABASE old');
	($ret, $out, $err) = $node->psql('old', qq{
		CREATE EXTENSION imgsearch VERSION '$old';
		CREATE TABLE t (id int, v imgfeat(3));
		INSERT INTO t SELECT i, ARRAY[sin(i), cos(i), i % 7]::imgfeat FROM generate_series(1, 500) i;
		CREATE INDEX ON t USING faissflat (v);
		ALTER EXTENSION imgsearch UPDATE;
		SET enable_seqscan = off;
		SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY v <-> '[0.5,0.5,3]' LIMIT 3) s});
	is("$ret:$err", '0:', "without preloading, $old is created, used and updated");
	is(catalog_diff(catalog('old'), $fresh), '', 'without preloading, the upgraded catalog is a fresh install\'s');
}

# --- with a model worker --------------------------------------------------------------------
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'imgsearch'
imgsearch.model_workers = 1
});
$node->restart;
ok($node->poll_query_until($db, q{SELECT count(*) = 1 AND bool_and(pid IS NOT NULL) FROM imgsearch_model_workers()}),
	'with a model worker, imgsearch_model_workers() returns its row once it runs');
is($node->safe_psql($db, q{SET ROLE monitor; SELECT format('%s %s %s %s', worker, state, served, model IS NULL) FROM imgsearch_model_workers()}),
	'0 idle 0 t', 'a pg_monitor member sees the worker: idle, nothing served, no model');
($ret, $out, $err) = $node->psql($db,
	"\\set VERBOSITY verbose\nSET ROLE plain; SELECT count(*) FROM imgsearch_model_workers()");
like($err, qr/ERROR:  42501: permission denied for function imgsearch_model_workers/,
	'with a model worker, a plain role still gets 42501');
my $pooled = indexes_agree('with a model worker');
is(join("\n", map { tie_diff($pooled->{$_}, $reindexed->{$_}) || () } sort keys %$reindexed), '',
	'with a model worker, every answer is the one without');

# --- DROP EXTENSION, CREATE EXTENSION -------------------------------------------------------
($ret, $out, $err) = $node->psql($db, "\\set VERBOSITY verbose\nDROP EXTENSION imgsearch");
like($err, qr/ERROR:  2BP01: cannot drop extension imgsearch because other objects depend on it/,
	'DROP EXTENSION without CASCADE: 2BP01 (the table depends on it)');
$node->safe_psql($db, 'DROP EXTENSION imgsearch CASCADE');
is($node->safe_psql($db, q{SELECT count(*) FROM pg_class WHERE relname LIKE 'feats\_%' AND relkind = 'i'}),
	'1', 'DROP EXTENSION CASCADE drops the indexes (the primary key stays)');
$node->safe_psql($db, 'CREATE EXTENSION imgsearch');
is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'"),
	$new, "CREATE EXTENSION after DROP: $new");
is(catalog_diff(catalog($db), $fresh), '', 'after DROP and CREATE, the catalog is a fresh install\'s');
is($node->safe_psql($db, q{
	CREATE TABLE t (id int, v imgfeat(3));
	INSERT INTO t SELECT i, ARRAY[sin(i), cos(i), i % 7]::imgfeat FROM generate_series(1, 500) i;
	CREATE INDEX t_kd ON t USING kdtree (v);
	SELECT imgsearch_index_check('t_kd')::text LIKE '(kdtree,%,500,0)'}),
	't', 'after DROP and CREATE, a new index is built and checked');

$node->stop;
done_testing();
