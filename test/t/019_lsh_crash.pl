# lsh survives crashes: pg_ctl stop -m immediate
# (1) while clients insert into a table with three lsh indexes (L2, cosine,
#     inner product);
# (2) while clients insert, delete and VACUUM.
# After each recovery, with lsh.probes = 0 and lsh.candidates = 0 (exact),
# every committed row is found by each index and the top 30 of each probe are
# a sequential scan and sort's; with the default budget the top 30 are 30
# distinct rows in non-decreasing distance; imgsearch_index_check passes.
# Likewise after VACUUM and inserts that follow the crash.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
# enable_seqscan = off prices the helper queries past jit_above_cost
$node->append_conf('postgresql.conf', 'jit = off');
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	SELECT setseed(0.5);
	-- clusters: 10 centres, each row a centre plus uniform noise
	CREATE TABLE centre AS SELECT j, c, 2 * random() - 1 AS m FROM generate_series(0, 9) j, generate_series(1, 256) c;
	CREATE FUNCTION clu_vec() RETURNS imgfeat LANGUAGE plpgsql VOLATILE AS $$
	DECLARE
		pick int := floor(random() * 10);
	BEGIN
		RETURN (SELECT array_agg((m + random() - 0.5)::real ORDER BY c) FROM centre WHERE j = pick)::imgfeat;
	END $$;
	CREATE TABLE f (id serial, v imgfeat(256));
	INSERT INTO f (v) SELECT clu_vec() FROM generate_series(1, 500) i;
	CREATE INDEX f_l2 ON f USING lsh (v) WITH (buckets = 100);
	CREATE INDEX f_cos ON f USING lsh (v imgfeat_cosine_ops) WITH (bits = 32, buckets = 30);
	CREATE INDEX f_ip ON f USING lsh (v imgfeat_ip_ops) WITH (buckets = 60);
	CREATE TABLE probe AS SELECT n, clu_vec() AS q FROM generate_series(1, 3) n;
});

my $force = q{SET imgsearch.method = 'lsh'; SET enable_seqscan = off;};
my $everything = q{SET lsh.probes = 0; SET lsh.candidates = 0;};

# Every row with a vector is in each index, the top 30 of each probe agree
# with a sequential scan and sort, the default budget's are in shape, the
# index check passes.
sub check
{
	my ($n, $stage) = @_;
	my $all = $n->safe_psql('postgres',
		q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f WHERE v IS NOT NULL});
	for my $case ([ '<->', 'f_l2' ], [ '<=>', 'f_cos' ], [ '<#>', 'f_ip' ])
	{
		my ($op, $index) = @$case;
		my $every = qq{SELECT string_agg(id::text, ',' ORDER BY id)
		               FROM (SELECT id FROM f ORDER BY v $op (SELECT q FROM probe WHERE n = 1)) s};
		like($n->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $every"), qr/Index Scan using $index on/,
			"$stage: the search uses $index");
		is($n->safe_psql('postgres', "$force $everything $every"), $all,
			"$stage: $index holds every committed row (probing everything)");
		my $top = qq{
			SELECT n, (SELECT string_agg(id || ':' || d, ',')
			           FROM (SELECT id, v $op q AS d FROM f ORDER BY v $op q LIMIT 30) s)
			FROM probe ORDER BY n;
		};
		is($n->safe_psql('postgres', "$force $everything $top"),
			$n->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $top"),
			"$stage: $index agrees with a sequential scan and sort (probing everything)");
		my $shape = qq{
			SELECT string_agg(n || ': ' || bad, '; ') FROM (
				SELECT n, concat_ws(', ',
				              CASE WHEN count(*) <> 30 THEN count(*) || ' rows' END,
				              CASE WHEN count(DISTINCT id) < count(*) THEN 'an id twice' END,
				              CASE WHEN NOT bool_and(prev IS NULL OR prev <= d) THEN 'out of order' END) AS bad
				FROM (SELECT n, id, d, lag(d) OVER (PARTITION BY n ORDER BY rn) AS prev
				      FROM probe, LATERAL (SELECT id, d, row_number() OVER () AS rn
				                           FROM (SELECT id, v $op q AS d FROM f ORDER BY v $op q LIMIT 30) r) s) t
				GROUP BY n) u
			WHERE bad <> ''
		};
		is($n->safe_psql('postgres', "$force $shape"), '',
			"$stage: $index with the default budget: 30 distinct rows in non-decreasing distance");
		my ($ret, $out, $err) = $n->psql('postgres',
			qq{SELECT method || ':' || (heap_rows = (SELECT count(v) FROM f)) FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", '0:lsh:true:', "$stage: imgsearch_index_check passes on $index");
	}
}

# Three clients run the script, each statement its own transaction, until the
# table has $until rows; then the crash.
sub crash_during
{
	my ($name, $until, $script_text) = @_;
	my $script = $node->basedir . "/$name.sql";
	append_to_file($script, $script_text);
	my ($out, $err) = ('', '');
	my $pgbench = IPC::Run::start(
		[ 'pgbench', '-n', '-c', '3', '-T', '120', '-f', $script,
		  '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', "SELECT max(id) >= $until FROM f")
	  or die "the clients did not insert: $err";
	$node->stop('immediate');
	$pgbench->kill_kill;
	$node->start;
}

# (1) inserts (a NULL now and then)
crash_during('insert', 1500, "INSERT INTO f (v) SELECT CASE WHEN random() < 0.05 THEN NULL ELSE clu_vec() END;\n");
check($node, 'after a crash during inserts');
$node->safe_psql('postgres', 'INSERT INTO f (v) SELECT clu_vec() FROM generate_series(1, 100) i');
check($node, 'after inserts that follow the crash');

# (2) inserts and deletes (nine times in ten) and VACUUM (once in ten), until
# 1200 more rows were inserted; then the crash
my $mixed = $node->basedir . '/mixed.sql';
append_to_file($mixed, q{
INSERT INTO f (v) SELECT clu_vec() FROM generate_series(1, 3);
DELETE FROM f WHERE id IN (SELECT (random() * (SELECT max(id) FROM f))::int FROM generate_series(1, 2));
});
my $vacuum = $node->basedir . '/vacuum.sql';
append_to_file($vacuum, "VACUUM f;\n");
my $before = $node->safe_psql('postgres', 'SELECT max(id) FROM f');
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '3', '-T', '120', '-f', "$mixed\@9", '-f', "$vacuum\@1",
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres', 'SELECT max(id) >= ' . ($before + 1200) . ' FROM f')
  or die "the clients did not insert: $err";
$node->stop('immediate');
$pgbench->kill_kill;
$node->start;
check($node, 'after a crash during inserts, deletes and VACUUM');
$node->safe_psql('postgres', q{
	VACUUM (INDEX_CLEANUP ON) f;
	INSERT INTO f (v) SELECT clu_vec() FROM generate_series(1, 100) i;
});
check($node, 'after VACUUM and inserts that follow the crash');
for my $index ('f_l2', 'f_cos', 'f_ip')
{
	$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) f');
	is($node->safe_psql('postgres', qq{SELECT dead_entries FROM imgsearch_index_check('$index')}), '0',
		"after the last VACUUM, no dead entries in $index");
}

$node->stop;
done_testing();
