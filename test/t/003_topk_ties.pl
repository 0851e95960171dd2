# ImgsTest::topk_sql, the form in which the suites compare top-k answers:
# two correct answers that differ only in the order of tied rows, or in which
# rows tied at the k-th distance a LIMIT kept, agree; a missing row, a wrong
# row, a wrong distance, a row twice, rows out of order or too few rows do
# not. Then on real indexes over many exactly tied distances: each method's
# exact answer agrees with a sequential scan and sort.
use strict;
use warnings;
use Test::More;
use ImgsTest qw(new_node topk_sql);

my $node = new_node('ties');

# An answer given as "id:distance" pairs in the order returned.
sub form
{
	my ($answer) = @_;
	my $i = 0;
	my $values = join(' UNION ALL ',
		map { my ($id, $d) = split /:/; $i++; "SELECT $id AS id, ${d}::float8 AS d, $i AS o" } split /,/, $answer);
	$values ||= 'SELECT 1 AS id, 1::float8 AS d, 1 AS o WHERE false';
	return $node->safe_psql('postgres', topk_sql("SELECT id, d FROM ($values) v ORDER BY o"));
}

# rows 1..5 at 0.1, 0.2, 0.2, 0.3, 0.3 (and 6 at 0.3 too); k = 4
my $sort = form('1:0.1,2:0.2,3:0.2,4:0.3');
is($sort, '1:0.1,2:0.2,3:0.2,*:0.3', 'the form: rows at the k-th distance show *');
is(form('1:0.1,3:0.2,2:0.2,5:0.3'), $sort, 'tied rows in another order, another row tied at the k-th distance: agree');
isnt(form('1:0.1,2:0.2,4:0.3,5:0.3'), $sort, 'a row missing (its place taken by one tied at the k-th distance): differ');
isnt(form('1:0.1,2:0.2,7:0.2,4:0.3'), $sort, 'a wrong row at a distance below the k-th: differ');
isnt(form('1:0.1,2:0.2,3:0.25,4:0.3'), $sort, 'a wrong distance: differ');
isnt(form('1:0.1,2:0.2,3:0.2,4:0.4'), $sort, 'a wrong k-th distance: differ');
isnt(form('2:0.2,1:0.1,3:0.2,4:0.3'), $sort, 'rows out of order: differ');
like(form('2:0.2,1:0.1,3:0.2,4:0.3'), qr/\(out of order\)$/, '... and says so');
isnt(form('1:0.1,2:0.2,3:0.2'), $sort, 'a row too few: differ');
my $sort5 = form('1:0.1,2:0.2,3:0.2,4:0.3,5:0.3');
isnt(form('1:0.1,2:0.2,3:0.2,4:0.3,4:0.3'), $sort5, 'a row twice at the k-th distance: differ');
like(form('1:0.1,2:0.2,3:0.2,4:0.3,4:0.3'), qr/\(an id twice\)$/, '... and says so');
is(form(''), '', 'no rows: empty');

# 400 2-d vectors at 20 distinct points, 20 rows each: from [0,0] every
# distance is tied 20 times, and LIMIT 30 cuts a tie.
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int, v imgfeat(2));
	INSERT INTO t SELECT i, ARRAY[i % 10, (i / 10) % 2]::imgfeat FROM generate_series(1, 400) i;
	CREATE INDEX t_faissflat ON t USING faissflat (v);
	CREATE INDEX t_kdtree ON t USING kdtree (v) WITH (leaf_size = 4);
	CREATE INDEX t_lsh ON t USING lsh (v);
});
for my $k (1, 30, 50, 'ALL')
{
	my $top = topk_sql("SELECT id, v <-> '[0,0]' AS d FROM t ORDER BY v <-> '[0,0]' LIMIT $k");
	my $want = $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $top");
	for my $method ('faissflat', 'kdtree', 'lsh')
	{
		my $force = "SET imgsearch.method = '$method'; SET enable_seqscan = off; SET lsh.probes = 0; SET lsh.candidates = 0;";
		like($node->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $top"), qr/Index Scan using t_$method on t/,
			"$method, k = $k: an index scan");
		is($node->safe_psql('postgres', "$force $top"), $want, "$method, k = $k: tied rows, the sort's answer");
	}
}

$node->stop;
done_testing();
