# kdtree is fully WAL-logged: a streaming standby returns the same answers as
# the primary, and the same as its own sequential scan and sort (argsort),
# after the build, inserts past the build, deletes, VACUUM, inserts after
# VACUUM and a REINDEX, in new sessions and in one kept open since the build;
# imgsearch_index_check passes on the standby at every stage
# (ImgsTest::standby_scenario). Data: 4096-d vectors with a decaying
# spectrum (a vector spans pages and WAL records) and 24-d uniform random
# ones; small reloptions make the trees deep.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::standby_scenario(
	method => 'kdtree',
	sql => q{
		CREATE FUNCTION rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
		  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)';
	} . ImgsTest::spectrum_sql(4096),
	big_vec => 'spec_vec()',
	small_vec => 'rand_vec(24)',
	big_rows => [ 300, 450, 500 ],
	seeds => [ 0.21, 0.22, 0.23 ],
	indexes => [
		[ 'big', '<->', 'big_l2', '(v) WITH (dims = 16, leaf_size = 4)' ],
		[ 'big', '<=>', 'big_cos', '(v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 8)' ],
		[ 'small', '<=>', 'small_cos', '(v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 4)' ],
		[ 'small', '<->', 'small_l2', '(v)' ] ],
	reindex => [ 'big_l2', 'small_cos' ]);
done_testing();
