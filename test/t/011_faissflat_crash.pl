# faissflat survives crashes (ImgsTest::crash_scenario):
# (1) pg_ctl stop -m immediate while clients insert: after recovery every
#     committed row is found by the index, which agrees with a sequential scan;
# (2) a crash between the WAL records of one insert (the vector is logged
#     before the slot that points at it): recovery stopped just before the
#     insert's last record leaves an index that ignores the partial vector and
#     reuses its slot;
# (3) pg_ctl stop -m immediate while clients insert, delete and VACUUM.
# After each stage imgsearch_index_check must pass (the partial vector of (2)
# lies on pages past the store's slots, which the check allows).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Test::More;
use ImgsTest;

# (2) one insert, then recovery up to just before its last WAL record
sub partial_insert
{
	my ($node, $check) = @_;
	$node->safe_psql('postgres', 'CHECKPOINT');
	$node->backup('before_insert');
	my $slots = $node->safe_psql('postgres', q{SELECT nslots('f_l2')});
	my $start = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	$node->safe_psql('postgres', q{INSERT INTO f (id, v) VALUES (-1, (SELECT q FROM probe WHERE n = 2))});
	my $end = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	# the index's records: Generic WAL on f_l2; the last one registers the metapage
	my $records = $node->safe_psql('postgres', qq{
		SELECT start_lsn, end_lsn, substring(block_ref from 'fork main blk (\\d+)')
		FROM pg_get_wal_records_info('$start', '$end')
		WHERE resource_manager = 'Generic'
		  AND block_ref LIKE '%/' || pg_relation_filenode('f_l2') || ' fork main blk %'
		ORDER BY start_lsn;
	});
	my @records = map { [ split /\|/ ] } split /\n/, $records;
	cmp_ok(scalar @records, '>=', 2, 'an insert writes its vector and its slot in separate records');
	my ($last_start) = @{ $records[-1] };
	my (undef, $vector_end, $vector_block) = @{ $records[-2] };
	is($records[-1][2], '0', 'the last record registers the metapage first');

	my $pitr = PostgreSQL::Test::Cluster->new('pitr');
	$pitr->init_from_backup($node, 'before_insert', has_streaming => 1);
	$pitr->append_conf('postgresql.conf', qq{
recovery_target_lsn = '$last_start'
recovery_target_inclusive = off
recovery_target_action = 'promote'
});
	$pitr->start;
	$pitr->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
	  or die 'recovery did not stop at the target';
	is($pitr->safe_psql('postgres',
			"SELECT (page_header(get_raw_page('f_l2', $vector_block))).lsn = '$vector_end'"), 't',
		'recovery replayed the vector of the insert');
	is($pitr->safe_psql('postgres', q{SELECT nslots('f_l2')}), $slots,
		'but not its slot: the partial vector is not in the index');
	$check->($pitr, 'after recovery into the middle of an insert');
	$pitr->safe_psql('postgres', q{INSERT INTO f (id, v) VALUES (-2, (SELECT q FROM probe WHERE n = 3))});
	is($pitr->safe_psql('postgres', q{SELECT nslots('f_l2')}), $slots + 1,
		'the next insert takes the slot');
	is($pitr->safe_psql('postgres', q{
			SET imgsearch.method = 'faissflat';
			SELECT id FROM f ORDER BY v <-> (SELECT q FROM probe WHERE n = 3) LIMIT 1}), '-2',
		'and is found');
	$check->($pitr, 'after an insert over the partial vector');
	$pitr->stop;
}

ImgsTest::crash_scenario(
	method => 'faissflat',
	streaming => 1,
	sql => q{
		CREATE EXTENSION pageinspect;
		CREATE EXTENSION pg_walinspect;
		CREATE FUNCTION rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
		  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)';
		-- slots in use, read from the metapage: after the 24-byte page header come
		-- magic, version, then the store's dim, group_pages, ngroups, nslots
		-- (faissflat.h, index/store_layout.h)
		CREATE FUNCTION nslots(idx regclass) RETURNS bigint LANGUAGE sql AS $$
		  SELECT get_byte(p, 44) + (get_byte(p, 45) << 8) + (get_byte(p, 46) << 16) + (get_byte(p, 47)::bigint << 24)
		  FROM get_raw_page(idx::text, 0) p $$;
	},
	dim => 512,
	vec => 'rand_vec(512)',
	indexes => [ [ '<->', 'f_l2', '(v)' ] ],
	after_inserts => \&partial_insert);
done_testing();
