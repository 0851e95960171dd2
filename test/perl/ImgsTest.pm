# Shared code of imgsearch's perl TAP suites (test/t/*.pl):
#
#   new_node, new_standby        clusters with imgsearch
#   spectrum_sql                 vectors with a decaying spectrum (kdtree's data)
#   topk_sql, topk_by_probe_sql  a top-k answer in a form that tolerates ties
#   shape_sql                    what is wrong with an approximate answer
#   index_check_ok               imgsearch_index_check passes on an index
#   crash_during                 pgbench clients, then pg_ctl stop -m immediate
#   standby_scenario             the per-method scenarios, each written once
#   crash_scenario               and run by a thin test/t/NNN_<method>_*.pl
#   concurrency_scenario
#
# Ties. A sequential scan and sort defines no order for rows at the same
# distance, nor which of them a LIMIT keeps; an index may rightly answer
# either way. So an answer is compared as topk_sql writes it: its (id,
# distance) pairs sorted by distance and id, where a row at the answer's
# largest distance (the k-th, where LIMIT may cut a tie) shows '*' for its id;
# flagged when an id comes twice or the rows did not come in non-decreasing
# distance. Two correct answers then agree, and a missing row, a wrong row, a
# wrong distance or rows out of order still show. (The distance is the
# operator's value computed from the row itself, so a '*' row does have the
# distance it shows.) Physical copies (a standby against its primary) answer
# with the same index pages by the same code: those are compared in the
# order returned, ties included.
package ImgsTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT_OK = qw(new_node new_standby spectrum_sql topk_sql topk_by_probe_sql shape_sql index_check_ok crash_during);

# --- clusters ----------------------------------------------------------------

# A started cluster with CREATE EXTENSION imgsearch, then $opt{sql}.
# streaming => 1: it can have standbys and backups; conf => [lines].
# jit = off: enable_seqscan = off prices the helper queries past
# jit_above_cost, and compiling them would only slow the tests.
sub new_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init($opt{streaming} ? (allows_streaming => 1) : ());
	$node->append_conf('postgresql.conf', join("\n", 'jit = off', @{ $opt{conf} // [] }) . "\n");
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION imgsearch;' . ($opt{sql} // ''));
	return $node;
}

# A streaming standby of $primary, from a new backup, started.
sub new_standby
{
	my ($primary, $name) = @_;
	$primary->backup("for_$name");
	my $standby = PostgreSQL::Test::Cluster->new($name);
	$standby->init_from_backup($primary, "for_$name", has_streaming => 1);
	$standby->start;
	return $standby;
}

# SQL that makes spec_vec(), a vector of $dim with a decaying spectrum: a
# mean, two random directions weighted 1 and 1/2, noise scaled 1/rank over a
# random permutation of the coordinates (table basis).
sub spectrum_sql
{
	my ($dim) = @_;
	return qq{
		CREATE TABLE basis AS
		SELECT c, random() - 0.5 AS b1, random() - 0.5 AS b2, 1.0 / row_number() OVER (ORDER BY random()) AS scale
		FROM generate_series(1, $dim) c;
		CREATE FUNCTION spec_vec() RETURNS imgfeat LANGUAGE plpgsql AS \$\$
		DECLARE
			g1 float8 := random() - 0.5;
			g2 float8 := random() - 0.5;
		BEGIN
			RETURN (SELECT array_agg((0.5 + g1 * b1 + g2 * b2 / 2 + (random() - 0.5) * scale)::real ORDER BY c)
			        FROM basis)::imgfeat;
		END \$\$;
	};
}

# --- answers -------------------------------------------------------------------

# The (id, d) rows of $query, in the order it returns them, with their row
# number rn and the previous row's distance prev.
sub _numbered
{
	my ($query) = @_;
	return qq{(SELECT *, lag(d) OVER (ORDER BY rn) AS prev
	           FROM (SELECT *, row_number() OVER () AS rn FROM ($query) r) s) t};
}

# A query of one text value: the answer of $query (columns id and d, and any
# $row names, in the order the answer ranks them) in the tie-tolerant form
# described at the top. $row: what stands for a row (default its id).
sub topk_sql
{
	my ($query, $row) = @_;
	$row //= 'id::text';
	my $rows = _numbered($query);
	return qq{SELECT coalesce(string_agg(CASE WHEN d = max_d THEN '*' ELSE $row END || ':' || coalesce(d::text, 'null'),
	                                     ',' ORDER BY d, id), '')
	              || CASE WHEN count(DISTINCT id) < count(*) THEN ' (an id twice)' ELSE '' END
	              || CASE WHEN coalesce(bool_and(prev IS NULL OR prev <= d), true) THEN '' ELSE ' (out of order)' END
	          FROM (SELECT *, max(d) OVER () AS max_d FROM $rows) m};
}

# One line per probe n of $from: "n|answer", topk_sql of $query (which may
# use the probe's columns, e.g. q).
sub topk_by_probe_sql
{
	my ($from, $query) = @_;
	return 'SELECT n, (' . topk_sql($query) . ") FROM $from ORDER BY n";
}

# A query of one text value, '' when the answer of $query (id, d, in its
# order) is distinct rows in non-decreasing distance and $rows_bad (over
# count(*)) is false; otherwise what is wrong.
sub shape_sql
{
	my ($query, $rows_bad) = @_;
	my $rows = _numbered($query);
	return qq{SELECT concat_ws(', ',
	              CASE WHEN $rows_bad THEN count(*) || ' rows' END,
	              CASE WHEN count(DISTINCT id) < count(*) THEN 'an id twice' END,
	              CASE WHEN NOT bool_and(prev IS NULL OR prev <= d) THEN 'out of order' END)
	          FROM $rows};
}

# imgsearch_index_check passes on $index (of $method, on column v of
# $table): every row with a vector found once in it.
sub index_check_ok
{
	my ($node, $method, $index, $table, $name) = @_;
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SELECT method || ':' || (heap_rows = (SELECT count(v) FROM $table)) FROM imgsearch_index_check('$index')});
	return is("$ret:$out:$err", "0:$method:true:", $name);
}

# --- crashes ---------------------------------------------------------------------

# Three pgbench clients run the scripts (name => [weight, SQL]), each
# statement its own transaction, until $until (a query) is true; then
# pg_ctl stop -m immediate, and a restart (crash recovery).
sub crash_during
{
	my ($node, $until, %scripts) = @_;
	my @files;
	for my $name (sort keys %scripts)
	{
		my ($weight, $sql) = @{ $scripts{$name} };
		my $file = $node->basedir . "/$name.sql";
		open(my $fh, '>', $file) or die "$file: $!";
		print $fh $sql;
		close $fh or die "$file: $!";
		push @files, '-f', "$file\@$weight";
	}
	my ($out, $err) = ('', '');
	my $pgbench = IPC::Run::start(
		[ 'pgbench', '-n', '-c', '3', '-T', '120', @files, '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', \$out, '2>', \$err);
	$node->poll_query_until('postgres', $until)
	  or die "the clients did not get there ($until): $err";
	$node->stop('immediate');
	$pgbench->kill_kill;
	$node->start;
	return;
}

# SET (or SET LOCAL, $local) statements for settings [name => value, ...].
sub _settings
{
	my ($settings, $local) = @_;
	my @s = @{ $settings // [] };
	my $sql = '';
	while (my ($name, $value) = splice(@s, 0, 2))
	{
		$sql .= 'SET ' . ($local ? 'LOCAL ' : '') . "$name = $value; ";
	}
	return $sql;
}

# ", with s1 = v1, s2 = v2" for settings, or ''.
sub _settings_text
{
	my ($settings) = @_;
	my @s = @{ $settings // [] };
	my @parts;
	while (my ($name, $value) = splice(@s, 0, 2))
	{
		push @parts, "$name = $value";
	}
	return join(', ', @parts);
}

# --- standby scenario ----------------------------------------------------------------

# Indexes of $method are fully WAL-logged: a streaming standby returns the
# same answers as the primary (the same rows in the same order, in new
# sessions and in one kept open since the build, under each of budgets), and,
# searching exactly, the same as its own sequential scan and sort (argsort),
# as the primary does; after the build, inserts past the build, deletes,
# VACUUM, inserts after VACUUM and a REINDEX; imgsearch_index_check passes on
# the standby at every stage. Tables big (4096-d: a vector spans pages and
# WAL records) and small (24-d), each with a NULL vector.
#
#   method     the access method
#   sql        run first on the primary, after SELECT setseed(seeds[0]):
#              the functions the vectors need
#   big_vec, small_vec  the vector of row i (an expression that may use i)
#   big_rows   the rows of big after the build, the inserts, the inserts
#              after VACUUM, e.g. [300, 450, 500]; small has 3000, 4000, 4500
#   seeds      setseed before the build, the inserts, the inserts after VACUUM
#   indexes    [table, operator, index, what follows USING method]
#   budgets    [what, settings] that the primary and standby must answer
#              alike under (default: [[undef, '']]); each resets what the
#              others set, for the session kept open
#   exact      settings of an exact search (default '')
#   reindex    the indexes REINDEXed in the last stage
#   reuse_slots  an index whose size inserts after VACUUM must not change
sub standby_scenario
{
	my %p = @_;
	my $method = $p{method};
	my @cases = @{ $p{indexes} };
	my $budgets = $p{budgets} // [ [ undef, '' ] ];
	my $exact = $p{exact} // '';
	my ($seed_build, $seed_inserts, $seed_after) = @{ $p{seeds} };
	my ($big_build, $big_inserts, $big_after) = @{ $p{big_rows} };

	my $primary = new_node('primary', streaming => 1);
	my $standby = new_standby($primary, 'standby');

	my $fill = sub {
		my ($seed, $big_from, $big_to, $small_from, $small_to) = @_;
		return qq{
			SELECT setseed($seed);
			INSERT INTO big SELECT i, $p{big_vec} FROM generate_series($big_from, $big_to) i;
			INSERT INTO small SELECT i, $p{small_vec} FROM generate_series($small_from, $small_to) i;
		};
	};
	my $build = "SELECT setseed($seed_build);\n$p{sql}\n"
	  . q{
		CREATE TABLE big (id int, v imgfeat(4096));
		CREATE TABLE small (id int, v imgfeat(24));
		INSERT INTO big SELECT i, } . $p{big_vec} . qq{ FROM generate_series(1, $big_build) i;
		INSERT INTO big VALUES (-1, NULL);
		INSERT INTO small SELECT i, $p{small_vec} FROM generate_series(1, 3000) i;
	};
	$build .= "CREATE INDEX $_->[2] ON $_->[0] USING $method $_->[3];\n" for @cases;
	$build .= qq{
		CREATE TABLE queries AS
		SELECT 'big' AS tbl, i AS n, $p{big_vec} AS q FROM generate_series(1, 3) i
		UNION ALL SELECT 'small', i, $p{small_vec} FROM generate_series(1, 3) i;
	};
	$primary->safe_psql('postgres', $build);

	# One line per case, query and k: the answer as returned ($canonical
	# false) or topk_sql's form. With the index forced under $settings, or
	# (argsort) with a sequential scan and sort. One session: each new
	# backend loads the module (and libtorch) again.
	my $answers_sql = sub {
		my ($how, $settings, $ks, $canonical) = @_;
		my $sql = "SET imgsearch.method = '$how';\n"
		  . 'SET enable_seqscan = ' . ($how eq 'argsort' ? 'on' : 'off') . ";\n$settings\n";
		for my $case (@cases)
		{
			my ($tbl, $op) = @$case;
			for my $k (@$ks)
			{
				my $query = "SELECT id, v $op q AS d FROM $tbl WHERE v IS NOT NULL ORDER BY v $op q LIMIT $k";
				$sql .= $canonical
				  ? topk_by_probe_sql("queries WHERE tbl = '$tbl'", $query) . ";\n"
				  : "SELECT n, (SELECT string_agg(id || ':' || d, ',') FROM ($query) s)
				     FROM queries WHERE tbl = '$tbl' ORDER BY n;\n";
			}
		}
		return $sql;
	};
	my $answers = sub {
		my ($node, @args) = @_;
		return $node->safe_psql('postgres', $answers_sql->(@args));
	};

	# every index of @cases is what a search by the method runs on this node
	my $plans = sub {
		my ($node) = @_;
		my @wrong;
		for my $case (@cases)
		{
			my ($tbl, $op, $index) = @$case;
			my $plan = $node->safe_psql('postgres', qq{
				SET imgsearch.method = '$method';
				SET enable_seqscan = off;
				EXPLAIN (COSTS OFF) SELECT id FROM $tbl ORDER BY v $op (SELECT q FROM queries WHERE tbl = '$tbl' AND n = 1) LIMIT 5;
			});
			push @wrong, "$index: $plan" unless $plan =~ /Index Scan using $index on/;
		}
		return join("\n", @wrong);
	};

	# A session on the standby that stays open from the start: its backend
	# keeps whatever it has read of the indexes while recovery changes them.
	my $held;
	my $exactly = $exact eq '' ? '' : ', searching exactly';
	my $compare = sub {
		my ($stage) = @_;
		$primary->wait_for_catchup($standby);
		is($plans->($standby), '', "$stage: the standby plans $method index scans");
		# a physical copy: the same rows in the same order, ties included
		for my $budget (@$budgets)
		{
			my ($what, $settings) = @$budget;
			my $label = defined $what ? "$stage, $what" : $stage;
			my $on_primary = $answers->($primary, $method, $settings, [ 1, 30, 'ALL' ], 0);
			is($answers->($standby, $method, $settings, [ 1, 30, 'ALL' ], 0), $on_primary,
				"$label: the standby's index answers like the primary's");
			$held //= $standby->background_psql('postgres');
			is($held->query_safe($answers_sql->($method, $settings, [ 1, 30, 'ALL' ], 0)), $on_primary,
				"$label: a standby session open since the build answers like the primary");
		}
		is($answers->($standby, $method, $exact, [ 1, 30, 'ALL' ], 1),
			$answers->($standby, 'argsort', '', [ 1, 30, 'ALL' ], 1),
			"$stage$exactly: the standby's index answers like its sequential scan and sort");
		is($answers->($primary, $method, $exact, [ 30, 'ALL' ], 1),
			$answers->($primary, 'argsort', '', [ 30, 'ALL' ], 1),
			"$stage$exactly: the primary's index answers like its sequential scan and sort");
		# imgsearch_index_check on the standby (during recovery: AccessShareLock)
		index_check_ok($standby, $method, $_->[2], $_->[0], "$stage: imgsearch_index_check passes on the standby's $_->[2]")
		  for @cases;
	};

	$compare->('build');

	$primary->safe_psql('postgres',
		$fill->($seed_inserts, $big_build + 1, $big_inserts, 3001, 4000) . 'INSERT INTO small VALUES (-1, NULL);');
	$compare->('inserts');

	$primary->safe_psql('postgres', q{
		DELETE FROM big WHERE id % 3 = 0;
		DELETE FROM small WHERE id % 3 = 0;
	});
	$compare->('deletes');

	$primary->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) big, small');
	$compare->('vacuum');

	my $size = $p{reuse_slots} && $primary->safe_psql('postgres', "SELECT pg_relation_size('$p{reuse_slots}')");
	$primary->safe_psql('postgres', $fill->($seed_after, $big_inserts + 1, $big_after, 4001, 4500));
	is($primary->safe_psql('postgres', "SELECT pg_relation_size('$p{reuse_slots}')"), $size,
		"inserts after VACUUM reuse the slots it freed in $p{reuse_slots}")
	  if $p{reuse_slots};
	$compare->('inserts after vacuum');

	$primary->safe_psql('postgres', join('; ', map { "REINDEX INDEX $_" } @{ $p{reindex} }));
	$compare->('reindex');

	$held->quit;
	$standby->stop;
	$primary->stop;
	return;
}

# --- crash scenario -------------------------------------------------------------------

# Indexes of $method survive crashes: pg_ctl stop -m immediate
# (1) while three clients insert (a NULL vector now and then);
# (2) while they insert, delete (nine times in ten) and VACUUM (once in ten).
# After each recovery, and after inserts (and a VACUUM) that follow it, each
# index: is what the search runs; searching exactly, finds every committed row
# with a vector, and gives each probe the top 30 of a sequential scan and sort;
# with the default budget (when it is not exact) gives 30 distinct rows in
# non-decreasing distance; passes imgsearch_index_check. At the end, after
# VACUUM, no index has dead entries. Table f (id serial, v imgfeat(dim)) of
# 500 rows at the start, probes n = 1..3 in table probe.
#
#   method     the access method
#   sql        run first (after SELECT setseed(0.5)): the functions vec needs
#   dim, vec   the vectors' dimension, and an expression for a new one
#   indexes    [operator, index, what follows USING method]
#   exact      settings of an exact search when the default budget is not
#   streaming  the node can make backups (for after_inserts)
#   after_inserts  sub ($node, $check): more, after (1); $check->($node,
#              $stage) runs the checks above on a node
sub crash_scenario
{
	my %p = @_;
	my $method = $p{method};
	my @cases = @{ $p{indexes} };
	my $exact = $p{exact} // '';
	my $vec = $p{vec};

	my $setup = "SELECT setseed(0.5);\n$p{sql}\nCREATE TABLE f (id serial, v imgfeat($p{dim}));\n"
	  . "INSERT INTO f (v) SELECT $vec FROM generate_series(1, 500) i;\n";
	$setup .= "CREATE INDEX $_->[1] ON f USING $method $_->[2];\n" for @cases;
	$setup .= "CREATE TABLE probe AS SELECT i AS n, $vec AS q FROM generate_series(1, 3) i;\n";
	my $node = new_node('crash', streaming => $p{streaming}, sql => $setup);

	my $force = "SET imgsearch.method = '$method'; SET enable_seqscan = off;";
	my $exactly = $exact eq '' ? '' : ' (searching exactly)';
	my $check = sub {
		my ($n, $stage) = @_;
		my $all = $n->safe_psql('postgres',
			q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f WHERE v IS NOT NULL});
		for my $case (@cases)
		{
			my ($op, $index) = @$case;
			my $every = qq{SELECT string_agg(id::text, ',' ORDER BY id)
			               FROM (SELECT id FROM f ORDER BY v $op (SELECT q FROM probe WHERE n = 1)) s};
			like($n->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $every"), qr/Index Scan using $index on/,
				"$stage: the search uses $index");
			is($n->safe_psql('postgres', "$force $exact $every"), $all,
				"$stage: $index holds every committed row$exactly");
			my $top = topk_by_probe_sql('probe', "SELECT id, v $op q AS d FROM f ORDER BY v $op q LIMIT 30");
			is($n->safe_psql('postgres', "$force $exact $top"),
				$n->safe_psql('postgres', "SET imgsearch.method = 'argsort'; $top"),
				"$stage: $index agrees with a sequential scan and sort$exactly");
			if ($exact ne '')
			{
				my $shape = 'SELECT n, ('
				  . shape_sql("SELECT id, v $op q AS d FROM f ORDER BY v $op q LIMIT 30", 'count(*) <> 30')
				  . ') AS bad FROM probe';
				is($n->safe_psql('postgres', "$force SELECT string_agg(n || ': ' || bad, '; ') FROM ($shape) u WHERE bad <> ''"),
					'', "$stage: $index with the default budget: 30 distinct rows in non-decreasing distance");
			}
			index_check_ok($n, $method, $index, 'f', "$stage: imgsearch_index_check passes on $index");
		}
	};

	# (1) inserts
	crash_during($node, 'SELECT max(id) >= 1500 FROM f',
		insert => [ 1, "INSERT INTO f (v) SELECT CASE WHEN random() < 0.05 THEN NULL ELSE $vec END;\n" ]);
	$check->($node, 'after a crash during inserts');
	$node->safe_psql('postgres', "INSERT INTO f (v) SELECT $vec FROM generate_series(1, 100) i");
	$check->($node, 'after inserts that follow the crash');
	$p{after_inserts}->($node, $check) if $p{after_inserts};

	# (2) inserts, deletes and VACUUM until 1200 more rows were inserted
	my $before = $node->safe_psql('postgres', 'SELECT max(id) FROM f');
	crash_during($node, 'SELECT max(id) >= ' . ($before + 1200) . ' FROM f',
		mixed => [ 9, qq{
INSERT INTO f (v) SELECT $vec FROM generate_series(1, 3);
DELETE FROM f WHERE id IN (SELECT (random() * (SELECT max(id) FROM f))::int FROM generate_series(1, 2));
} ],
		vacuum => [ 1, "VACUUM f;\n" ]);
	$check->($node, 'after a crash during inserts, deletes and VACUUM');
	$node->safe_psql('postgres', qq{
		VACUUM (INDEX_CLEANUP ON) f;
		INSERT INTO f (v) SELECT $vec FROM generate_series(1, 100) i;
	});
	$check->($node, 'after VACUUM and inserts that follow the crash');
	for my $case (@cases)
	{
		my $index = $case->[1];
		$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) f');
		is($node->safe_psql('postgres', qq{SELECT dead_entries FROM imgsearch_index_check('$index')}), '0',
			"after the last VACUUM, no dead entries in $index");
	}

	$node->stop;
	return;
}

# --- concurrency scenario -----------------------------------------------------------------

# Indexes of $method under concurrency: pgbench clients insert, delete and
# VACUUM (and update, insert far from the build's data) while others search
# and run imgsearch_index_check (which must pass while rows come and go).
# Every search (check_knn) compares, in one REPEATABLE READ snapshot, the
# index's top 10, searching exactly, with a sequential scan's (topk_sql),
# and with the budget the answer must be distinct rows in non-decreasing
# distance; it fails on any difference. No client may fail. At the end each
# index holds exactly the table's rows, answers like a sequential scan and
# sort, passes imgsearch_index_check, and after VACUUM has no dead entries.
# Table f (id serial, v imgfeat(32)), 2000 rows at the start.
#
#   method        the access method
#   rand_vec      the body of rand_vec(dim) (SQL), the table's vectors
#   far_vec       that of far_vec(dim), vectors far from the build's, if any
#   indexes       [operator, index, what follows USING method]
#   far_ops       the operators searched with far_vec queries too
#   exact         settings [name => value, ...] of an exact search
#   budget        { settings => [...], rows_bad => a condition on count(*) }
#   weights       of the scripts: insert, insert_far, delete, update, vacuum,
#                 check, search (a script without one does not run)
#   transactions  per client (8 clients)
#   explain_op    the operator whose check_knn plans auto_explain shows
sub concurrency_scenario
{
	my %p = @_;
	my $method = $p{method};
	my @cases = @{ $p{indexes} };
	my %weights = %{ $p{weights} };
	my $far = defined $p{far_vec};

	my $setup = qq{
		CREATE FUNCTION rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS '$p{rand_vec}';
	};
	$setup .= qq{CREATE FUNCTION far_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS '$p{far_vec}';\n} if $far;
	$setup .= qq{
		CREATE TABLE f (id serial, v imgfeat(32));
		INSERT INTO f (v) SELECT rand_vec(32) FROM generate_series(1, 2000);
	};
	$setup .= "CREATE INDEX $_->[1] ON f USING $method $_->[2];\n" for @cases;

	# check_knn(op, q): the index's answer and a sort's, in the caller's
	# snapshot ($1 is q, %1$s op)
	my $top10 = 'SELECT id, v %1$s $1 AS d FROM f ORDER BY v %1$s $1 LIMIT 10';
	my $topk = topk_sql($top10);
	my $shape = '';
	my $shape_check = '';
	if ($p{budget})
	{
		my $settings = $p{budget}{settings};
		my $text = _settings_text($settings);
		$shape = 'shape text := format($f$' . shape_sql($top10, $p{budget}{rows_bad}) . '$f$, op); bad text;';
		$shape_check = _settings($settings, 1) . "EXECUTE shape INTO bad USING q;
			IF bad <> '' THEN
				RAISE EXCEPTION 'with $text: %', bad;
			END IF;";
	}
	# SET LOCAL lasts to the end of the transaction, past this call: the
	# budget's settings back to their defaults first, then the exact search's
	my %budget = @{ $p{budget} ? $p{budget}{settings} : [] };
	my $exact = join('', map { "SET LOCAL $_ TO DEFAULT; " } sort keys %budget) . _settings($p{exact}, 1);
	$setup .= qq{
	CREATE FUNCTION check_knn(op text, q imgfeat) RETURNS void LANGUAGE plpgsql AS \$\$
	DECLARE
		query text := format(\$f\$$topk\$f\$, op);
		$shape
		via_index text;
		via_sort text;
	BEGIN
		SET LOCAL imgsearch.method = '$method';
		SET LOCAL enable_seqscan = off;
		$exact
		EXECUTE query INTO via_index USING q;
		$shape_check
		SET LOCAL imgsearch.method = 'argsort';
		SET LOCAL enable_seqscan = on;
		EXECUTE query INTO via_sort USING q;
		IF via_index IS DISTINCT FROM via_sort THEN
			RAISE EXCEPTION 'index: %, sort: %', via_index, via_sort;
		END IF;
	END \$\$;
	};
	my $node = new_node('concurrency', conf => [ 'max_connections = 30' ], sql => $setup);

	for my $case (@cases)
	{
		my ($op, $index) = @$case;
		like($node->safe_psql('postgres', qq{
				SET imgsearch.method = '$method';
				EXPLAIN (COSTS OFF) SELECT id FROM f ORDER BY v $op (SELECT rand_vec(32)) LIMIT 10}),
			qr/Index Scan using $index on/, "$op searches use $index");
	}
	# the check would prove nothing if the searches inside it did not use the index
	{
		my $op = $p{explain_op} // $cases[0][0];
		my ($index) = map { $_->[1] } grep { $_->[0] eq $op } @cases;
		my $scans = $p{budget} ? 2 : 1;    # the exact search, and one with the budget
		my ($ret, $out, $err) = $node->psql('postgres', qq{
			LOAD 'auto_explain';
			SET auto_explain.log_min_duration = 0;
			SET auto_explain.log_nested_statements = on;
			SET auto_explain.log_level = notice;
			SELECT check_knn('$op', rand_vec(32));
		});
		my $scan = "Index Scan using $index on f.*";
		like("$ret\n$err", qr/^0\n.*(?:$scan){$scans}Seq Scan on f/s,
			"check_knn runs the $method index scan " . ($scans == 2 ? 'twice' : 'once') . ', then a sequential scan');
	}

	my $search = "BEGIN ISOLATION LEVEL REPEATABLE READ;\n";
	$search .= "SELECT check_knn('$_->[0]', rand_vec(32));\n" for @cases;
	$search .= "SELECT check_knn('$_', far_vec(32));\n" for @{ $p{far_ops} // [] };
	$search .= "COMMIT;\n";
	my %scripts = (
		insert => 'INSERT INTO f (v) SELECT rand_vec(32) FROM generate_series(1, 5);',
		insert_far => 'INSERT INTO f (v) SELECT far_vec(32) FROM generate_series(1, 3);',
		delete => 'DELETE FROM f WHERE id IN (SELECT (random() * (SELECT max(id) FROM f))::int FROM generate_series(1, 5));',
		update => 'UPDATE f SET v = rand_vec(32) WHERE id = (random() * (SELECT max(id) FROM f))::int;',
		vacuum => 'VACUUM f;',
		check => join(' ', map { "SELECT imgsearch_index_check('$_->[1]');" } @cases),
		search => $search);
	my $total = 8 * $p{transactions};
	$node->pgbench(
		"--no-vacuum --client=8 --jobs=2 --transactions=$p{transactions}",
		0,
		[ qr/number of transactions actually processed: $total\/$total/ ],
		[ qr/^$/ ],
		'inserts, deletes, VACUUM, searches and index checks run side by side without an error',
		{ map { ("${method}_$_\@$weights{$_}" => $scripts{$_}) } sort keys %weights });

	my $all = q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f};
	my $force = "SET imgsearch.method = '$method'; SET enable_seqscan = off; " . _settings($p{exact});
	for my $case (@cases)
	{
		my ($op, $index) = @$case;
		my $query = qq{SELECT string_agg(id::text, ',' ORDER BY id)
		               FROM (SELECT id FROM f ORDER BY v $op (SELECT q FROM (VALUES (rand_vec(32))) x(q))) s};
		like($node->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $query"), qr/Index Scan using $index on/,
			"the final $op check uses $index");
		is($node->safe_psql('postgres', "$force $query"), $node->safe_psql('postgres', $all),
			"afterwards $index holds exactly the table's rows");
		my ($ret, $out, $err) = $node->psql('postgres',
			"SELECT check_knn('$op', rand_vec(32));" . ($far ? " SELECT check_knn('$op', far_vec(32));" : ''));
		is("$ret:$err", '0:', "afterwards $index answers like a sequential scan and sort");
	}

	# And the check passes on the quiet table: every row in each index once,
	# with its vector; VACUUM leaves no dead entries.
	for my $case (@cases)
	{
		my $index = $case->[1];
		index_check_ok($node, $method, $index, 'f', "imgsearch_index_check passes on $index after the workload");
		# INDEX_CLEANUP ON: a plain VACUUM skips the indexes when few pages have dead rows
		$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) f');
		is($node->safe_psql('postgres', qq{SELECT dead_entries FROM imgsearch_index_check('$index')}), '0',
			"and after VACUUM, with no dead entries, on $index");
	}

	$node->stop;
	return;
}

1;
