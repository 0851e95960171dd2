# The shared index base (src/index/index_meta.h, store_layout.h, vector_store.h):
# (1) an index whose metapage names another on-disk version is never read:
#     scan, insert and vacuum fail with 55000 and a hint to REINDEX, and
#     REINDEX mends it; a metapage of another method fails with XX002;
# (2) the metric is learned at build from the operator family: a scan by an
#     operator added to the family later is refused until REINDEX;
# (3) past 512 groups the store's directory spills into directory pages,
#     which sit between groups (groups no longer at fixed block numbers):
#     built, inserted and replayed on a standby, the index agrees with a
#     sequential scan;
# (4) pages a method allocates for itself (faissflat_test_reserve, a test
#     hook) between a group still filling and the next group: inserts fill the
#     first group's pages around them (the relation was extended over zeroed
#     pages), the next group starts after them, and the index, vacuumed and
#     reused, agrees with a sequential scan on the primary and a standby.
# After (3) and (4), imgsearch_index_check passes on the primary and the
# standby (t/014 patches the same layouts).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ImgsTest qw(topk_sql topk_by_probe_sql);

my $node = PostgreSQL::Test::Cluster->new('layout');
$node->init(allows_streaming => 1);
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	CREATE TABLE t (id int, v imgfeat(3));
	INSERT INTO t SELECT i, ARRAY[sin(i), cos(i), i % 7]::imgfeat FROM generate_series(1, 2000) i;
	CREATE INDEX t_l2 ON t USING faissflat (v);
});

# top-k answers are compared in ImgsTest::topk_sql's form (ties)
my $knn = q{SET imgsearch.method = 'faissflat'; SET enable_seqscan = off; }
  . topk_sql(q{SELECT id, v <-> '[0.5,0.5,3]' AS d FROM t ORDER BY v <-> '[0.5,0.5,3]' LIMIT 5});
my $expected = $node->safe_psql('postgres', $knn);

# Overwrites the 4-byte little-endian word at byte $offset of block 0's
# contents (after the 24-byte page header) of index $index, cluster stopped.
sub patch_metapage
{
	my ($index, $offset, $value) = @_;
	my $path = $node->data_dir . '/'
	  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('$index')");
	$node->stop;
	open(my $fh, '+<', $path) or die "open $path: $!";
	binmode $fh;
	seek($fh, 24 + $offset, 0) or die;
	print $fh pack('V', $value);
	close $fh;
	$node->start;
}

# (1) version 1 (groups at fixed blocks) is the layout before this one
patch_metapage('t_l2', 4, 1);
foreach my $case (
	[ 'scan', $knn ],
	[ 'insert', q{INSERT INTO t VALUES (0, '[1,2,3]')} ],
	[ 'vacuum', q{DELETE FROM t WHERE id = 1; VACUUM t} ])
{
	my ($name, $sql) = @$case;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	isnt($ret, 0, "$name of an index of another version fails");
	like($err, qr/ERROR:  55000: faissflat index "t_l2" has on-disk version 1, but this imgsearch reads only version \d+/,
		"$name: 55000, with the versions");
	like($err, qr/HINT:  REINDEX INDEX t_l2 rebuilds it/, "$name: the hint names REINDEX");
}
$node->safe_psql('postgres', 'REINDEX INDEX t_l2');
is($node->safe_psql('postgres', $knn), $expected, 'REINDEX mends it');

patch_metapage('t_l2', 0, 0x12345678);
my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$knn");
like($err, qr/ERROR:  XX002: index "t_l2" is not a faissflat index/, 'another magic: XX002');
$node->safe_psql('postgres', 'REINDEX INDEX t_l2');

# (2) the metric
$node->safe_psql('postgres', q{
	ALTER OPERATOR FAMILY imgfeat_l2_ops USING faissflat ADD OPERATOR 2 <=> (imgfeat, imgfeat) FOR ORDER BY float_ops});
my $cos_top = topk_sql(q{SELECT id, v <=> '[0.5,0.5,3]' AS d FROM t ORDER BY v <=> '[0.5,0.5,3]' LIMIT 5});
my $cos = "SET imgsearch.method = 'faissflat'; SET enable_seqscan = off; $cos_top";
($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$cos");
like($err, qr/ERROR:  55000: index "t_l2" was built for ORDER BY strategy 1, not 2/,
	'a scan by an operator the family did not have at build is refused');
$node->safe_psql('postgres', 'REINDEX INDEX t_l2');
is($node->safe_psql('postgres', $cos),
	$node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $cos_top"),
	'after REINDEX an index of a family of two operators serves both');
is($node->safe_psql('postgres', $knn), $expected, 'L2 too');
$node->safe_psql('postgres', q{
	ALTER OPERATOR FAMILY imgfeat_l2_ops USING faissflat DROP OPERATOR 2 (imgfeat, imgfeat)});

# (3) the directory: 512 groups of 680 slots fit in the metapage; one more
# group (built or inserted) takes a directory page. A standby replays it all.
$node->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'base', has_streaming => 1);
$standby->start;
# d_a is built at 512 groups and then grows by inserts; d_b is built on the
# same rows: both cross into a directory page, one by insert, one by build.
$node->safe_psql('postgres', q{
	CREATE TABLE d_a (id int, v imgfeat(2));
	INSERT INTO d_a SELECT i, ARRAY[sin(i), cos(i * 0.7)]::imgfeat FROM generate_series(1, 512 * 680) i;
	CREATE INDEX d_a_l2 ON d_a USING faissflat (v);
	INSERT INTO d_a SELECT i, ARRAY[sin(i), cos(i * 0.7)]::imgfeat FROM generate_series(512 * 680 + 1, 514 * 680 + 5) i;
	CREATE TABLE d_b AS SELECT * FROM d_a;
	CREATE INDEX d_b_l2 ON d_b USING faissflat (v);
	CREATE INDEX d_b_ip ON d_b USING faissflat (v imgfeat_ip_ops);
});
foreach my $t ('d_a', 'd_b')
{
	$node->safe_psql('postgres', qq{
		DELETE FROM $t WHERE id % 3 = 0;
		VACUUM (INDEX_CLEANUP ON) $t;
		INSERT INTO $t SELECT -i, ARRAY[cos(i), sin(i * 0.3)]::imgfeat FROM generate_series(1, 1000) i;
	});
}
$node->wait_for_catchup($standby);

sub top
{
	my ($n, $method, $t, $q) = @_;
	return $n->safe_psql('postgres', "SET imgsearch.method = '$method'; SET enable_seqscan = off; "
		  . topk_sql("SELECT id, v <-> '$q' AS d FROM $t ORDER BY v <-> '$q' LIMIT 20"));
}
foreach my $t ('d_a', 'd_b')
{
	foreach my $q ('[0.3,-0.2]', '[1,1]', '[-0.9,0.1]')
	{
		my $want = top($node, 'argsort', $t, $q);
		is(top($node, 'faissflat', $t, $q), $want, "$t agrees with a sequential scan for $q");
		is(top($standby, 'faissflat', $t, $q), $want, "$t on the standby agrees for $q");
	}
	my $rows = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
	foreach my $n ($node, $standby)
	{
		is($n->safe_psql('postgres', qq{SET imgsearch.method = 'faissflat'; SET enable_seqscan = off;
				SELECT count(*) FROM (SELECT id FROM $t ORDER BY v <-> '[0,0]') s}),
			$rows, "$t: the index returns every row on " . $n->name);
	}
}
# imgsearch_index_check walks the groups through the directory page, on both
foreach my $t ('d_a', 'd_b')
{
	foreach my $n ($node, $standby)
	{
		my ($ret, $out, $err) = $n->psql('postgres',
			qq{SELECT heap_rows = (SELECT count(v) FROM $t) FROM imgsearch_index_check('${t}_l2')});
		is("$ret:$out:$err", '0:t:', "$t: imgsearch_index_check passes on " . $n->name);
	}
}
# 514 groups + 5 slots: 515 groups of 2-d vectors (2 pages each), a directory page, the metapage
# (an inner-product index: the store alone; an L2 index adds its codes' pages, faissflat.h)
is($node->safe_psql('postgres', q{SELECT pg_relation_size('d_b_ip') / 8192}), 515 * 2 + 2,
	'the built index: 515 groups, one directory page, the metapage');

# (4) 4096-d: a group holds 2 MB of vectors, 128 slots of 16 kB (not 680:
# store_layout.h), 259 pages (1 + 128 * 16 kB / 8160 B, rounded up); 300
# rows take three groups, the last one partly filled. After the groups, the
# build writes faissflat's own pages (faissflat.h): the PCA (the mean and
# one row of 4096 floats per sample row, 300: fewer than 512 components;
# 2040 floats a page), the ranges (2 x 300 floats: one page) and the code
# list (340-byte entries, codes padded to 320 bytes, 23 a page: 300 entries
# fill 14 pages, the last with one); the reserved pages go after them.
my $group = 259;
my $pca_pages = int((4096 + 300 * 4096 + 2039) / 2040);
my $range_pages = 1;
my $built = 1 + 3 * $group + $pca_pages + $range_pages + 14;
$node->safe_psql('postgres', q{
	CREATE FUNCTION rand_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql AS
	  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim) WHERE seed IS NOT NULL';
	SELECT setseed(0.3);
	CREATE TABLE r (id int, v imgfeat(4096));
	INSERT INTO r SELECT i, rand_vec(4096, i) FROM generate_series(1, 300) i;
	CREATE INDEX r_l2 ON r USING faissflat (v);
	CREATE TABLE rq AS SELECT n, rand_vec(4096, n) AS q FROM generate_series(1, 2) n;
});
is($node->safe_psql('postgres', q{SELECT faissflat_test_reserve('r_l2', 5)}), $built,
	'reserved pages start after the groups and the pages of the codes');
is($node->safe_psql('postgres', q{SELECT pg_relation_size('r_l2') / 8192}), $built + 5,
	'and were written: the relation grew over the unwritten rest of the last group');
$node->safe_psql('postgres', q{
	INSERT INTO r SELECT i, rand_vec(4096, i) FROM generate_series(301, 1000) i});
# slots 300..999: groups 3 to 7 (group 7 at slot 896), and 30 code pages
# (slots 300..321 fill the 14th), one every 23 entries, the last (at slot
# 989) after group 7: every allocated block has been written up to it
is($node->safe_psql('postgres', q{SELECT pg_relation_size('r_l2') / 8192}), $built + 5 + 5 * $group + 30,
	'the later groups and code pages start after the reserved pages');
$node->safe_psql('postgres', q{
	DELETE FROM r WHERE id % 4 = 0;
	VACUUM (INDEX_CLEANUP ON) r;
	INSERT INTO r SELECT -i, rand_vec(4096, i) FROM generate_series(1, 100) i;
});
$node->wait_for_catchup($standby);
my $rtop = topk_by_probe_sql('rq', 'SELECT id, v <-> q AS d FROM r ORDER BY v <-> q LIMIT 30');
my $rwant = $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $rtop");
is($node->safe_psql('postgres', "SET imgsearch.method = 'faissflat'; SET enable_seqscan = off; $rtop"),
	$rwant, 'groups around method pages: the index agrees with a sequential scan');
is($standby->safe_psql('postgres', "SET imgsearch.method = 'faissflat'; SET enable_seqscan = off; $rtop"),
	$rwant, 'and on the standby');
is($node->safe_psql('postgres', q{SET imgsearch.method = 'faissflat'; SET enable_seqscan = off;
		SELECT count(*) FROM (SELECT id FROM r ORDER BY v <-> (SELECT q FROM rq WHERE n = 1)) s}),
	$node->safe_psql('postgres', 'SELECT count(*) FROM r'), 'every row through the index');
foreach my $n ($node, $standby)
{
	my ($ret, $out, $err) = $n->psql('postgres',
		q{SELECT heap_rows = (SELECT count(v) FROM r) FROM imgsearch_index_check('r_l2')});
	is("$ret:$out:$err", '0:t:', 'imgsearch_index_check passes with method pages between groups on ' . $n->name);
}

$standby->stop;
$node->stop;
done_testing();
