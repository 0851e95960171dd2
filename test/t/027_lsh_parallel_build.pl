# lsh builds compute on threads (docs/methods.md "Parallel builds"): as many
# as PostgreSQL would plan for a parallel build of the index (the table's
# parallel_workers, max_parallel_maintenance_workers), capped by the cores.
# (1) The server log says how many threads each build took: 1 with
#     parallel_workers = 0, 2 with parallel_workers = 1 (3 where the machine
#     has the cores, else its cores).
# (2) Indexes built on 1 and on several threads answer every query with a
#     small budget (lsh.probes = 1, lsh.candidates = 20, approximate: the
#     hash decides the answer) with the same rows in the same order, and
#     exactly (probes 0) as a sequential scan and sort.
# (3) A build canceled by statement_timeout while its threads compute fails
#     with 57014, the server keeps running, and the next build succeeds.
use strict;
use warnings;
use Test::More;
use ImgsTest qw(topk_sql);

my $node = ImgsTest::new_node('lsh_threads',
	conf => [ 'log_min_messages = debug1', 'max_parallel_maintenance_workers = 4',
		'maintenance_work_mem = 512MB' ]);
$node->safe_psql('postgres', q{
	SELECT setseed(0.27);
	CREATE TABLE centre AS SELECT j, c, 4 * random() - 2 AS m FROM generate_series(0, 19) j, generate_series(1, 64) c;
	CREATE TABLE t (id int PRIMARY KEY, v imgfeat(64));
	INSERT INTO t SELECT i, (SELECT array_agg((m + random() - 0.5)::real ORDER BY c) FROM centre WHERE j = i % 20)::imgfeat
	FROM generate_series(1, 6000) i;
	CREATE TABLE q AS SELECT i AS qn, (SELECT array_agg((m + 2 * random() - 1)::real ORDER BY c) FROM centre WHERE j = i % 20)::imgfeat AS v
	FROM generate_series(1, 12) i;
});
my $cores = `getconf _NPROCESSORS_ONLN` + 0 || 1;   # as the build counts them

# The ids the index t_lsh answers every query with, under a small budget,
# in the order returned.
sub budget_answers
{
	my $out = '';
	for my $qn (1 .. 12)
	{
		$out .= $node->safe_psql('postgres', "SET imgsearch.method = 'lsh'; SET enable_seqscan = off; "
			  . "SET lsh.probes = 1; SET lsh.candidates = 20; SELECT string_agg(id::text, ',') FROM "
			  . "(SELECT id FROM t ORDER BY v <-> (SELECT v FROM q WHERE qn = $qn) LIMIT 30) a") . "\n";
	}
	return $out;
}

my %answer;
for my $workers (0, 1, 2)
{
	my $log_offset = -s $node->logfile;
	$node->safe_psql('postgres', "ALTER TABLE t SET (parallel_workers = $workers); DROP INDEX IF EXISTS t_lsh; "
		  . "CREATE INDEX t_lsh ON t USING lsh (v) WITH (buckets = 40, bits = 64);");
	my $want = $workers + 1 < $cores ? $workers + 1 : $cores;
	my $plural = $want == 1 ? '' : 's';
	ok($node->log_contains(qr/lsh index "t_lsh": training and hashing on $want thread$plural/, $log_offset),
		"parallel_workers = $workers: the build took $want thread$plural");
	$answer{$workers} = budget_answers();
}
is($answer{1}, $answer{0}, 'a budget answers alike on indexes built with parallel_workers 0 and 1');
is($answer{2}, $answer{0}, 'a budget answers alike on indexes built with parallel_workers 0 and 2');

# exact, against a sequential scan and sort
my ($exact_index, $exact_sort) = ('', '');
for my $qn (1 .. 12)
{
	my $query = "SELECT id, v <-> (SELECT v FROM q WHERE qn = $qn) AS d FROM t ORDER BY v <-> (SELECT v FROM q WHERE qn = $qn) LIMIT 30";
	$exact_index .= $node->safe_psql('postgres', "SET imgsearch.method = 'lsh'; SET enable_seqscan = off; SET lsh.probes = 0; SET lsh.candidates = 0; " . topk_sql($query)) . "\n";
	$exact_sort .= $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; SET enable_indexscan = off; " . topk_sql($query)) . "\n";
}
is($exact_index, $exact_sort, 'exact answers of the index built on threads are the sort\'s');

# (3) a cancel while the threads compute: a wide table, so that k-means and hashing take seconds
$node->safe_psql('postgres', q{
	CREATE TABLE w (id int, v imgfeat(512));
	INSERT INTO w SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 512) WHERE i > 0) FROM generate_series(1, 40000) i;
	ALTER TABLE w SET (parallel_workers = 2);
});
my $log_offset = -s $node->logfile;
my ($rc, $out, $err) = $node->psql('postgres',
	"SET statement_timeout = '3s'; CREATE INDEX w_lsh ON w USING lsh (v) WITH (buckets = 1000, bits = 512);");
like($err, qr/canceling statement due to statement timeout/, 'a threaded build is canceled by statement_timeout');
ok($node->log_contains(qr/lsh index "w_lsh": training and hashing on/, $log_offset),
	'the cancel came while the threads computed (after the load)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_class WHERE relname = \'w_lsh\''), '0', 'the canceled index is gone');
$node->safe_psql('postgres', 'CREATE INDEX w_lsh ON w USING lsh (v) WITH (buckets = 20, bits = 32)');
ok(1, 'the server runs, and the next threaded build succeeds');
done_testing();
