# lsh is fully WAL-logged: a streaming standby returns the same answers as
# the primary (the same rows in the same order, with the default budget and
# probing everything), and with lsh.probes = 0 and lsh.candidates = 0 the
# same as its own sequential scan and sort (argsort); after the build,
# inserts past the build, deletes, VACUUM, inserts into the slots VACUUM
# freed and a REINDEX, in new sessions and in one kept open since the build;
# imgsearch_index_check passes on the standby at every stage. Data: 4096-d
# clustered vectors (a vector spans pages and WAL records) and 24-d ones;
# small buckets make many of them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
# enable_seqscan = off prices the helper queries past jit_above_cost
$primary->append_conf('postgresql.conf', 'jit = off');
$primary->start;
$primary->safe_psql('postgres', 'CREATE EXTENSION imgsearch');
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->start;

$primary->safe_psql('postgres', q{
	SELECT setseed(0.31);
	-- clusters: 8 centres per dimension, each row a centre plus uniform noise
	CREATE TABLE centre AS
	SELECT d, j, c, 2 * random() - 1 AS m FROM (VALUES (24), (4096)) dd(d), generate_series(0, 7) j, generate_series(1, d) c;
	CREATE FUNCTION clu_vec(dim int, seed int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
	  'SELECT array_agg((m + random() - 0.5)::real ORDER BY c)::imgfeat FROM centre WHERE d = dim AND j = seed % 8';
	CREATE TABLE big (id int, v imgfeat(4096));
	CREATE TABLE small (id int, v imgfeat(24));
	INSERT INTO big SELECT i, clu_vec(4096, i) FROM generate_series(1, 250) i;
	INSERT INTO big VALUES (-1, NULL);
	INSERT INTO small SELECT i, clu_vec(24, i) FROM generate_series(1, 3000) i;
	CREATE INDEX big_l2 ON big USING lsh (v) WITH (bits = 256, buckets = 60);
	CREATE INDEX big_cos ON big USING lsh (v imgfeat_cosine_ops) WITH (bits = 64, buckets = 30);
	CREATE INDEX small_ip ON small USING lsh (v imgfeat_ip_ops) WITH (buckets = 300);
	CREATE INDEX small_l2 ON small USING lsh (v);
	CREATE TABLE queries AS
	SELECT 'big' AS tbl, n, clu_vec(4096, n) AS q FROM generate_series(1, 3) n
	UNION ALL SELECT 'small', n, clu_vec(24, n) FROM generate_series(1, 3) n;
});

my @cases = ([ 'big', '<->', 'big_l2' ], [ 'big', '<=>', 'big_cos' ],
	[ 'small', '<#>', 'small_ip' ], [ 'small', '<->', 'small_l2' ]);

my $everything = 'SET lsh.probes = 0; SET lsh.candidates = 0;';

# "id:distance" lists, one line per table, operator, query and k. With the
# lsh index forced ($budget: the settings of lsh.probes and lsh.candidates),
# or (argsort) with a sequential scan and sort. One session: each new backend
# loads the module (and libtorch) again. $sorted: the pairs sorted by
# distance and id, then whether the rows came in non-decreasing distance
# (float distances may tie, and a sort and the index may return tied rows in
# different orders); otherwise as returned.
sub answers_sql
{
	my ($method, $budget, $ks, $sorted) = @_;
	my $sql = "SET imgsearch.method = '$method';\n"
	  . 'SET enable_seqscan = ' . ($method eq 'argsort' ? 'on' : 'off') . ";\n"
	  . "RESET lsh.probes; RESET lsh.candidates; $budget\n";
	my $agg = $sorted
	  ? q{string_agg(id || ':' || d, ',' ORDER BY d, id) || ' in order: ' || bool_and(prev IS NULL OR prev <= d)}
	  : q{string_agg(id || ':' || d, ',' ORDER BY rn)};
	for my $case (@cases)
	{
		my ($tbl, $op) = @$case;
		for my $k (@$ks)
		{
			$sql .= qq{
				SELECT n, (SELECT $agg
				           FROM (SELECT id, d, rn, lag(d) OVER (ORDER BY rn) AS prev
				                 FROM (SELECT id, d, row_number() OVER () AS rn
				                       FROM (SELECT id, v $op q AS d FROM $tbl WHERE v IS NOT NULL
				                             ORDER BY v $op q LIMIT $k) r) s) t)
				FROM queries WHERE tbl = '$tbl' ORDER BY n;
			};
		}
	}
	return $sql;
}

sub answers
{
	my ($node, @args) = @_;
	return $node->safe_psql('postgres', answers_sql(@args));
}

# every index of @cases is what an lsh search runs on this node
sub plans
{
	my ($node) = @_;
	my @wrong;
	for my $case (@cases)
	{
		my ($tbl, $op, $index) = @$case;
		my $plan = $node->safe_psql('postgres', qq{
			SET imgsearch.method = 'lsh';
			SET enable_seqscan = off;
			EXPLAIN (COSTS OFF) SELECT id FROM $tbl ORDER BY v $op (SELECT q FROM queries WHERE tbl = '$tbl' AND n = 1) LIMIT 5;
		});
		push @wrong, "$index: $plan" unless $plan =~ /Index Scan using $index on/;
	}
	return join("\n", @wrong);
}

# A session on the standby that stays open from the start: its backend keeps
# whatever it has read of the indexes while recovery changes them.
my $held;

sub compare
{
	my ($stage) = @_;
	$primary->wait_for_catchup($standby);
	is(plans($standby), '', "$stage: the standby plans lsh index scans");
	# a physical copy: the same rows in the same order, ties included
	for my $budget ('', $everything)
	{
		my $what = $budget eq '' ? 'the default budget' : 'probing everything';
		my $on_primary = answers($primary, 'lsh', $budget, [ 1, 30, 'ALL' ], 0);
		is(answers($standby, 'lsh', $budget, [ 1, 30, 'ALL' ], 0), $on_primary,
			"$stage, $what: the standby's index answers like the primary's");
		$held //= $standby->background_psql('postgres');
		is($held->query_safe(answers_sql('lsh', $budget, [ 1, 30, 'ALL' ], 0)), $on_primary,
			"$stage, $what: a standby session open since the build answers like the primary");
	}
	is(answers($standby, 'lsh', $everything, [ 1, 30, 'ALL' ], 1),
		answers($standby, 'argsort', '', [ 1, 30, 'ALL' ], 1),
		"$stage: probing everything, the standby's index answers like its sequential scan and sort");
	is(answers($primary, 'lsh', $everything, [ 30, 'ALL' ], 1),
		answers($primary, 'argsort', '', [ 30, 'ALL' ], 1),
		"$stage: probing everything, the primary's index answers like its sequential scan and sort");
	# imgsearch_index_check on the standby (during recovery: AccessShareLock)
	for my $case (@cases)
	{
		my ($tbl, undef, $index) = @$case;
		my ($ret, $out, $err) = $standby->psql('postgres',
			qq{SELECT method || ':' || (heap_rows = (SELECT count(v) FROM $tbl))
			   FROM imgsearch_index_check('$index')});
		is("$ret:$out:$err", '0:lsh:true:', "$stage: imgsearch_index_check passes on the standby's $index");
	}
}

compare('build');

$primary->safe_psql('postgres', q{
	SELECT setseed(0.32);
	INSERT INTO big SELECT i, clu_vec(4096, i) FROM generate_series(251, 400) i;
	INSERT INTO small SELECT i, clu_vec(24, i) FROM generate_series(3001, 4000) i;
	INSERT INTO small VALUES (-1, NULL);
});
compare('inserts');

$primary->safe_psql('postgres', q{
	DELETE FROM big WHERE id % 3 = 0;
	DELETE FROM small WHERE id % 3 = 0;
});
compare('deletes');

$primary->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) big, small');
compare('vacuum');

$primary->safe_psql('postgres', q{
	SELECT setseed(0.33);
	INSERT INTO big SELECT i, clu_vec(4096, i) FROM generate_series(401, 450) i;
	INSERT INTO small SELECT i, clu_vec(24, i) FROM generate_series(4001, 4500) i;
});
compare('inserts after vacuum');

$primary->safe_psql('postgres', 'REINDEX INDEX big_l2; REINDEX INDEX small_ip');
compare('reindex');

$held->quit;
$standby->stop;
$primary->stop;
done_testing();
