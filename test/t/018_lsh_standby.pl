# lsh is fully WAL-logged: a streaming standby returns the same answers as
# the primary (the same rows in the same order, with the default budget and
# probing everything), and with lsh.probes = 0 and lsh.candidates = 0 the
# same as its own sequential scan and sort (argsort); after the build,
# inserts past the build, deletes, VACUUM, inserts into the slots VACUUM
# freed and a REINDEX, in new sessions and in one kept open since the build;
# imgsearch_index_check passes on the standby at every stage
# (ImgsTest::standby_scenario). Data: 4096-d clustered vectors (a vector
# spans pages and WAL records) and 24-d ones; small buckets make many of them.
use strict;
use warnings;
use Test::More;
use ImgsTest;

my $everything = 'SET lsh.probes = 0; SET lsh.candidates = 0;';
ImgsTest::standby_scenario(
	method => 'lsh',
	sql => q{
		-- clusters: 8 centres per dimension, each row a centre plus uniform noise
		CREATE TABLE centre AS
		SELECT d, j, c, 2 * random() - 1 AS m FROM (VALUES (24), (4096)) dd(d), generate_series(0, 7) j, generate_series(1, d) c;
		CREATE FUNCTION clu_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
		  'SELECT array_agg((m + random() - 0.5)::real ORDER BY c)::imgfeat FROM centre WHERE d = dim AND j = seed % 8';
	},
	big_vec => 'clu_vec(4096, i)',
	small_vec => 'clu_vec(24, i)',
	big_rows => [ 250, 400, 450 ],
	seeds => [ 0.31, 0.32, 0.33 ],
	indexes => [
		[ 'big', '<->', 'big_l2', '(v) WITH (bits = 256, buckets = 60)' ],
		[ 'big', '<=>', 'big_cos', '(v imgfeat_cosine_ops) WITH (bits = 64, buckets = 30)' ],
		[ 'small', '<#>', 'small_ip', '(v imgfeat_ip_ops) WITH (buckets = 300)' ],
		[ 'small', '<->', 'small_l2', '(v)' ] ],
	budgets => [
		[ 'the default budget', 'RESET lsh.probes; RESET lsh.candidates;' ],
		[ 'probing everything', $everything ] ],
	exact => $everything,
	reindex => [ 'big_l2', 'small_ip' ]);
done_testing();
