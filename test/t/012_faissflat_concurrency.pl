# faissflat under concurrency (ImgsTest::concurrency_scenario): clients
# insert, delete and VACUUM while others search and run imgsearch_index_check
# (which must pass while rows come and go). Every search compares, in one
# REPEATABLE READ snapshot, the index's top 10 with a sequential scan's and
# fails on any difference. No client may fail, and at the end the index holds
# exactly the table's rows.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::concurrency_scenario(
	method => 'faissflat',
	rand_vec => 'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)',
	indexes => [ [ '<->', 'f_l2', '(v)' ], [ '<=>', 'f_cos', '(v imgfeat_cosine_ops)' ] ],
	weights => { insert => 5, delete => 1, vacuum => 1, check => 1, search => 4 },
	transactions => 100);
done_testing();
