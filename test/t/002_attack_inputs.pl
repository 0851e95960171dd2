# Inputs that once crashed the server or made values the type forbids, run
# in a cluster of their own so that a crash cannot take the test runner down:
# each must fail with its SQLSTATE and leave the server up. Then a table of
# every kind of edge value the type accepts survives pg_dump and restore, and
# a binary COPY round trip, unchanged.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('attack');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	CREATE ROLE attacker LOGIN;
	CREATE TABLE indexed (id int, v imgfeat);
	INSERT INTO indexed VALUES (1, '[1,2]'), (2, '[3,4]');
	CREATE INDEX indexed_v ON indexed USING faissflat (v);
	GRANT SELECT, INSERT ON indexed TO attacker;
});

# The SQLSTATE of the error sql raises (as user), or 'none'.
sub sqlstate
{
	my ($sql, $user) = @_;
	my ($out, $err) = ('', '');
	$node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		stdout => \$out, stderr => \$err,
		extra_params => [ $user ? ('-U', $user) : () ]);
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : 'none';
}

my $forty_thousand = q{imgfeat_avg_final(array_fill(1::float8, array[40000]))};

# --- the avg(imgfeat) support functions are not PUBLIC's -------------------------
is(sqlstate("SELECT $forty_thousand <-> $forty_thousand", 'attacker'), '42501',
	'attacker: imgfeat_avg_final is not executable (the former SIGSEGV)');
is(sqlstate(q{SELECT imgfeat_avg_combine('{1,1}', '{1,1}')}, 'attacker'), '42501',
	'attacker: imgfeat_avg_combine is not executable');
is(sqlstate(q{SELECT imgfeat_avg_accum('{0}', '[1]')}, 'attacker'), '42501',
	'attacker: imgfeat_avg_accum is not executable');
is($node->safe_psql('postgres', 'SELECT avg(v)::text FROM indexed', extra_params => [ '-U', 'attacker' ]),
	'[2,3]', 'attacker: avg(imgfeat) still works');

# --- the owner may call them, but they validate their state ------------------------
my %forged = (
	'40000 sums (dim overflows int16)'      => [ $forty_thousand, '22023' ],
	'16001 sums'                            => [ q{imgfeat_avg_final(array_fill(1::float8, array[16002]))}, '22023' ],
	'a count but no sums (dim 0)'           => [ q{imgfeat_avg_final('{1}')}, '22023' ],
	'a negative count'                      => [ q{imgfeat_avg_final('{-1,5}')}, '22023' ],
	'a fractional count'                    => [ q{imgfeat_avg_final('{0.5,5}')}, '22023' ],
	'a NaN count'                           => [ q{imgfeat_avg_final('{NaN,5}')}, '22023' ],
	'a NaN sum'                             => [ q{imgfeat_avg_final('{1,NaN}')}, '22000' ],
	'an infinite sum'                       => [ q{imgfeat_avg_final('{1,Infinity}')}, '22000' ],
	'a mean beyond float4'                  => [ q{imgfeat_avg_final('{1,1e300}')}, '22000' ],
	'a 2-D state'                           => [ q{imgfeat_avg_final('{{1,2},{3,4}}')}, '22023' ],
	'a NULL element'                        => [ q{imgfeat_avg_final('{1,NULL}')}, '22023' ],
	'a lower bound of 0'                    => [ q{imgfeat_avg_final('[0:1]={1,2}')}, '22023' ],
);
for my $case (sort keys %forged)
{
	my ($expr, $state) = @{ $forged{$case} };
	is(sqlstate("SELECT $expr"), $state, "owner: imgfeat_avg_final with $case fails with $state");
	is(sqlstate("INSERT INTO indexed VALUES (3, $expr)"), $state,
		"owner: inserting it into an indexed table fails with $state")
		if $case eq '40000 sums (dim overflows int16)';
}
is(sqlstate(qq{CREATE TABLE made AS SELECT $forty_thousand AS v}), '22023',
	'owner: CREATE TABLE AS over a forged value fails');
is(sqlstate(q{SELECT imgfeat_avg_accum('{0}', '[1]')}), '0A000',
	'owner: imgfeat_avg_accum outside an aggregate is refused');
is(sqlstate(q{SELECT imgfeat_avg_combine(array_fill(1::float8, array[40000]), '{1,1}')}), '0A000',
	'owner: imgfeat_avg_combine outside an aggregate is refused');

# --- other paths that made values the input function rejects --------------------
is(sqlstate(q{SELECT '{1e-50}'::float8[]::imgfeat}), '22003', 'float8[] 1e-50 is out of range, as in text');
is(sqlstate(q{SELECT '[1e-50]'::imgfeat}), '22003', 'text 1e-50 is out of range');
is(sqlstate(q{SELECT '{1e-50}'::numeric[]::imgfeat}), '22003', 'numeric[] 1e-50 is out of range');
is(sqlstate(q{SELECT '{1e39}'::float8[]::imgfeat}), '22003', 'float8[] 1e39 is out of range');
is($node->safe_psql('postgres', q{SELECT '{0,-0,1e-45}'::float8[]::imgfeat::text}), '[0,-0,1e-45]',
	'float8[] zeros and the smallest subnormal are accepted');

# --- the server is up, nothing crashed ----------------------------------------
is($node->safe_psql('postgres', 'SELECT count(*) FROM indexed'), '2', 'the server answers; the table is intact');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated/, 'no backend crashed');

# --- every kind of edge value survives pg_dump / restore and binary COPY -------------
$node->safe_psql('postgres', q{
	CREATE TABLE edge (id int PRIMARY KEY, v imgfeat, w imgfeat(3));
	INSERT INTO edge VALUES
	  (1, '[3.4028235e38,-3.4028235e38,0]', '[1,2,3]'),
	  (2, '[1.1754944e-38,-1.1754944e-38,1e-45]', '[-0,0,-1e-45]'),
	  (3, '[1]', NULL),
	  (4, NULL, '[0.1,0.2,0.3]'),
	  (5, (SELECT array_fill(1.5::real, array[16000])::imgfeat), '[1,1,1]'),
	  (6, (SELECT avg(v) FROM indexed), '[16777217,0.33333334,-2.7182817]'),
	  (7, (SELECT array_agg(((i % 7) - 3) * 1e37::float8)::imgfeat FROM generate_series(1, 512) i), '[1e-40,2e-40,3e-40]');
	CREATE INDEX edge_v ON edge USING faissflat (w);
});
my $fingerprint = q{SELECT string_agg(id || ':' || coalesce(v::text, 'NULL') || ':' || coalesce(w::text, 'NULL'), ';' ORDER BY id) FROM edge};
my $before = $node->safe_psql('postgres', $fingerprint);

my $dump = $node->basedir . '/edge.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-t', 'edge', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump of the edge values');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->safe_psql('restored', 'CREATE EXTENSION imgsearch');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', $node->connstr('restored'), $dump ],
	'pg_restore of the edge values, with no error');
is($node->safe_psql('restored', $fingerprint), $before, 'every edge value restored unchanged, all 7 rows');

my $copy = $node->basedir . '/edge.bin';
$node->safe_psql('postgres', qq{
	COPY edge TO '$copy' (FORMAT binary);
	CREATE TABLE edge_bin (LIKE edge);
	COPY edge_bin FROM '$copy' (FORMAT binary);
});
(my $bin_fingerprint = $fingerprint) =~ s/FROM edge/FROM edge_bin/;
is($node->safe_psql('postgres', $bin_fingerprint), $before, 'binary COPY round trip: every edge value unchanged');

$node->stop;
done_testing();
