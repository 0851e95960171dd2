# kdtree is fully WAL-logged: a streaming standby returns the same answers as
# the primary, and the same as its own sequential scan and sort (argsort),
# after the build, inserts past the build, deletes, VACUUM, inserts after
# VACUUM and a REINDEX, in new sessions and in one kept open since the build;
# imgsearch_index_check passes on the standby at every stage. Data: 4096-d
# vectors with a decaying spectrum (a vector spans pages and WAL records) and
# 24-d uniform random ones; small reloptions make the trees deep.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION imgsearch');
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
	CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
	  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
	SELECT setseed(0.21);
	-- spectrum: a mean, two random directions weighted 1 and 1/2, noise scaled
	-- 1/rank over a random permutation of the coordinates
	CREATE TABLE basis AS
	SELECT c, random() - 0.5 AS b1, random() - 0.5 AS b2, 1.0 / row_number() OVER (ORDER BY random()) AS scale
	FROM generate_series(1, 4096) c;
	CREATE FUNCTION spec_vec(seed int) RETURNS imgfeat LANGUAGE plpgsql AS $$
	DECLARE
		g1 float8 := random() - 0.5;
		g2 float8 := random() - 0.5;
	BEGIN
		RETURN (SELECT array_agg((0.5 + g1 * b1 + g2 * b2 / 2 + (random() - 0.5) * scale)::real ORDER BY c)
		        FROM basis)::imgfeat;
	END $$;
	CREATE TABLE big (id int, v imgfeat(4096));
	CREATE TABLE small (id int, v imgfeat(24));
	INSERT INTO big SELECT i, spec_vec(i) FROM generate_series(1, 300) i;
	INSERT INTO big VALUES (-1, NULL);
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(1, 3000) i;
	CREATE INDEX big_l2 ON big USING kdtree (v) WITH (dims = 16, leaf_size = 4);
	CREATE INDEX big_cos ON big USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 8);
	CREATE INDEX small_cos ON small USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 4);
	CREATE INDEX small_l2 ON small USING kdtree (v);
	CREATE TABLE queries AS
	SELECT 'big' AS tbl, n, spec_vec(n) AS q FROM generate_series(1, 3) n
	UNION ALL SELECT 'small', n, rand_vec(24, n) FROM generate_series(1, 3) n;
});

my @cases = ([ 'big', '<->', 'big_l2' ], [ 'big', '<=>', 'big_cos' ],
	[ 'small', '<=>', 'small_cos' ], [ 'small', '<->', 'small_l2' ]);

# "id:distance" lists, one line per table, operator, query and k. With the
# kdtree index forced, or (argsort) with a sequential scan and sort. One
# session: each new backend loads the module (and libtorch) again. $sorted:
# the pairs sorted by distance and id, then whether the rows came in
# non-decreasing distance (thousands of float distances have ties, which a
# sort and the index may return in different orders); otherwise as returned.
sub answers_sql
{
	my ($method, $ks, $sorted) = @_;
	my $sql = "SET imgsearch.method = '$method';\n"
	  . 'SET enable_seqscan = ' . ($method eq 'argsort' ? 'on' : 'off') . ";\n";
	my $agg = $sorted
	  ? q{string_agg(id || ':' || d, ',' ORDER BY d, id) || ' in order: ' || bool_and(prev IS NULL OR prev <= d)}
	  : q{string_agg(id || ':' || d, ',' ORDER BY rn)};
	for my $case (@cases)
	{
		my ($tbl, $op) = @$case;
		for my $k (@$ks)
		{
			$sql .= qq{
				SELECT n, (SELECT $agg
				           FROM (SELECT id, d, rn, lag(d) OVER (ORDER BY rn) AS prev
				                 FROM (SELECT id, d, row_number() OVER () AS rn
				                       FROM (SELECT id, v $op q AS d FROM $tbl WHERE v IS NOT NULL
				                             ORDER BY v $op q LIMIT $k) r) s) t)
				FROM queries WHERE tbl = '$tbl' ORDER BY n;
			};
		}
	}
	return $sql;
}

sub answers
{
	my ($node, @args) = @_;
	return $node->safe_psql('postgres', answers_sql(@args));
}

# every index of @cases is what a kdtree search runs on this node
sub plans
{
	my ($node) = @_;
	my @wrong;
	for my $case (@cases)
	{
		my ($tbl, $op, $index) = @$case;
		my $plan = $node->safe_psql('postgres', qq{
			SET imgsearch.method = 'kdtree';
			SET enable_seqscan = off;
			EXPLAIN (COSTS OFF) SELECT id FROM $tbl ORDER BY v $op (SELECT q FROM queries WHERE tbl = '$tbl' AND n = 1) LIMIT 5;
		});
		push @wrong, "$index: $plan" unless $plan =~ /Index Scan using $index on/;
	}
	return join("\n", @wrong);
}

# A session on the standby that stays open from the start: its backend keeps
# the trees it has read in its cache while recovery changes the indexes.
my $held;

sub compare
{
	my ($stage) = @_;
	$primary->wait_for_catchup($standby);
	is(plans($standby), '', "$stage: the standby plans kdtree index scans");
	# a physical copy: the same rows in the same order, ties included
	my $on_primary = answers($primary, 'kdtree', [ 1, 30, 'ALL' ], 0);
	is(answers($standby, 'kdtree', [ 1, 30, 'ALL' ], 0), $on_primary,
		"$stage: the standby's index answers like the primary's");
	$held //= $standby->background_psql('postgres');
	is($held->query_safe(answers_sql('kdtree', [ 1, 30, 'ALL' ], 0)), $on_primary,
		"$stage: a standby session open since the build answers like the primary");
	is(answers($standby, 'kdtree', [ 1, 30, 'ALL' ], 1), answers($standby, 'argsort', [ 1, 30, 'ALL' ], 1),
		"$stage: the standby's index answers like its sequential scan and sort");
	is(answers($primary, 'kdtree', [ 30, 'ALL' ], 1), answers($primary, 'argsort', [ 30, 'ALL' ], 1),
		"$stage: the primary's index answers like its sequential scan and sort");
	# imgsearch_index_check on the standby (during recovery: AccessShareLock)
	for my $case (@cases)
	{
		my ($tbl, undef, $index) = @$case;
		my ($ret, $out, $err) = $standby->psql('postgres',
			qq{SELECT method || ':' || (heap_rows = (SELECT count(v) FROM $tbl))
			   FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", '0:kdtree:true:', "$stage: imgsearch_index_check passes on the standby's $index");
	}
}

compare('build');

$primary->safe_psql('postgres', q{
	SELECT setseed(0.22);
	INSERT INTO big SELECT i, spec_vec(i) FROM generate_series(301, 450) i;
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(3001, 4000) i;
	INSERT INTO small VALUES (-1, NULL);
});
compare('inserts');

$primary->safe_psql('postgres', q{
	DELETE FROM big WHERE id % 3 = 0;
	DELETE FROM small WHERE id % 3 = 0;
});
compare('deletes');

$primary->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) big, small');
compare('vacuum');

$primary->safe_psql('postgres', q{
	SELECT setseed(0.23);
	INSERT INTO big SELECT i, spec_vec(i) FROM generate_series(451, 500) i;
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(4001, 4500) i;
});
compare('inserts after vacuum');

$primary->safe_psql('postgres', 'REINDEX INDEX big_l2; REINDEX INDEX small_cos');
compare('reindex');

$held->quit;
$standby->stop;
$primary->stop;
done_testing();
