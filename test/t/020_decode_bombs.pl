# vgg16_features under hostile input, in a cluster of its own so that a
# failure cannot take the shared test cluster down:
#  - decompression bombs (test/model/fixtures.py bomb_images: TIFF tiles,
#    strips, 16-bit samples, 100000 pages; PNG, JPEG, WebP, BMP headers) are
#    refused with their SQLSTATE, the server stays up, and the backend's peak
#    memory (VmHWM) stays within a stated bound;
#  - truncated images of every format raise 22P03;
#  - no decoder writes to the server log (every line of it is the server's);
#  - a model that throws gives a clear SQLSTATE and one-line messages;
#  - statement_timeout stops a batch within about one image's work;
#  - a non-superuser cannot raise imgsearch.threads above the core count.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $data = $ENV{IMGSEARCH_TEST_DATA} or plan skip_all => 'IMGSEARCH_TEST_DATA is not set (run test/check.sh)';

my $node = PostgreSQL::Test::Cluster->new('decode_bombs');
$node->init;
$node->append_conf('postgresql.conf', qq{
lc_messages = 'C'
imgsearch.model = '$data/vgg16_pool.pt'
});
$node->start;
$node->safe_psql('postgres', qq{
	CREATE EXTENSION imgsearch;
	CREATE TABLE files (dir text, name text, b bytea);
	INSERT INTO files SELECT d, name, pg_read_binary_file('$data/' || d || '/' || name)
	FROM unnest(ARRAY['bombs', 'truncated', 'images', 'bad']) d, pg_ls_dir('$data/' || d) name
	WHERE name NOT LIKE '%.pt';
	CREATE FUNCTION peak_kb() RETURNS bigint LANGUAGE sql
	AS \$\$ SELECT substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'VmHWM:\\s+(\\d+)')::bigint \$\$;
	-- SQLSTATE, message and detail of one call; 'ok' if it succeeds
	CREATE FUNCTION try_features(img bytea, OUT state text, OUT message text, OUT detail text)
	LANGUAGE plpgsql AS \$\$
	BEGIN
		PERFORM vgg16_features(img);
		state := 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
	END \$\$;
});
my $log_start = -s $node->logfile;

# --- bombs ----------------------------------------------------------------
# Each bomb, its SQLSTATE, and how far the backend's peak memory rose over
# a warmed-up backend (model loaded, one image run). jpeg_base.jpg is a
# 7000x7000 baseline JPEG: within both limits at their defaults, it decodes
# (150 MB, under imgsearch.max_decode_memory's 256 MB), and is refused under
# a smaller budget.
my %expect = (
	'tiff_tile.tif' => '54000',    # 1x1, 16368x16368 tiles: 1.07 GB RGBA tile buffer
	'tiff_tile16.tif' => '54000',  # 16-bit RGBA samples, 8192x8192 tiles
	'tiff_strip.tif' => '54000',   # 64x1, 3.9M rows per strip
	'tiff_strip16.tif' => '54000', # 32x1, 16-bit RGBA, 3.9M rows per strip
	'tiff_pages.tif' => 'ok',      # a 1x1 first page, then 100000 directories
	'tiff_huge.tif' => '54000',    # 60000x60000
	'png_huge.png' => '54000',     # 30000x30000
	'png_wide16.png' => '54000',   # 40000000x1, 16-bit RGBA: libpng row buffers
	'png_tall16.png' => '22P03',   # 7000x7000 16-bit RGBA, no image data
	'png_elongated.png' => '54000', # 1x900000, valid: too elongated to resize in time
	'jpeg_huge.jpg' => '54000',    # 65000x65000
	'jpeg_prog.jpg' => '54000',    # 7000x7000 progressive: 290 MB of coefficients
	'webp_huge.webp' => '54000',   # 16384x16384
	'bmp_huge.bmp' => '22P03',     # 30000x30000 with 46 bytes of pixels
);
my $bound_mb = 60;
my $out = $node->safe_psql('postgres', q{
	SELECT try_features(b) FROM files WHERE dir = 'images' AND name = 'small.png';
	SELECT peak_kb() AS base \gset
	SELECT name || '|' || (try_features(b)).state || '|' || (peak_kb() - :base) / 1024
	FROM files WHERE dir = 'bombs' AND name <> 'jpeg_base.jpg' ORDER BY name;
});
my @rows = split /\n/, $out;
shift @rows;    # the warm-up row
is(scalar(@rows), scalar(keys %expect), 'every bomb was tried');
for my $row (@rows) {
	my ($name, $state, $grew_mb) = split /\|/, $row;
	is($state, $expect{$name}, "$name: SQLSTATE $expect{$name}");
	cmp_ok($grew_mb, '<', $bound_mb, "$name: peak memory rose less than $bound_mb MB (rose $grew_mb MB)");
}
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up after the bombs');

$out = $node->safe_psql('postgres', q{
	SELECT try_features(b) FROM files WHERE dir = 'images' AND name = 'small.png';
	SELECT peak_kb() AS base \gset
	SET imgsearch.max_decode_memory = '64MB';
	SELECT (try_features(b)).state || '|' || (peak_kb() - :base) / 1024 FROM files WHERE name = 'jpeg_base.jpg';
	RESET imgsearch.max_decode_memory;
	SELECT (try_features(b)).state || '|' || (peak_kb() - :base) / 1024 FROM files WHERE name = 'jpeg_base.jpg';
});
my (undef, $small_budget, $default_budget) = split /\n/, $out;
like($small_budget, qr/^54000\|/, '7000x7000 JPEG refused under max_decode_memory = 64MB');
cmp_ok((split /\|/, $small_budget)[1], '<', $bound_mb, '... before decoding');
like($default_budget, qr/^ok\|/, '7000x7000 JPEG decodes under the default budget');
cmp_ok((split /\|/, $default_budget)[1], '<', 256 + $bound_mb, '... within the budget (256 MB) plus slack');

# --- truncated images -----------------------------------------------------
$out = $node->safe_psql('postgres', q{
	SELECT count(*) || '|' || count(*) FILTER (WHERE (try_features(b)).state = '22P03') || '|' ||
	       coalesce(string_agg(name, ' ') FILTER (WHERE (try_features(b)).state <> '22P03'), '')
	FROM files WHERE dir = 'truncated';
});
my ($total, $refused, $decoded) = split /\|/, $out, 3;
cmp_ok($total, '>=', 90, "truncated images: $total of them");
is($refused, $total, 'every truncated image raises 22P03') or diag("not 22P03: $decoded");
is($node->safe_psql('postgres', q{SELECT (try_features(b)).state FROM files WHERE name = 'rgb.jpg'}),
	'ok', 'a good image still decodes');

# --- decoders never write to the server log -------------------------------
# Bad input makes libjpeg, libpng, libtiff and OpenCV talk; every line of the
# log must still be the server's own (log_line_prefix starts with the time),
# or a continuation line of one (a tab).
$node->safe_psql('postgres', q{SELECT try_features(b) FROM files WHERE dir IN ('bad', 'bombs', 'truncated')});
my $log = slurp_file($node->logfile, $log_start);
my @foreign = grep { !/^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|\t)/ } split /\n/, $log;
is(scalar(@foreign), 0, 'no decoder output in the server log')
  or diag(join("\n", @foreign[0 .. ($#foreign < 9 ? $#foreign : 9)]));
$node->psql('postgres', q{SELECT vgg16_features(b) FROM files WHERE dir = 'bad' AND name = 'truncated.png'});
like(slurp_file($node->logfile, $log_start), qr/ERROR:  truncated or corrupt PNG image/,
	'(the log does hold errors: the check reads the right file)');

# --- a model that throws --------------------------------------------------
for my $case (['raises.pt', '38000', qr/RuntimeError: imgsearch test model: refusing this image/],
	['raises_at_load.pt', '22023', qr/ValueError: imgsearch test model: refusing every input/])
{
	my ($file, $state, $detail_re) = @$case;
	$out = $node->safe_psql('postgres', qq{
		SET imgsearch.model = '$data/bad/$file';
		SELECT state || '|' || message || '|' || detail FROM files, try_features(b) WHERE name = 'small.png';
	});
	my ($got_state, $message, $detail) = split /\|/, $out, 3;
	is($got_state, $state, "$file: SQLSTATE $state");
	unlike($message, qr/\n/, "$file: one-line message ($message)");
	like($detail, $detail_re, "$file: the model's exception as detail");
	unlike($detail, qr/\n/, "$file: one-line detail");
}

# --- cancellation ---------------------------------------------------------
# A batch of 12 images under statement_timeout = 500ms must stop within about
# one image's work after the timeout: 1.5 times one image's time (measured
# just before, in the same backend) plus 0.3 s. The model is test/model's
# slow.pt (about 0.45 s an image on 2 cores), so that a forward pass of 4
# images, as before, overshoots by up to 4 images' time and fails this.
$out = $node->safe_psql('postgres', qq{
	SET imgsearch.model = '$data/bad/slow.pt';
	SELECT count(*) FROM files, try_features(b) WHERE name = 'small.png';
	CREATE TEMP TABLE batch AS
	SELECT array_agg(b ORDER BY name) AS imgs FROM (
		SELECT b, name FROM files WHERE dir = 'images' AND name <> 'large.jpg' ORDER BY name LIMIT 12) s;
	-- one image's time: a batch of two not seen before
	SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
	SELECT count(*) FROM unnest(vgg16_features((SELECT imgs[1:2] FROM batch)));
	SELECT (extract(epoch FROM clock_timestamp()) - :t0) / 2 AS per_image \\gset
	SELECT backend_images AS before FROM imgsearch_model_info() \\gset
	CREATE FUNCTION pg_temp.timed_batch() RETURNS double precision LANGUAGE plpgsql AS \$\$
	DECLARE
		t0 timestamptz := clock_timestamp();
	BEGIN
		PERFORM vgg16_features((SELECT imgs[3:12] || imgs[1:2] FROM batch));
		RETURN -1;
	EXCEPTION WHEN query_canceled THEN
		RETURN extract(epoch FROM clock_timestamp() - t0);
	END \$\$;
	SET statement_timeout = '500ms';
	SELECT pg_temp.timed_batch() AS elapsed \\gset
	RESET statement_timeout;
	SELECT :per_image || '|' || :elapsed || '|' || (backend_images - :before) FROM imgsearch_model_info();
});
my ($per_image, $elapsed, $ran) = split /\|/, (split /\n/, $out)[-1];
my $limit = 0.5 + 1.5 * $per_image + 0.3;
cmp_ok($elapsed, '>', 0, 'statement_timeout stopped the 12-image batch');
cmp_ok($elapsed, '<', $limit,
	sprintf('... %.2f s after it began, under %.2f s (one image: %.2f s)', $elapsed, $limit, $per_image));
cmp_ok($ran, '<', 12, "... after $ran of 12 images");

# --- imgsearch.threads for non-superusers --------------------------------
my $cores = $node->safe_psql('postgres',
	qq{SELECT imgfeat_dims('[1]') \\g /dev/null\nSELECT boot_val FROM pg_settings WHERE name = 'imgsearch.threads'});
like($cores, qr/^\d+$/, "imgsearch.threads defaults to the number of cores ($cores)");
$node->safe_psql('postgres', q{CREATE ROLE plain LOGIN});
# (a query that loads imgsearch first: before, the setting is a placeholder)
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{SELECT imgfeat_dims('[1]'); SET imgsearch.threads = 64},
	extra_params => [ '-U', 'plain' ]);
isnt($ret, 0, 'a non-superuser cannot set imgsearch.threads = 64');
like($stderr, qr/only superusers may set imgsearch.threads above $cores/, '... with a clear message');
is($node->safe_psql('postgres', "SELECT imgfeat_dims('[1]') \\g /dev/null\nSET imgsearch.threads = $cores; SET imgsearch.threads = 1; SHOW imgsearch.threads",
		extra_params => [ '-U', 'plain' ]),
	'1', "... but may set 1 to $cores (the number of cores)");
is($node->safe_psql('postgres', 'SET imgsearch.threads = 64; SHOW imgsearch.threads'), '64', 'a superuser may set 64');
$node->safe_psql('postgres', q{ALTER ROLE plain SET imgsearch.threads = 64});
($ret, $stdout, $stderr) = $node->psql('postgres', qq{SELECT imgfeat_dims('[1]') \\g /dev/null\nSHOW imgsearch.threads},
	extra_params => [ '-U', 'plain' ]);
is($stdout, $cores, 'ALTER ROLE ... SET imgsearch.threads = 64 does not raise it for a non-superuser');

is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
$node->stop;
done_testing();
