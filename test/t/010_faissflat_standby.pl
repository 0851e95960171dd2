# faissflat is fully WAL-logged: a streaming standby returns the same answers
# as the primary, and the same as its own sequential scan, after the build
# (log_newpage_range), inserts (Generic WAL; a 4096-d vector spans pages and
# WAL records), deletes, VACUUM (free list), inserts into the freed slots and
# a REINDEX (ImgsTest::standby_scenario). 4096-d: 128 slots (2 MB) per
# group, so big has several groups (index/store_layout.h); 24-d: small has
# 680 slots per group, several groups too. The L2 and cosine indexes have
# codes (faissflat.h): their scans filter and refine.
use strict;
use warnings;
use Test::More;
use ImgsTest;

ImgsTest::standby_scenario(
	method => 'faissflat',
	sql => q{
		CREATE FUNCTION rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
		  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)';
	},
	big_vec => 'rand_vec(4096)',
	small_vec => 'rand_vec(24)',
	big_rows => [ 500, 800, 900 ],
	seeds => [ 0.11, 0.12, 0.13 ],
	indexes => [
		[ 'big', '<->', 'big_l2', '(v)' ],
		[ 'big', '<#>', 'big_ip', '(v imgfeat_ip_ops)' ],
		[ 'small', '<=>', 'small_cos', '(v imgfeat_cosine_ops)' ] ],
	# the store alone: an L2 index also appends the new rows' code entries
	reuse_slots => 'big_ip',
	reindex => [ 'big_l2', 'small_cos' ]);
done_testing();
