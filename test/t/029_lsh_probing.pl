# How far an lsh search probes (docs/methods.md "lsh", "Probing"). With
# lsh.error_bound above 0 a search probes lsh.probes buckets, then goes on,
# up to 8 times as many, until 4 buckets in a row held no entry whose lower
# bound is below the 30th least estimate so far. The scan's DEBUG1 line
# says how many buckets it probed.
# (1) Well-separated clusters, a query at a cluster's centre: the search
#     stops before 8 x lsh.probes (the far buckets are quiet), and its 30
#     rows are a sequential scan's.
# (2) One cloud of uniform noise (no cluster is nearer than another): some
#     search probes past lsh.probes, and none past 8 x lsh.probes nor past
#     the index's buckets.
# (3) lsh.error_bound = 0 (the fixed count, no bounds to watch): exactly
#     lsh.probes buckets, on both tables; lsh.probes = 0: every bucket.
#     (1) and (2) with lsh.error_bound = 0 would show the fixed count's
#     probes; that (1) stops early and (2) goes on is the bounds' doing.
use strict;
use warnings;
use Test::More;
use ImgsTest qw(topk_sql);

my $node = ImgsTest::new_node('lsh_probing');
$node->safe_psql('postgres', q{
	SELECT setseed(0.53);
	-- 20 centres in [-50, 50]^32, rows within 0.5 of theirs: clusters far apart
	CREATE TABLE centre AS SELECT j, c, 100 * random() - 50 AS m FROM generate_series(0, 19) j, generate_series(1, 32) c;
	CREATE TABLE clustered (id int, v imgfeat(32));
	INSERT INTO clustered SELECT i, (SELECT array_agg((m + random() - 0.5)::real ORDER BY c) FROM centre WHERE j = i % 20)::imgfeat
	FROM generate_series(1, 4000) i;
	CREATE TABLE cq AS SELECT j AS qn, array_agg((m + 0.1 * random() - 0.05)::real ORDER BY c)::imgfeat AS v
	FROM centre GROUP BY j;
	CREATE INDEX clustered_lsh ON clustered USING lsh (v) WITH (buckets = 20, bits = 32);
	CREATE TABLE cloud (id int, v imgfeat(64));
	INSERT INTO cloud SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i > 0)::imgfeat
	FROM generate_series(1, 4000) i;
	CREATE TABLE uq AS SELECT i AS qn, (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i >= 0)::imgfeat AS v
	FROM generate_series(0, 19) i;
	CREATE INDEX cloud_lsh ON cloud USING lsh (v) WITH (buckets = 64, bits = 64);
});

# Buckets probed by each of the 20 queries of $queries against $table under
# $settings, from the scan's DEBUG1 line; and the ids each returned (LIMIT 30).
sub probes
{
	my ($table, $queries, $settings) = @_;
	my (@probed, @answers);
	for my $qn (0 .. 19)
	{
		my ($rc, $out, $err) = $node->psql('postgres',
			"SET imgsearch.method = 'lsh'; SET enable_seqscan = off; $settings; SET client_min_messages = debug1; "
			  . "SELECT string_agg(id::text, ',') FROM (SELECT id FROM $table "
			  . "ORDER BY v <-> (SELECT v FROM $queries WHERE qn = $qn) LIMIT 30) a");
		die "query $qn on $table: $err" if $rc != 0;
		my ($p, $n) = $err =~ /lsh scan of "${table}_lsh": .*?(\d+) of (\d+) buckets probed/
		  or die "no lsh debug line for query $qn on $table: $err\n" . $node->safe_psql('postgres',
			"SET imgsearch.method = 'lsh'; SET enable_seqscan = off; $settings; EXPLAIN SELECT id FROM $table "
			  . "ORDER BY v <-> (SELECT v FROM $queries WHERE qn = $qn) LIMIT 30");
		push @probed, $p;
		push @answers, $out;
	}
	return (\@probed, \@answers);
}

sub count_if { my ($test, $list) = @_; return scalar grep { $test->($_) } @$list; }

# (1)
my ($probed, $answers) = probes('clustered', 'cq', 'SET lsh.probes = 2');
is(count_if(sub { $_[0] < 2 || $_[0] >= 16 }, $probed), 0,
	'clustered, lsh.probes = 2: every search probes at least 2 buckets and stops before 16 (' . join(' ', @$probed) . ')');
my ($exact_index, $exact_sort) = ('', '');
for my $qn (0 .. 19)
{
	my $query = "SELECT id, v <-> (SELECT v FROM cq WHERE qn = $qn) AS d FROM clustered "
	  . "ORDER BY v <-> (SELECT v FROM cq WHERE qn = $qn) LIMIT 30";
	$exact_index .= $node->safe_psql('postgres', "SET imgsearch.method = 'lsh'; SET enable_seqscan = off; "
		  . "SET lsh.probes = 2; " . topk_sql($query)) . "\n";
	$exact_sort .= $node->safe_psql('postgres', "SET imgsearch.method = 'argsort'; SET enable_indexscan = off; "
		  . topk_sql($query)) . "\n";
}
is($exact_index, $exact_sort, "clustered, lsh.probes = 2: the 30 rows of every search are the sort's");

# (2)
($probed) = probes('cloud', 'uq', 'SET lsh.probes = 2');
ok(count_if(sub { $_[0] > 2 }, $probed) > 0,
	'cloud, lsh.probes = 2: some search probes past 2 buckets (' . join(' ', @$probed) . ')');
is(count_if(sub { $_[0] < 2 || $_[0] > 16 }, $probed), 0, 'cloud, lsh.probes = 2: none probes fewer than 2 or more than 16');
($probed) = probes('cloud', 'uq', 'SET lsh.probes = 10');
is(count_if(sub { $_[0] < 10 || $_[0] > 64 }, $probed), 0,
	'cloud, lsh.probes = 10: none probes fewer than 10 or more than the 64 buckets (' . join(' ', @$probed) . ')');

# (3) (budgets whose first round holds 30 rows: the DEBUG1 line counts the
# buckets of every round)
for my $t ([ 'clustered', 'cq', 2 ], [ 'cloud', 'uq', 8 ])
{
	my ($table, $queries, $p) = @$t;
	($probed) = probes($table, $queries, "SET lsh.probes = $p; SET lsh.error_bound = 0");
	is(count_if(sub { $_[0] != $p }, $probed), 0,
		"$table, lsh.error_bound = 0: every search probes exactly $p buckets (" . join(' ', @$probed) . ')');
}
($probed) = probes('cloud', 'uq', 'SET lsh.probes = 0');
is(count_if(sub { $_[0] != 64 }, $probed), 0, 'cloud, lsh.probes = 0: every search probes all 64 buckets');
done_testing();
