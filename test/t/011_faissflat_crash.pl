# faissflat survives crashes:
# (1) pg_ctl stop -m immediate while clients insert: after recovery every
#     committed row is found by the index, which agrees with a sequential scan;
# (2) a crash between the WAL records of one insert (the vector is logged
#     before the slot that points at it): recovery stopped just before the
#     insert's last record leaves an index that ignores the partial vector and
#     reuses its slot.
# After each stage imgsearch_index_check must pass (the partial vector of (2)
# lies on pages past the store's slots, which the check allows).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init(allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	CREATE EXTENSION pageinspect;
	CREATE EXTENSION pg_walinspect;
	CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
	  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
	-- slots in use, read from the metapage: after the 24-byte page header come
	-- magic, version, then the store's dim, group_pages, ngroups, nslots
	-- (faissflat.h, index/store_layout.h)
	CREATE FUNCTION nslots(idx regclass) RETURNS bigint LANGUAGE sql AS $$
	  SELECT get_byte(p, 44) + (get_byte(p, 45) << 8) + (get_byte(p, 46) << 16) + (get_byte(p, 47)::bigint << 24)
	  FROM get_raw_page(idx::text, 0) p $$;
	SELECT setseed(0.5);
	CREATE TABLE f (id serial, v imgfeat(512));
	INSERT INTO f (v) SELECT rand_vec(512, i) FROM generate_series(1, 500) i;
	CREATE INDEX f_l2 ON f USING faissflat (v);
	CREATE TABLE probe AS SELECT n, rand_vec(512, n) AS q FROM generate_series(1, 3) n;
});

# Every row with a vector is in the index, and the top 30 of each probe agree
# with a sequential scan and sort.
sub check
{
	my ($n, $stage) = @_;
	my $via_index = $n->safe_psql('postgres', q{
		SET imgsearch.method = 'faissflat';
		SET enable_seqscan = off;
		SELECT string_agg(id::text, ',' ORDER BY id)
		FROM (SELECT id FROM f ORDER BY v <-> (SELECT q FROM probe WHERE n = 1)) s;
	});
	my $all = $n->safe_psql('postgres',
		q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f WHERE v IS NOT NULL});
	is($via_index, $all, "$stage: the index holds every committed row");
	my $top = q{
		SELECT n, (SELECT string_agg(id || ':' || d, ',')
		           FROM (SELECT id, v <-> q AS d FROM f ORDER BY v <-> q LIMIT 30) s)
		FROM probe ORDER BY n;
	};
	is($n->safe_psql('postgres', "SET imgsearch.method = 'faissflat'; SET enable_seqscan = off; $top"),
		$n->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $top"),
		"$stage: the index agrees with a sequential scan");
	# imgsearch_index_check: store invariants, every row once with its vector
	my ($ret, $out, $err) = $n->psql('postgres',
		q{SELECT heap_rows = (SELECT count(v) FROM f) FROM imgsearch_index_check('f_l2')});
	is("$ret:$out:$err", '0:t:', "$stage: imgsearch_index_check passes");
}

# (1) three clients insert, each row its own transaction, until the crash
my $script = $node->basedir . '/insert.sql';
append_to_file($script, "INSERT INTO f (v) SELECT rand_vec(512, 1);\n");
my ($out, $err) = ('', '');
my $pgbench = IPC::Run::start(
	[ 'pgbench', '-n', '-c', '3', '-T', '120', '-f', $script,
	  '-h', $node->host, '-p', $node->port, 'postgres' ],
	'>', \$out, '2>', \$err);
$node->poll_query_until('postgres', 'SELECT count(*) >= 1500 FROM f')
  or die 'the clients did not insert';
$node->stop('immediate');
$pgbench->kill_kill;
$node->start;
check($node, 'after a crash during inserts');
$node->safe_psql('postgres', 'INSERT INTO f (v) SELECT rand_vec(512, i) FROM generate_series(1, 100) i');
check($node, 'after inserts that follow the crash');

# (2) one insert, then recovery up to just before its last WAL record
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
check($pitr, 'after recovery into the middle of an insert');
$pitr->safe_psql('postgres', q{INSERT INTO f (id, v) VALUES (-2, (SELECT q FROM probe WHERE n = 3))});
is($pitr->safe_psql('postgres', q{SELECT nslots('f_l2')}), $slots + 1,
	'the next insert takes the slot');
is($pitr->safe_psql('postgres', q{
		SET imgsearch.method = 'faissflat';
		SELECT id FROM f ORDER BY v <-> (SELECT q FROM probe WHERE n = 3) LIMIT 1}), '-2',
	'and is found');
check($pitr, 'after an insert over the partial vector');

$pitr->stop;
$node->stop;
done_testing();
