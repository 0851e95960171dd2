# kdtree survives crashes (ImgsTest::crash_scenario): pg_ctl stop -m immediate
# (1) while clients insert into a table with two kdtree indexes (L2, cosine);
# (2) while clients insert, delete and VACUUM.
# After each recovery every committed row is found by each index, the top 30
# of each probe agree with a sequential scan and sort, and
# imgsearch_index_check passes; likewise after inserts that follow the crash.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::crash_scenario(
	method => 'kdtree',
	sql => ImgsTest::spectrum_sql(512),    # vectors with a decaying spectrum
	dim => 512,
	vec => 'spec_vec()',
	indexes => [
		[ '<->', 'f_l2', '(v) WITH (dims = 16, leaf_size = 4)' ],
		[ '<=>', 'f_cos', '(v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 16)' ] ]);
done_testing();
