# Ingest on shards (docs/sharding.md#loading, sql/shard_ingest.sql): a
# coordinator over 2 shards (tools/shards.sh's SQL, web/db's schema), each
# shard with imgsearch preloaded (ingest and model workers) and its model.
# tools/load_dataset.py loads N images through the coordinator, as make demo
# does with IMGSEARCH_DEMO_SHARDS: it registers gallery.images on each shard,
# and each shard's workers fill its own rows while the progress comes from the
# coordinator's imgsearch_sharded_ingest_status. Then:
#  - every row on each shard has its feature; each shard's model workers
#    extracted exactly its own rows, and its ingest log counts them;
#  - the coordinator (track_functions = 'all') never called vgg16_features
#    during the load (and the counter does count: it shows the reference
#    extraction made on the coordinator afterwards);
#  - every feature equals vgg16_features(img) of the same image computed in a
#    backend of another server (the coordinator), bit for bit;
#  - imgsearch_sharded_search (auto, argsort, faissflat, kdtree; k = 5, N)
#    answers as a sequential scan on one node over those reference features
#    (ImgsTest::topk_sql: tie-tolerant);
#  - imgsearch_sharded_ingest_status equals the sum of the shards' own
#    imgsearch_ingest_status rows; an undecodable image inserted through the
#    coordinator fails on its shard, and the summed status says failed 1 and
#    the error with that shard's server name;
#  - bad input: not a partitioned table (42809), NULL (22004), a shard where
#    the table is not registered (55000, naming the server);
#  - imgsearch_ingest_start refuses the coordinator's table (42809), and fills
#    a partitioned table on a shard row by row (rows of two partitions at the
#    same ctid each get their own feature).
use strict;
use warnings;
use File::Copy qw(copy);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use ImgsTest qw(topk_sql);

my $data = $ENV{IMGSEARCH_TEST_DATA} or plan skip_all => 'IMGSEARCH_TEST_DATA is not set (run test/check.sh)';
my $src = $ENV{IMGSEARCH_SRC} or plan skip_all => 'IMGSEARCH_SRC is not set (run test/check.sh)';
my $n_rows = $ENV{IMGSEARCH_SHARD_INGEST_ROWS} || 40;
my $model = "$data/vgg16_pool.pt";
my $test_start = time;

my @shards;
for my $name (qw(shard0 shard1))
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
lc_messages = 'C'
jit = off
shared_preload_libraries = 'imgsearch'
imgsearch.model_workers = 1
imgsearch.threads = 1
imgsearch.model = '$model'
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION imgsearch;' . slurp_file("$src/web/db/schema.sql") . q{
		-- images the model workers extracted (since the server started)
		CREATE FUNCTION served() RETURNS bigint LANGUAGE sql
		AS $$ SELECT coalesce(sum(served), 0)::bigint FROM imgsearch_model_workers() $$;
	});
	push @shards, $node;
}
my $coord = PostgreSQL::Test::Cluster->new('coord');
$coord->init;
$coord->append_conf('postgresql.conf', qq{
lc_messages = 'C'
jit = off
track_functions = 'all'
});
$coord->start;
my $user = $coord->safe_psql('postgres', 'SELECT current_user');
my ($coord_sql, $err) = run_command([ 'env', 'IMGSEARCH_SHARDS_DB=postgres', "IMGSEARCH_SHARDS_USER=$user",
	'bash', "$src/tools/shards.sh", 'sql', map { $_->host . ':' . $_->port } @shards ]);
like($coord_sql, qr/PARTITION OF gallery\.images/, 'tools/shards.sh sql: the coordinator\'s SQL') or diag $err;
$coord->safe_psql('postgres', 'CREATE EXTENSION imgsearch;' . $coord_sql);

sub coord { return $coord->safe_psql('postgres', $_[0]); }
# The SQLSTATE and message of the error of $q on the coordinator
sub coord_error
{
	my ($ret, $out, $err) = $coord->psql('postgres', "\\set VERBOSITY verbose\n$_[0]");
	return $err =~ /ERROR:  ([0-9A-Z]{5}): (.*)/ ? "$1: $2" : "no error ($ret): $out $err";
}
# pending|done|failed|images of the last minute|stale, summed over the shards' own status rows
sub shards_status
{
	my @sum = (0, 0, 0, 0, 0);
	for my $shard (@shards)
	{
		my @row = split /\|/, $shard->safe_psql('postgres', q{
			SELECT pending, done, failed, round(images_per_second * 60), stale FROM imgsearch_ingest_status
			 WHERE relid = 'gallery.images'::regclass});
		die $shard->name . ': gallery.images is not registered' unless @row == 5;
		$sum[$_] += $row[$_] for 0 .. 4;
	}
	return join '|', @sum;
}
# images_per_second is the images of the last minute / 60: compared as those images
my $summed_sql = q{SELECT pending || '|' || done || '|' || failed || '|' || round(images_per_second * 60) || '|' || stale
	FROM imgsearch_sharded_ingest_status('gallery.images')};

# --- a dataset of N images (the fixtures in turn), as build_dataset.py makes --------
my @files = qw(exact.png gray.jpg gray.png palette.png progressive.jpg rgb.jpg rotated3.png rotated6.jpg small.png);
my $dir = PostgreSQL::Test::Utils::tempdir;
mkdir "$dir/images" or die;
mkdir "$dir/queries" or die;
my %file_of;    # id -> fixture
open my $manifest, '>', "$dir/manifest.tsv" or die;
print $manifest "id\tname\tgroup\twidth\theight\n";
for my $id (1 .. $n_rows)
{
	my $file = $files[ $id % @files ];
	$file_of{$id} = $file;
	copy("$data/images/$file", "$dir/images/$id-$file") or die "copy $file: $!";
	print $manifest "$id\t$id-$file\t$file\t100\t100\n";
}
close $manifest;
open my $queries, '>', "$dir/queries.tsv" or die;
print $queries "name\tgroup\tx\ty\twidth\theight\n";
close $queries;

# --- the load ----------------------------------------------------------------------
my $t0 = time;
my ($out, $load_err);
{
	local $ENV{PGHOST} = $coord->host;
	local $ENV{PGPORT} = $coord->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGUSER} = $user;
	($out, $load_err) = run_command([ '/usr/bin/python3', "$src/tools/load_dataset.py", $dir, '--model', $model ]);
}
diag(sprintf('load of %d images through the coordinator: %.1f s', $n_rows, time - $t0));
like($out, qr/a coordinator over 2 shards/, 'load_dataset.py sees a coordinator over 2 shards');
like($out, qr/load_dataset: done/, 'load_dataset.py completes') or diag "$out\n$load_err";
# the progress bar read imgsearch_sharded_ingest_status, which made these
is(coord(q{SELECT string_agg(c.relname || ':' || s.srvname, ' ' ORDER BY c.relname)
	FROM pg_class c JOIN pg_foreign_table f ON f.ftrelid = c.oid JOIN pg_foreign_server s ON s.oid = f.ftserver
	WHERE c.relname LIKE '%ingest_status'}),
	'images_0_ingest_status:shard0 images_1_ingest_status:shard1',
	'the loader\'s progress came from the coordinator\'s summed status: a foreign table per leaf on its server');

my %rows;    # shard name -> its rows
for my $shard (@shards)
{
	my $name = $shard->name;
	my ($count, $with_feat) = split /\|/, $shard->safe_psql('postgres', 'SELECT count(*), count(feat) FROM gallery.images');
	$rows{$name} = $count;
	cmp_ok($count, '>', 0, "$name holds rows");
	is($with_feat, $count, "$name: every row has its feature");
	is($shard->safe_psql('postgres', q{SELECT count(*) FROM imgsearch_ingest WHERE relid = 'gallery.images'::regclass}),
		1, "$name: gallery.images is registered there");
	is($shard->safe_psql('postgres', 'SELECT served()'), $count,
		"$name: its model workers extracted exactly its own $count rows");
	is($shard->safe_psql('postgres', q{SELECT sum(images) FROM imgsearch_ingest_log WHERE relid = 'gallery.images'::regclass}),
		$count, "$name: its ingest worker logged its own rows");
}
is($rows{shard0} + $rows{shard1}, $n_rows, "the shards hold the $n_rows rows between them");

# The coordinator: its sessions of the load have ended (their function
# statistics are flushed at exit), and none called vgg16_features.
ok($coord->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()}),
	'the loader\'s sessions on the coordinator have ended');
my $calls_sql = q{SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'vgg16_features'};
is(coord($calls_sql), 0, 'the coordinator never called vgg16_features during the load (track_functions)');

# --- the reference: each image's feature in a backend of the coordinator -------------
coord(qq{
	SET imgsearch.model = '$model';
	CREATE TABLE ref_files (file text PRIMARY KEY, f imgfeat);
	INSERT INTO ref_files SELECT file, vgg16_features(pg_read_binary_file('$data/images/' || file))
	  FROM unnest('{@{[ join ',', @files ]}}'::text[]) file;
	CREATE TABLE single (id bigint PRIMARY KEY, feat imgfeat);
	INSERT INTO single SELECT id, f FROM ref_files JOIN (VALUES @{[ join ', ', map { "($_, '$file_of{$_}')" } sort { $a <=> $b } keys %file_of ]}) v(id, file) USING (file);
});
ok($coord->poll_query_until('postgres', "SELECT ($calls_sql) >= " . scalar(@files)),
	'the counter does count: the reference extraction on the coordinator shows');

my $hashes = 'SELECT string_agg(id || \':\' || md5(imgfeat_send(feat)), \',\' ORDER BY id) FROM ';
my %got;
for my $shard (@shards)
{
	my $list = $shard->safe_psql('postgres', $hashes . 'gallery.images');
	$got{$1} = $2 while $list =~ /(\d+):(\w+)/g;
}
my $want = coord($hashes . 'single');
is(join(',', map { "$_:$got{$_}" } sort { $a <=> $b } keys %got), $want,
	'every feature on the shards equals vgg16_features(img) computed on another server, bit for bit');

# --- searches equal one node's sequential scan ---------------------------------------
for my $qfile ('rgb.jpg', 'small.png')
{
	my $q = "(SELECT f FROM ref_files WHERE file = '$qfile')";
	for my $k (5, $n_rows)
	{
		my $one = coord('SET enable_indexscan = off; ' . topk_sql(
			"SELECT id, (feat <-> $q)::float8 AS d FROM single ORDER BY feat <-> $q, id LIMIT $k"));
		is(scalar(() = $one =~ /:/g), $k, "$qfile, k = $k: one node answers k rows");
		for my $method (qw(auto argsort faissflat kdtree))
		{
			is(coord(topk_sql("SELECT s.id, s.distance AS d FROM imgsearch_sharded_search('gallery.images', $q, $k, '<->', '$method')
			                   WITH ORDINALITY AS s(id, distance, ord) ORDER BY s.ord")),
				$one, "$qfile, k = $k, $method: imgsearch_sharded_search answers as one node's sequential scan");
		}
	}
}

# --- ingest of a partitioned table (on a shard) ------------------------------------------
# A row of each partition at the same ctid: each gets its own image's feature.
# And a coordinator's table is refused: its shards extract, not it.
$shards[0]->safe_psql('postgres', qq{
	CREATE TABLE parted (id int PRIMARY KEY, img bytea, feat imgfeat(512)) PARTITION BY LIST (id);
	CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
	CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
	INSERT INTO parted VALUES (1, pg_read_binary_file('$data/images/gray.jpg')),
	                          (2, pg_read_binary_file('$data/images/small.png'));
	SELECT imgsearch_ingest_start('parted', image => 'img', feature => 'feat');
});
ok($shards[0]->poll_query_until('postgres', q{SELECT pending = 0 FROM imgsearch_ingest_status WHERE relid = 'parted'::regclass}),
	'a partitioned table registered on a shard is filled');
is($shards[0]->safe_psql('postgres', $hashes . 'parted'),
	coord(q{SELECT '1:' || md5(imgfeat_send(a.f)) || ',2:' || md5(imgfeat_send(b.f))
	        FROM ref_files a, ref_files b WHERE a.file = 'gray.jpg' AND b.file = 'small.png'}),
	'... each partition\'s row with its own image\'s feature (rows at the same ctid in two partitions)');
like(coord_error(q{SELECT imgsearch_ingest_start('gallery.images', image => 'img', feature => 'feat')}),
	qr/^42809: "gallery.images" has foreign partitions/, 'imgsearch_ingest_start on the coordinator\'s table: 42809');

# --- the summed status ------------------------------------------------------------------
# Read the shards before and after the coordinator (a batch may leave the
# rate's minute meanwhile): compared when the two readings of the shards
# agree. images/s (float8, printed differently by perl) to 1e-9.
sub summed_equals_shards
{
	for (1 .. 5)
	{
		my $before = shards_status();
		my $summed = coord($summed_sql);
		next unless shards_status() eq $before;
		my @s = split /\|/, $summed;
		my @w = split /\|/, $before;
		return ($summed, $summed) if @s == 4 && "@s[0..2]" eq "@w[0..2]" && abs($s[3] - $w[3]) <= 1e-9 * (1 + abs($w[3]));
		return ($summed, $before);
	}
	return ('unstable', '');
}
my ($summed, $sum) = summed_equals_shards();
is($summed, $sum, 'imgsearch_sharded_ingest_status: pending|done|failed|images/s, the sum of the shards\' own rows');
like($summed, qr/^0\|$n_rows\|0\|/, "... pending 0, done $n_rows, failed 0");
is(coord(q{SELECT relid::text || '|' || eta || '|' || (last_error IS NULL) FROM imgsearch_sharded_ingest_status('gallery.images')}),
	'gallery.images|00:00:00|true', '... relid the parent, eta 0, no error');

# An undecodable image through the coordinator: it fails on its shard.
my $bad_id = $n_rows + 1;
coord(qq{INSERT INTO gallery.images (id, name, grp, width, height, img, thumb)
	VALUES ($bad_id, 'bad.png', 'bad', 1, 1, pg_read_binary_file('$data/bad/truncated.png'), '\\x00')});
my ($bad_shard) = grep { $_->safe_psql('postgres', "SELECT count(*) FROM gallery.images WHERE id = $bad_id") == 1 } @shards;
my $bad_server = $bad_shard->name;    # shard0 is server shard0 (tools/shards.sh: in the order given)
ok($coord->poll_query_until('postgres',
	q{SELECT pending = 0 AND failed = 1 FROM imgsearch_sharded_ingest_status('gallery.images')}),
	'the summed status: the bad image failed');
($summed, $sum) = summed_equals_shards();
is($summed, $sum, '... the sum of the shards\' own rows');
like($summed, qr/^0\|$n_rows\|1\|/, "... pending 0, done $n_rows, failed 1");
is(coord(q{SELECT last_error FROM imgsearch_sharded_ingest_status('gallery.images')}),
	"$bad_server: " . $bad_shard->safe_psql('postgres',
		q{SELECT last_error FROM imgsearch_ingest_status WHERE relid = 'gallery.images'::regclass}),
	'... last_error is its shard\'s, with the server\'s name');
like(coord(q{SELECT last_error FROM imgsearch_sharded_ingest_status('gallery.images')}),
	qr/^$bad_server: 22P03: /, '... 22P03');

# --- bad input ----------------------------------------------------------------------------
like(coord_error(q{SELECT * FROM imgsearch_sharded_ingest_status('gallery.queries')}),
	qr/^42809: "gallery.queries" is not a partitioned table/, 'a plain table: 42809');
like(coord_error(q{SELECT * FROM imgsearch_sharded_ingest_status('gallery.images_0')}),
	qr/^42809: /, 'a leaf: 42809');
like(coord_error(q{SELECT * FROM imgsearch_sharded_ingest_status(NULL)}), qr/^22004: /, 'NULL: 22004');
coord(q{CREATE TABLE local_parts (id bigint) PARTITION BY HASH (id);
	CREATE TABLE local_parts_0 PARTITION OF local_parts FOR VALUES WITH (MODULUS 1, REMAINDER 0);});
like(coord_error(q{SELECT * FROM imgsearch_sharded_ingest_status('local_parts')}),
	qr/^42809: partition public.local_parts_0 of public.local_parts is not a postgres_fdw foreign table/,
	'a partition that is not a foreign table: 42809');
$shards[1]->safe_psql('postgres', q{SELECT imgsearch_ingest_stop('gallery.images')});
like(coord_error(q{SELECT * FROM imgsearch_sharded_ingest_status('gallery.images')}),
	qr/^55000: not registered for ingest on its shard: gallery.images on server shard1$/,
	'a shard where the table is not registered: 55000, naming the server');

diag(sprintf('the whole test: %.0f s', time - $test_start));
$_->stop for @shards, $coord;
done_testing();
