# kdtree under concurrency (ImgsTest::concurrency_scenario): clients insert,
# delete and VACUUM while others search and run imgsearch_index_check (which
# must pass while rows come and go; some inserts fall outside the build's
# boxes, growing the leaves' boxes while others search). Every search
# compares, in one REPEATABLE READ snapshot, the kdtree index's top 10 with a
# sequential scan's and fails on any difference; with kdtree.max_leaves = 2
# the answer must be distinct rows in non-decreasing distance (how many:
# kdtree_budget.sql). No client may fail, and at the end each index holds
# exactly the table's rows.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::concurrency_scenario(
	method => 'kdtree',
	rand_vec => 'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)',
	# outside the build's cube
	far_vec => 'SELECT array_agg((3 * random() - 1)::real)::imgfeat FROM generate_series(1, dim)',
	indexes => [
		[ '<->', 'f_l2', '(v) WITH (dims = 8, leaf_size = 8)' ],
		[ '<=>', 'f_cos', '(v imgfeat_cosine_ops) WITH (dims = 16, leaf_size = 4)' ] ],
	far_ops => [ '<->', '<=>' ],
	budget => { settings => [ 'kdtree.max_leaves' => 2 ], rows_bad => 'count(*) > 10' },
	weights => { insert => 4, insert_far => 2, delete => 1, vacuum => 1, check => 1, search => 4 },
	transactions => 200,
	explain_op => '<->');
done_testing();
