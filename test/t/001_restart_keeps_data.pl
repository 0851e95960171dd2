# imgfeat data survives a clean restart and a crash (immediate stop + WAL
# replay): the same rows, the same values, the same distances.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ImgsTest qw(topk_sql);

my $node = PostgreSQL::Test::Cluster->new('restart');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	CREATE TABLE feats (id int PRIMARY KEY, v imgfeat(64));
	SELECT setseed(0.5);
	INSERT INTO feats
	SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i > 0)::imgfeat
	FROM generate_series(1, 2000) i;
});

# A fingerprint computed independently of imgsearch's operators: the sum of
# every element, via the real[] cast, and the text form of a few rows.
my $fingerprint = q{
	SELECT count(*), round(sum(x)::numeric, 3)
	FROM feats, unnest(v::real[]) x
};
my $rows = q{SELECT string_agg(v::text, ';' ORDER BY id) FROM feats WHERE id % 397 = 0 AND id <= 2000};
# the 5 nearest neighbours of row 7 and their distances (ties: topk_sql)
my $nearest = topk_sql(q{SELECT id, v <-> (SELECT v FROM feats WHERE id = 7) AS d
	FROM feats WHERE id <= 2000 ORDER BY v <-> (SELECT v FROM feats WHERE id = 7) LIMIT 5});

my $before_fp = $node->safe_psql('postgres', $fingerprint);
my $before_rows = $node->safe_psql('postgres', $rows);
my $before_nearest = $node->safe_psql('postgres', $nearest);
like($before_fp, qr/^128000\|/, 'all 2000 rows x 64 elements loaded');
like($before_nearest, qr/^7:0(?:,(?:\d+|\*):[^,]+){3},\*:[^,]+$/, 'a row is its own nearest neighbour, then 4 others');

$node->restart;
is($node->safe_psql('postgres', $fingerprint), $before_fp, 'element sum unchanged after clean restart');
is($node->safe_psql('postgres', $rows), $before_rows, 'text form unchanged after clean restart');

# More rows, committed, then a crash: WAL replay must bring them back.
$node->safe_psql('postgres', q{
	INSERT INTO feats SELECT id + 2000, v FROM feats WHERE id <= 500;
});
my $after_insert_fp = $node->safe_psql('postgres', $fingerprint);
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', $fingerprint), $after_insert_fp, 'committed rows replayed after a crash');
is($node->safe_psql('postgres', $rows), $before_rows, 'text form unchanged after a crash');
is($node->safe_psql('postgres', $nearest), $before_nearest, 'nearest neighbours unchanged after a crash');

$node->stop;
done_testing();
