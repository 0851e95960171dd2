# lsh survives crashes (ImgsTest::crash_scenario): pg_ctl stop -m immediate
# (1) while clients insert into a table with three lsh indexes (L2, cosine,
#     inner product);
# (2) while clients insert, delete and VACUUM.
# After each recovery, with lsh.probes = 0 and lsh.candidates = 0 (exact),
# every committed row is found by each index and the top 30 of each probe are
# a sequential scan and sort's; with the default budget the top 30 are 30
# distinct rows in non-decreasing distance; imgsearch_index_check passes.
# Likewise after VACUUM and inserts that follow the crash.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::crash_scenario(
	method => 'lsh',
	sql => q{
		-- clusters: 10 centres, each row a centre plus uniform noise
		CREATE TABLE centre AS SELECT j, c, 2 * random() - 1 AS m FROM generate_series(0, 9) j, generate_series(1, 256) c;
		CREATE FUNCTION clu_vec() RETURNS imgfeat LANGUAGE plpgsql VOLATILE AS $$
		DECLARE
			pick int := floor(random() * 10);
		BEGIN
			RETURN (SELECT array_agg((m + random() - 0.5)::real ORDER BY c) FROM centre WHERE j = pick)::imgfeat;
		END $$;
	},
	dim => 256,
	vec => 'clu_vec()',
	indexes => [
		[ '<->', 'f_l2', '(v) WITH (buckets = 100)' ],
		[ '<=>', 'f_cos', '(v imgfeat_cosine_ops) WITH (bits = 32, buckets = 30)' ],
		[ '<#>', 'f_ip', '(v imgfeat_ip_ops) WITH (buckets = 60)' ] ],
	exact => 'SET lsh.probes = 0; SET lsh.candidates = 0;');
done_testing();
