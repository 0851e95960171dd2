# kdtree survives crashes: pg_ctl stop -m immediate
# (1) while clients insert into a table with two kdtree indexes (L2, cosine);
# (2) while clients insert, delete and VACUUM.
# After each recovery every committed row is found by each index, the top 30
# of each probe agree with a sequential scan and sort, and
# imgsearch_index_check passes; likewise after inserts that follow the crash.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	SELECT setseed(0.5);
	-- a decaying spectrum: a mean, two random directions weighted 1 and 1/2,
	-- noise scaled 1/rank over a random permutation of the coordinates
	CREATE TABLE basis AS
	SELECT c, random() - 0.5 AS b1, random() - 0.5 AS b2, 1.0 / row_number() OVER (ORDER BY random()) AS scale
	FROM generate_series(1, 512) c;
	CREATE FUNCTION spec_vec() RETURNS imgfeat LANGUAGE plpgsql AS $$
	DECLARE
		g1 float8 := random() - 0.5;
		g2 float8 := random() - 0.5;
	BEGIN
		RETURN (SELECT array_agg((0.5 + g1 * b1 + g2 * b2 / 2 + (random() - 0.5) * scale)::real ORDER BY c)
		        FROM basis)::imgfeat;
	END $$;
	CREATE TABLE f (id serial, v imgfeat(512));
	INSERT INTO f (v) SELECT spec_vec() FROM generate_series(1, 500) i;
	CREATE INDEX f_l2 ON f USING kdtree (v) WITH (dims = 16, leaf_size = 4);
	CREATE INDEX f_cos ON f USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 16);
	CREATE TABLE probe AS SELECT n, spec_vec() AS q FROM generate_series(1, 3) n;
});

my $force = q{SET imgsearch.method = 'kdtree'; SET enable_seqscan = off;};

# Every row with a vector is in each index, and the top 30 of each probe agree
# with a sequential scan and sort.
sub check
{
	my ($n, $stage) = @_;
	my $all = $n->safe_psql('postgres',
		q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f WHERE v IS NOT NULL});
	for my $case ([ '<->', 'f_l2' ], [ '<=>', 'f_cos' ])
	{
		my ($op, $index) = @$case;
		my $every = qq{SELECT string_agg(id::text, ',' ORDER BY id)
		               FROM (SELECT id FROM f ORDER BY v $op (SELECT q FROM probe WHERE n = 1)) s};
		like($n->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $every"), qr/Index Scan using $index on/,
			"$stage: the search uses $index");
		is($n->safe_psql('postgres', "$force $every"), $all, "$stage: $index holds every committed row");
		my $top = qq{
			SELECT n, (SELECT string_agg(id || ':' || d, ',')
			           FROM (SELECT id, v $op q AS d FROM f ORDER BY v $op q LIMIT 30) s)
			FROM probe ORDER BY n;
		};
		is($n->safe_psql('postgres', "$force $top"),
			$n->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $top"),
			"$stage: $index agrees with a sequential scan and sort");
		my ($ret, $out, $err) = $n->psql('postgres',
			qq{SELECT heap_rows = (SELECT count(v) FROM f) FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", '0:t:', "$stage: imgsearch_index_check passes on $index");
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

# (1) inserts
crash_during('insert', 1500, "INSERT INTO f (v) SELECT spec_vec();\n");
check($node, 'after a crash during inserts');
$node->safe_psql('postgres', 'INSERT INTO f (v) SELECT spec_vec() FROM generate_series(1, 100) i');
check($node, 'after inserts that follow the crash');

# (2) inserts and deletes (nine times in ten) and VACUUM (once in ten), until
# 1200 more rows were inserted; then the crash
my $mixed = $node->basedir . '/mixed.sql';
append_to_file($mixed, q{
INSERT INTO f (v) SELECT spec_vec() FROM generate_series(1, 3);
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
	INSERT INTO f (v) SELECT spec_vec() FROM generate_series(1, 100) i;
});
check($node, 'after VACUUM and inserts that follow the crash');

$node->stop;
done_testing();
