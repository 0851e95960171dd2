# faissflat is fully WAL-logged: a streaming standby returns the same answers
# as the primary, and the same as its own sequential scan, after the build
# (log_newpage_range), inserts (Generic WAL; a 4096-d vector spans pages and
# WAL records), deletes, VACUUM (free list) and inserts into freed slots.
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

# 4096-d: 680 slots per group, so 800 rows make two groups; 24-d: many groups.
$primary->safe_psql('postgres', q{
	CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
	  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
	SELECT setseed(0.11);
	CREATE TABLE big (id int, v imgfeat(4096));
	CREATE TABLE small (id int, v imgfeat(24));
	INSERT INTO big SELECT i, rand_vec(4096, i) FROM generate_series(1, 500) i;
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(1, 3000) i;
	CREATE INDEX big_l2 ON big USING faissflat (v);
	CREATE INDEX big_ip ON big USING faissflat (v imgfeat_ip_ops);
	CREATE INDEX small_cos ON small USING faissflat (v imgfeat_cosine_ops);
	CREATE TABLE queries AS
	SELECT 'big' AS tbl, n, rand_vec(4096, n) AS q FROM generate_series(1, 3) n
	UNION ALL SELECT 'small', n, rand_vec(24, n) FROM generate_series(1, 3) n;
});

# "id:distance" lists, one line per table, operator, query and k. With the
# index forced, or (argsort) with a sequential scan and sort. One session:
# each new backend loads the module (and libtorch) again.
sub answers
{
	my ($node, $method, $ks) = @_;
	my $sql = "SET imgsearch.method = '$method';\n"
	  . 'SET enable_seqscan = ' . ($method eq 'argsort' ? 'on' : 'off') . ";\n";
	for my $case (['big', '<->'], ['big', '<#>'], ['small', '<=>'])
	{
		my ($tbl, $op) = @$case;
		for my $k (@$ks)
		{
			$sql .= qq{
				SELECT n, (SELECT string_agg(id || ':' || d, ',')
				           FROM (SELECT id, v $op q AS d FROM $tbl ORDER BY v $op q LIMIT $k) s)
				FROM queries WHERE tbl = '$tbl' ORDER BY n;
			};
		}
	}
	return $node->safe_psql('postgres', $sql);
}

sub uses_index
{
	my ($node) = @_;
	my $plan = $node->safe_psql('postgres', q{
		SET imgsearch.method = 'faissflat';
		EXPLAIN (COSTS OFF) SELECT id FROM big ORDER BY v <-> (SELECT q FROM queries WHERE tbl = 'big' AND n = 1) LIMIT 5;
	});
	return $plan =~ /Index Scan using big_l2/;
}

sub compare
{
	my ($stage) = @_;
	$primary->wait_for_catchup($standby);
	my $on_primary = answers($primary, 'faissflat', [ 1, 30, 'ALL' ]);
	is(answers($standby, 'faissflat', [ 1, 30, 'ALL' ]), $on_primary,
		"$stage: the standby's index answers like the primary's");
	# (ties make "all rows" of a sort ambiguous; top 30 have none here)
	is(answers($standby, 'faissflat', [ 30 ]), answers($standby, 'argsort', [ 30 ]),
		"$stage: the standby's index answers like its sequential scan");
	# imgsearch_index_check on the standby (during recovery: AccessShareLock)
	for my $index ('big_l2', 'big_ip', 'small_cos')
	{
		my $tbl = $index =~ /^big/ ? 'big' : 'small';
		my ($ret, $out, $err) = $standby->psql('postgres',
			qq{SELECT heap_rows = (SELECT count(v) FROM $tbl) FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", '0:t:', "$stage: imgsearch_index_check passes on the standby's $index");
	}
}

compare('build');
ok(uses_index($standby), 'the standby plans an index scan');

$primary->safe_psql('postgres', q{
	SELECT setseed(0.12);
	INSERT INTO big SELECT i, rand_vec(4096, i) FROM generate_series(501, 800) i;
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(3001, 4000) i;
});
compare('inserts');

$primary->safe_psql('postgres', q{
	DELETE FROM big WHERE id % 3 = 0;
	DELETE FROM small WHERE id % 3 = 0;
});
compare('deletes');

$primary->safe_psql('postgres', 'VACUUM big, small');
compare('vacuum');

my $size = $primary->safe_psql('postgres', "SELECT pg_relation_size('big_l2')");
$primary->safe_psql('postgres', q{
	SELECT setseed(0.13);
	INSERT INTO big SELECT i, rand_vec(4096, i) FROM generate_series(801, 900) i;
	INSERT INTO small SELECT i, rand_vec(24, i) FROM generate_series(4001, 4500) i;
});
is($primary->safe_psql('postgres', "SELECT pg_relation_size('big_l2')"), $size,
	'inserts after VACUUM reuse freed slots');
compare('inserts into freed slots');

$standby->stop;
$primary->stop;
done_testing();
