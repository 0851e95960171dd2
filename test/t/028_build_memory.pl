# Index builds keep within maintenance_work_mem (docs/methods.md "Build
# memory"). lsh: the sample takes at most half of it, and the entries go
# through a sort that spills to disk past what is left. kdtree: the tree
# holds every row's projection, and a build where that cannot fit is
# refused right after the load.
# (1) Built in 1 MB, where the entries do not fit (the sort writes temporary
#     files), and in 1 GB, where they do (no temporary file), on a table the
#     sample holds whole in both: the two indexes are the same bytes, page
#     by page (the page LSN and checksum aside), the small one checks out
#     against the table and answers exactly (probes 0) as a sequential scan.
# (2) What cannot fit is refused at once with 54000, naming the memory
#     needed: explicit bits whose rotation exceeds the memory, and more
#     buckets than the memory holds, each with its hint.
# (3) kdtree on 60000 rows: refused in 1 MB (54000, the bytes a row in the
#     detail, the hint), built in 8 MB, where it checks out and answers
#     exactly as a sequential scan.
use strict;
use warnings;
use Test::More;
use PostgreSQL::Test::Utils;
use ImgsTest qw(topk_sql);

my $node = ImgsTest::new_node('lsh_memory',
	conf => [ 'log_min_messages = debug1', 'log_temp_files = 0' ]);
$node->safe_psql('postgres', q{
	CREATE EXTENSION pageinspect;
	SELECT setseed(0.28);
	CREATE TABLE centre AS SELECT j, c, 4 * random() - 2 AS m FROM generate_series(0, 39) j, generate_series(1, 4) c;
	CREATE TABLE t (id int PRIMARY KEY, v imgfeat(4));
	INSERT INTO t SELECT i, (SELECT array_agg((m + random() - 0.5)::real ORDER BY c) FROM centre WHERE j = i % 40)::imgfeat
	FROM generate_series(1, 25000) i;
	CREATE TABLE q AS SELECT i AS qn, (SELECT array_agg((m + 2 * random() - 1)::real ORDER BY c) FROM centre WHERE j = i % 40)::imgfeat AS v
	FROM generate_series(1, 8) i;
});

# (1) the same index in 1 MB and in 1 GB
my %sort_kb;
for my $build ([ 'i_small', '1MB' ], [ 'i_big', '1GB' ])
{
	my ($name, $mem) = @$build;
	my $log_offset = -s $node->logfile;
	$node->safe_psql('postgres', "SET maintenance_work_mem = '$mem'; CREATE INDEX $name ON t USING lsh (v);");
	my $log = slurp_file($node->logfile, $log_offset);
	($sort_kb{$name}) = $log =~ /lsh index "$name": \d+ bits, \d+ buckets; the sort of the entries has (\d+) kB/;
	ok(defined $sort_kb{$name}, "$name: the build says what its sort may hold");
	if ($name eq 'i_small')
	{
		cmp_ok($sort_kb{$name}, '<', 1024, 'in 1 MB the sort gets less than 1 MB');
		like($log, qr/temporary file: path/, 'in 1 MB the sort spills to disk');
	}
	else
	{
		unlike($log, qr/temporary file: path/, 'in 1 GB the sort stays in memory');
	}
}
# every page's bytes past pd_lsn and pd_checksum
my $pages_sql = q{SELECT string_agg(md5(substr(get_raw_page('%s', b::int), 11)), ',' ORDER BY b)
	FROM generate_series(0, pg_relation_size('%s') / 8192 - 1) b};
my $small = $node->safe_psql('postgres', sprintf($pages_sql, 'i_small', 'i_small'));
my $big = $node->safe_psql('postgres', sprintf($pages_sql, 'i_big', 'i_big'));
cmp_ok(scalar(split /,/, $small), '>', 10, 'the index has pages');
is($small, $big, 'built in 1 MB (sorted on disk) and in 1 GB (in memory): the same bytes on every page');
ImgsTest::index_check_ok($node, 'lsh', 'i_small', 't', 'the index built in 1 MB checks out against the table');

my ($exact_index, $exact_sort) = ('', '');
for my $qn (1 .. 8)
{
	my $query = "SELECT id, v <-> (SELECT v FROM q WHERE qn = $qn) AS d FROM t ORDER BY v <-> (SELECT v FROM q WHERE qn = $qn) LIMIT 30";
	$exact_index .= $node->safe_psql('postgres', "DROP INDEX IF EXISTS i_big; SET imgsearch.method = 'lsh'; SET enable_seqscan = off; "
		  . "SET lsh.probes = 0; SET lsh.candidates = 0; " . topk_sql($query)) . "\n";
	$exact_sort .= $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; SET enable_indexscan = off; " . topk_sql($query)) . "\n";
}
is($exact_index, $exact_sort, 'the index built in 1 MB answers exactly as a sequential scan and sort');

# (2) refused at once: a rotation larger than the memory, then too many buckets
$node->safe_psql('postgres', q{
	CREATE TABLE w (v imgfeat(512));
	INSERT INTO w SELECT (SELECT array_agg(random()::real) FROM generate_series(1, 512) WHERE i > 0) FROM generate_series(1, 100) i;
});
my ($rc, $out, $err) = $node->psql('postgres',
	"SET maintenance_work_mem = '1MB'; \\set VERBOSITY verbose\nCREATE INDEX ON w USING lsh (v) WITH (bits = 512);");
like($err, qr/54000: lsh index "w_v_idx" with 512 bits at 512 dimensions needs \d+ MB to build; maintenance_work_mem is 1 MB/,
	'512 bits at 512-d in 1 MB: 54000, naming the memory needed');
like($err, qr/HINT:\s+Raise maintenance_work_mem, or ask for fewer bits/, 'its hint');
($rc, $out, $err) = $node->psql('postgres',
	"SET maintenance_work_mem = '1MB'; \\set VERBOSITY verbose\nCREATE INDEX ON t USING lsh (v) WITH (buckets = 25000);");
like($err, qr/54000: lsh index "t_v_idx" at 4 dimensions needs \d+ MB to build; maintenance_work_mem is 1 MB/,
	'25000 buckets in 1 MB: 54000');
like($err, qr/HINT:\s+Raise maintenance_work_mem, or ask for fewer buckets/, 'its hint');
$node->safe_psql('postgres', "SET maintenance_work_mem = '64MB'; CREATE INDEX ON t USING lsh (v) WITH (buckets = 25000);");
ok(1, 'the same build succeeds in 64 MB');

# (3) kdtree
$node->safe_psql('postgres', q{
	CREATE TABLE k (id int PRIMARY KEY, v imgfeat(4));
	INSERT INTO k SELECT i, ARRAY[random(), random(), random(), random()]::real[]::imgfeat FROM generate_series(1, 60000) i;
});
($rc, $out, $err) = $node->psql('postgres',
	"SET maintenance_work_mem = '1MB'; \\set VERBOSITY verbose\nCREATE INDEX k_kd ON k USING kdtree (v);");
like($err, qr/54000: kdtree index "k_kd" on 60000 rows needs \d+ MB to build; maintenance_work_mem is 1 MB/,
	'kdtree on 60000 rows in 1 MB: 54000, naming the memory needed');
like($err, qr/DETAIL:\s+The build holds every row's projection on 4 dimensions, about \d+ bytes a row/, 'its detail');
like($err, qr/HINT:\s+Raise maintenance_work_mem, or project on fewer dimensions/, 'its hint');
$node->safe_psql('postgres', "SET maintenance_work_mem = '8MB'; CREATE INDEX k_kd ON k USING kdtree (v);");
ImgsTest::index_check_ok($node, 'kdtree', 'k_kd', 'k', 'kdtree built in 8 MB checks out against the table');
($exact_index, $exact_sort) = ('', '');
for my $qn (1 .. 4)
{
	my $q = "ARRAY[$qn * 0.2, 0.5, 0.3, 0.9]::real[]::imgfeat";
	my $query = "SELECT id, v <-> $q AS d FROM k ORDER BY v <-> $q LIMIT 30";
	$exact_index .= $node->safe_psql('postgres', "SET imgsearch.method = 'kdtree'; SET enable_seqscan = off; " . topk_sql($query)) . "\n";
	$exact_sort .= $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; SET enable_indexscan = off; " . topk_sql($query)) . "\n";
}
is($exact_index, $exact_sort, 'kdtree built in 8 MB answers exactly as a sequential scan and sort');
done_testing();

