# lsh under concurrency (ImgsTest::concurrency_scenario): clients insert,
# update, delete and VACUUM while others search and run
# imgsearch_index_check (which must pass while rows come and go; some inserts
# fall far outside the data the hash was built on, in buckets the build left
# empty). Every search compares, in one REPEATABLE READ snapshot, the lsh
# index's top 10 with lsh.probes = 0 and lsh.candidates = 0 (exact) against a
# sequential scan's and fails on any difference; with a small budget
# (lsh.probes = 2, lsh.candidates = 5) the answer must be distinct rows in
# non-decreasing distance (how many: lsh_budget.sql). No client may fail, and
# at the end each index holds exactly the table's rows, its exact answers are
# the sort's, and after VACUUM it has no dead entries.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::concurrency_scenario(
	method => 'lsh',
	rand_vec => 'SELECT array_agg((random() - 0.5)::real)::imgfeat FROM generate_series(1, dim)',
	far_vec => 'SELECT array_agg((6 * random() - 3)::real)::imgfeat FROM generate_series(1, dim)',
	indexes => [
		[ '<->', 'f_l2', '(v) WITH (buckets = 250)' ],
		[ '<=>', 'f_cos', '(v imgfeat_cosine_ops) WITH (bits = 16, buckets = 500)' ],
		[ '<#>', 'f_ip', '(v imgfeat_ip_ops) WITH (buckets = 125)' ] ],
	far_ops => [ '<->', '<#>' ],
	exact => [ 'lsh.probes' => 0, 'lsh.candidates' => 0 ],
	budget => { settings => [ 'lsh.probes' => 2, 'lsh.candidates' => 5 ], rows_bad => 'count(*) NOT BETWEEN 1 AND 10' },
	weights => { insert => 4, insert_far => 2, delete => 1, update => 1, vacuum => 1, check => 1, search => 4 },
	transactions => 150,
	explain_op => '<#>');
done_testing();
