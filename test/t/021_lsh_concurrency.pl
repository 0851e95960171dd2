# lsh under concurrency: clients insert, delete and VACUUM while others
# search and run imgsearch_index_check (which must pass while rows come and
# go; some inserts fall far outside the data the hash was built on). Every
# search compares, in one REPEATABLE READ snapshot, the lsh index's top 10
# with lsh.probes = 0 and lsh.candidates = 0 (exact) against a sequential
# scan's and fails on any difference; with a small budget (lsh.probes = 2,
# lsh.candidates = 5) the answer must be distinct rows in non-decreasing
# distance (how many: lsh_budget.sql). No client may fail, and at the end each index holds exactly the
# table's rows, its exact answers are the sort's, and after VACUUM it has no
# dead entries.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('concurrency');
$node->init;
$node->append_conf('postgresql.conf', "max_connections = 30\njit = off");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	CREATE FUNCTION rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
	  'SELECT array_agg((random() - 0.5)::real)::imgfeat FROM generate_series(1, dim)';
	-- far from the build's data: inserts land in buckets the build left empty
	CREATE FUNCTION far_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
	  'SELECT array_agg((6 * random() - 3)::real)::imgfeat FROM generate_series(1, dim)';
	CREATE TABLE f (id serial, v imgfeat(32));
	INSERT INTO f (v) SELECT rand_vec(32) FROM generate_series(1, 2000);
	CREATE INDEX f_l2 ON f USING lsh (v) WITH (buckets = 250);
	CREATE INDEX f_cos ON f USING lsh (v imgfeat_cosine_ops) WITH (bits = 16, buckets = 500);
	CREATE INDEX f_ip ON f USING lsh (v imgfeat_ip_ops) WITH (buckets = 125);

	-- the index's answer and a sort's, in the caller's snapshot
	CREATE FUNCTION check_knn(op text, q imgfeat) RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		query text := format('SELECT string_agg(id || '':'' || d, '','') FROM
		                      (SELECT id, v %s $1 AS d FROM f ORDER BY v %s $1 LIMIT 10) s', op, op);
		shape text := format('SELECT concat_ws(''; '',
		                             CASE WHEN count(*) NOT BETWEEN 1 AND 10 THEN count(*) || '' rows'' END,
		                             CASE WHEN count(DISTINCT id) < count(*) THEN ''an id twice'' END,
		                             CASE WHEN NOT bool_and(prev IS NULL OR prev <= d) THEN ''out of order'' END)
		                      FROM (SELECT id, d, lag(d) OVER (ORDER BY n) AS prev
		                            FROM (SELECT id, d, row_number() OVER () AS n
		                                  FROM (SELECT id, v %s $1 AS d FROM f ORDER BY v %s $1 LIMIT 10) r) s) t',
		                     op, op);
		via_index text;
		via_sort text;
		bad text;
	BEGIN
		SET LOCAL imgsearch.method = 'lsh';
		SET LOCAL enable_seqscan = off;
		SET LOCAL lsh.probes = 0;
		SET LOCAL lsh.candidates = 0;
		EXECUTE query INTO via_index USING q;
		SET LOCAL lsh.probes = 2;
		SET LOCAL lsh.candidates = 5;
		EXECUTE shape INTO bad USING q;
		SET LOCAL imgsearch.method = 'argsort';
		SET LOCAL enable_seqscan = on;
		EXECUTE query INTO via_sort USING q;
		IF via_index IS DISTINCT FROM via_sort THEN
			RAISE EXCEPTION 'index: %, sort: %', via_index, via_sort;
		END IF;
		IF bad <> '' THEN
			RAISE EXCEPTION 'with lsh.probes = 2, lsh.candidates = 5: %', bad;
		END IF;
	END $$;
});

for my $case ([ '<->', 'f_l2' ], [ '<=>', 'f_cos' ], [ '<#>', 'f_ip' ])
{
	my ($op, $index) = @$case;
	like($node->safe_psql('postgres', qq{
			SET imgsearch.method = 'lsh';
			EXPLAIN (COSTS OFF) SELECT id FROM f ORDER BY v $op (SELECT rand_vec(32)) LIMIT 10}),
		qr/Index Scan using $index on/, "$op searches use $index");
}
# the check would prove nothing if the searches inside it did not use the index
{
	my ($ret, $out, $err) = $node->psql('postgres', q{
		LOAD 'auto_explain';
		SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on;
		SET auto_explain.log_level = notice;
		SELECT check_knn('<#>', rand_vec(32));
	});
	like("$ret\n$err", qr/^0\n.*Index Scan using f_ip on f.*Index Scan using f_ip on f.*Seq Scan on f/s,
		'check_knn runs the lsh index scan twice, then a sequential scan');
}

$node->pgbench(
	'--no-vacuum --client=8 --jobs=2 --transactions=150',
	0,
	[ qr/number of transactions actually processed: 1200\/1200/ ],
	[ qr/^$/ ],
	'inserts, deletes, VACUUM, searches and index checks run side by side without an error',
	{
		'lsh_insert@4' => q{
			INSERT INTO f (v) SELECT rand_vec(32) FROM generate_series(1, 5);
		},
		'lsh_insert_far@2' => q{
			INSERT INTO f (v) SELECT far_vec(32) FROM generate_series(1, 3);
		},
		'lsh_delete@1' => q{
			DELETE FROM f WHERE id IN (SELECT (random() * (SELECT max(id) FROM f))::int FROM generate_series(1, 5));
		},
		'lsh_update@1' => q{
			UPDATE f SET v = rand_vec(32) WHERE id = (random() * (SELECT max(id) FROM f))::int;
		},
		'lsh_vacuum@1' => q{
			VACUUM f;
		},
		'lsh_check@1' => q{
			SELECT imgsearch_index_check('f_l2'); SELECT imgsearch_index_check('f_cos'); SELECT imgsearch_index_check('f_ip');
		},
		'lsh_search@4' => q{
			BEGIN ISOLATION LEVEL REPEATABLE READ;
			SELECT check_knn('<->', rand_vec(32));
			SELECT check_knn('<=>', rand_vec(32));
			SELECT check_knn('<#>', rand_vec(32));
			SELECT check_knn('<->', far_vec(32));
			SELECT check_knn('<#>', far_vec(32));
			COMMIT;
		}
	});

my $all = q{SELECT string_agg(id::text, ',' ORDER BY id) FROM f};
my $force = q{SET imgsearch.method = 'lsh'; SET enable_seqscan = off; SET lsh.probes = 0; SET lsh.candidates = 0;};
for my $case ([ '<->', 'f_l2' ], [ '<=>', 'f_cos' ], [ '<#>', 'f_ip' ])
{
	my ($op, $index) = @$case;
	my $query = qq{SELECT string_agg(id::text, ',' ORDER BY id)
	               FROM (SELECT id FROM f ORDER BY v $op (SELECT q FROM (VALUES (rand_vec(32))) x(q))) s};
	like($node->safe_psql('postgres', "$force EXPLAIN (COSTS OFF) $query"), qr/Index Scan using $index on/,
		"the final $op check uses $index");
	is($node->safe_psql('postgres', "$force $query"), $node->safe_psql('postgres', $all),
		"afterwards $index holds exactly the table's rows");
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT check_knn('$op', rand_vec(32)); SELECT check_knn('$op', far_vec(32))");
	is("$ret:$err", '0:', "afterwards $index answers like a sequential scan and sort");
}

# And the check passes on the quiet table: every row in each index once, with
# its vector; VACUUM leaves no dead entries.
for my $index ('f_l2', 'f_cos', 'f_ip')
{
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SELECT heap_rows = (SELECT count(v) FROM f) FROM imgsearch_index_check('$index')});
	is("$ret:$out:$err", '0:t:', "imgsearch_index_check passes on $index after the workload");
	# INDEX_CLEANUP ON: a plain VACUUM skips the indexes when few pages have dead rows
	$node->safe_psql('postgres', 'VACUUM (INDEX_CLEANUP ON) f');
	is($node->safe_psql('postgres', qq{SELECT dead_entries FROM imgsearch_index_check('$index')}), '0',
		"and after VACUUM, with no dead entries, on $index");
}

$node->stop;
done_testing();
