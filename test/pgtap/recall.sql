-- imgsearch_recall and imgsearch_tune against recall computed here, by other
-- means: the ids of the k nearest from a sequential scan and sort
-- (imgsearch.method = 'argsort') intersected with the ids an index scan
-- returns (its plan checked), on seeded clustered data without ties.
-- recall is 1 for faissflat, kdtree at max_leaves = 0 and lsh at 0/0; at
-- small budgets it equals the recall computed here over every row (a sample
-- of more queries than rows is every row); a tuned setting meets its target
-- on the function's sample, is cheaper than exact, and, applied, meets it
-- (less a margin) on another sample; the caller's settings come back
-- unchanged; statement_timeout stops a long call; every bad argument is
-- refused with its SQLSTATE.
SET client_min_messages = warning;
SET jit = off;
SET statement_timeout = '120s';
\ir helpers/topk.psql
SELECT plan(40);

SELECT setseed(0.3);
-- 3000 rows of 32 dims around 20 centres (uniform noise), one NULL; rc_small:
-- 400 rows of 16 dims around 8 centres.
CREATE TABLE rc_centre AS
SELECT d, j, c, 2 * random() - 1 AS m
FROM (VALUES (32, 20), (16, 8)) t(d, ncl), generate_series(0, ncl - 1) j, generate_series(1, d) c;
CREATE TABLE rc_src AS
SELECT ce.d, i AS id, array_agg((ce.m + 0.8 * (random() - 0.5))::real ORDER BY ce.c)::imgfeat AS v
FROM generate_series(1, 3000) i JOIN rc_centre ce ON ce.j = i % CASE ce.d WHEN 32 THEN 20 ELSE 8 END
WHERE ce.d = 32 OR i <= 400
GROUP BY ce.d, i;
CREATE TABLE rc_ff (id int, v imgfeat);
CREATE TABLE rc_kd (id int, v imgfeat);
CREATE TABLE rc_lsh (id int, v imgfeat);
CREATE TABLE rc_small (id int, v imgfeat);
INSERT INTO rc_ff SELECT id, v FROM rc_src WHERE d = 32;
INSERT INTO rc_kd SELECT id, v FROM rc_src WHERE d = 32;
INSERT INTO rc_lsh SELECT id, v FROM rc_src WHERE d = 32;
INSERT INTO rc_small SELECT id, v FROM rc_src WHERE d = 16;
INSERT INTO rc_kd VALUES (-1, NULL);
INSERT INTO rc_lsh VALUES (-1, NULL);
CREATE INDEX rc_ff_idx ON rc_ff USING faissflat (v);
-- about 190 leaves of 16
CREATE INDEX rc_kd_idx ON rc_kd USING kdtree (v) WITH (dims = 8, leaf_size = 16);
CREATE INDEX rc_lsh_idx ON rc_lsh USING lsh (v) WITH (buckets = 300);
CREATE INDEX rc_small_idx ON rc_small USING lsh (v imgfeat_cosine_ops) WITH (buckets = 50);
ANALYZE rc_ff, rc_kd, rc_lsh, rc_small;

-- recall@k of idx's scans under the settings in force for the query vectors
-- qs: of the exact rows, the share returned, where a row returned at the
-- exact k-th distance counts (helpers/topk.psql's recall_hits: rows tied
-- with the k-th may be other rows); raises if the plan is not an index scan
-- using idx.
CREATE FUNCTION pg_temp.my_recall(tbl text, op text, idx text, method text, qs imgfeat[], k int) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE
	q imgfeat;
	exact float8[];
	got float8[];
	plan text;
	hits bigint := 0;
	total bigint := 0;
	query text := format('SELECT array_agg(d) FROM (SELECT v %s $1 AS d FROM %I WHERE v IS NOT NULL ORDER BY v %s $1 LIMIT $2) s',
	                     op, tbl, op);
BEGIN
	FOREACH q IN ARRAY qs LOOP
		PERFORM set_config('imgsearch.method', 'argsort', true);
		PERFORM set_config('enable_seqscan', 'on', true);
		EXECUTE query INTO exact USING q, k;
		PERFORM set_config('imgsearch.method', method, true);
		PERFORM set_config('enable_seqscan', 'off', true);
		IF plan IS NULL THEN
			FOR plan IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query USING q, k LOOP
				EXIT WHEN plan ~ 'Index Scan';
			END LOOP;
			IF plan !~ ('Index Scan using ' || idx || ' ') THEN
				RAISE EXCEPTION 'not an index scan using %: %', idx, plan;
			END IF;
		END IF;
		EXECUTE query INTO got USING q, k;
		hits := hits + pg_temp.recall_hits(got, exact);
		total := total + cardinality(exact);
	END LOOP;
	PERFORM set_config('imgsearch.method', 'auto', true);
	PERFORM set_config('enable_seqscan', 'on', true);
	RETURN hits::float8 / total;
END $$;

-- every non-NULL vector of tbl
CREATE FUNCTION pg_temp.all_rows(tbl text) RETURNS imgfeat[] LANGUAGE plpgsql AS $$
DECLARE
	r imgfeat[];
BEGIN
	EXECUTE format('SELECT array_agg(v ORDER BY id) FROM %I WHERE v IS NOT NULL', tbl) INTO r;
	RETURN r;
END $$;

-- a sample of 100 rows, other than the functions' (another seed)
SELECT setseed(0.7);
CREATE TABLE rc_fresh AS SELECT array_agg(v) AS qs FROM (SELECT v FROM rc_src WHERE d = 32 ORDER BY random() LIMIT 100) s;

-- exact indexes: recall 1
SELECT is((SELECT recall FROM imgsearch_recall('rc_ff_idx')), 1::float8, 'faissflat: recall@30 is 1');
SELECT is((SELECT row(method, setting, sample_size)::text FROM imgsearch_recall('rc_ff_idx', 20, 5)),
          '(faissflat,,20)', 'faissflat: method, no setting, 20 queries');
SELECT is((SELECT recall FROM imgsearch_recall('rc_kd_idx')), 1::float8, 'kdtree at max_leaves = 0: recall@30 is 1');
SET lsh.probes = 0;
SET lsh.candidates = 0;
SELECT is((SELECT recall FROM imgsearch_recall('rc_lsh_idx', 50, 100)), 1::float8, 'lsh at 0/0: recall@100 is 1');
SET lsh.error_bound = 1.5;
SELECT is((SELECT setting FROM imgsearch_recall('rc_lsh_idx', 1, 1)),
          'SET lsh.probes = 0; SET lsh.candidates = 0; SET lsh.error_bound = 1.5',
          'lsh: setting is the budget in force, its error bound too (0.4)');
RESET lsh.probes;
RESET lsh.candidates;
RESET lsh.error_bound;
SELECT ok((SELECT index_median_ms > 0 AND index_p95_ms >= index_median_ms
                  AND exact_median_ms > 0 AND exact_p95_ms >= exact_median_ms
           FROM imgsearch_recall('rc_kd_idx', 20)), 'latencies: positive, p95 >= median');

-- approximate budgets: the recall over every row (queries > rows) is the one
-- computed here
SET kdtree.max_leaves = 2;
SELECT is((SELECT row(sample_size, round(recall::numeric, 12))::text FROM imgsearch_recall('rc_kd_idx', 10000, 10)),
          row(3000, round(pg_temp.my_recall('rc_kd', '<->', 'rc_kd_idx', 'kdtree', pg_temp.all_rows('rc_kd'), 10)::numeric, 12))::text,
          'kdtree at max_leaves = 2: recall@10 over every row is the one computed here');
SELECT cmp_ok((SELECT recall FROM imgsearch_recall('rc_kd_idx', 100, 30)), '<', 0.9::float8,
              'kdtree at max_leaves = 2: recall@30 below 0.9 (the data needs a budget)');
RESET kdtree.max_leaves;
SET lsh.probes = 1;
SET lsh.candidates = 70;
SELECT is((SELECT row(sample_size, round(recall::numeric, 12))::text FROM imgsearch_recall('rc_small_idx', 10000, 20)),
          row(400, round(pg_temp.my_recall('rc_small', '<=>', 'rc_small_idx', 'lsh', pg_temp.all_rows('rc_small'), 20)::numeric, 12))::text,
          'lsh (cosine) at 1/70: recall@20 over every row is the one computed here');
SELECT cmp_ok((SELECT recall FROM imgsearch_recall('rc_small_idx', 10000, 20)), '<', 1::float8,
              'lsh at 1/70: recall below 1 (the comparison above is not of exact answers)');
RESET lsh.probes;
RESET lsh.candidates;

-- the caller's settings come back
SET kdtree.max_leaves = 3;
SET lsh.probes = 5;
SET lsh.candidates = 77;
SET lsh.error_bound = 3;
SET enable_seqscan = off;
SET imgsearch.method = 'argsort';
SET jit = on;
CREATE TABLE rc_tuned AS
SELECT 'kdtree' AS method, * FROM imgsearch_tune('rc_kd_idx', 0.9)
UNION ALL
SELECT 'lsh', * FROM imgsearch_tune('rc_lsh_idx', 0.9)
UNION ALL
SELECT 'faissflat', * FROM imgsearch_tune('rc_ff_idx', 0.9);
SELECT is(concat_ws(' ', current_setting('kdtree.max_leaves'), current_setting('lsh.probes'),
                    current_setting('lsh.candidates'), current_setting('lsh.error_bound'), current_setting('enable_seqscan'),
                    current_setting('imgsearch.method'), current_setting('jit'), current_setting('search_path')),
          '3 5 77 3 off argsort on "$user", public', 'imgsearch_tune leaves the caller''s settings as they were');
SELECT is((SELECT substring(setting FROM '; SET lsh\.error_bound = (.*)$') FROM rc_tuned WHERE method = 'lsh'), '3',
          'lsh tuned under the caller''s error bound, which its setting names');
SELECT is((SELECT setting FROM imgsearch_recall('rc_kd_idx', 5)), 'SET kdtree.max_leaves = 3', 'imgsearch_recall measures the caller''s budget');
SELECT is(concat_ws(' ', current_setting('kdtree.max_leaves'), current_setting('enable_seqscan'),
                    current_setting('imgsearch.method'), current_setting('jit')),
          '3 off argsort on', 'imgsearch_recall leaves the caller''s settings as they were');
RESET kdtree.max_leaves;
RESET lsh.probes;
RESET lsh.candidates;
RESET lsh.error_bound;
RESET enable_seqscan;
RESET imgsearch.method;
SET jit = off;

-- tuned settings: the target met on the sample, cheaper than exact, and met
-- (less 0.05) on another sample once applied
SELECT diag(format('tuned %s: %s, recall %s, %s ms (exact %s ms)', method, setting, round(recall::numeric, 3),
                   round(index_median_ms::numeric, 3), round(exact_median_ms::numeric, 3)))
FROM rc_tuned ORDER BY method;
SELECT cmp_ok((SELECT recall FROM rc_tuned WHERE method = 'kdtree'), '>=', 0.9::float8, 'kdtree tuned: recall >= 0.9 on its sample');
-- (a budget's rows past its first round are exact, so one leaf may already
-- meet the target for k = 30: any budget above 0 is a tuned one)
SELECT ok((SELECT substring(setting FROM '^SET kdtree\.max_leaves = (\d+)$')::int > 0 FROM rc_tuned WHERE method = 'kdtree'),
          'kdtree tuned: a budget, not 0 (exact)');
SELECT cmp_ok((SELECT recall FROM rc_tuned WHERE method = 'lsh'), '>=', 0.9::float8, 'lsh tuned: recall >= 0.9 on its sample');
SELECT ok((SELECT substring(setting FROM '^SET lsh\.probes = (\d+); SET lsh\.candidates = \d+; SET lsh\.error_bound = [0-9.]+$')::int > 0 FROM rc_tuned WHERE method = 'lsh'),
          'lsh tuned: probes above 0 (not exact)');
SELECT is((SELECT row(setting, recall)::text FROM rc_tuned WHERE method = 'faissflat'), '(,1)',
          'faissflat tuned: no setting, recall 1');

CREATE FUNCTION pg_temp.recall_applied(tbl text, method text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	r float8;
BEGIN
	EXECUTE (SELECT setting FROM rc_tuned t WHERE t.method = recall_applied.method);
	r := pg_temp.my_recall(tbl, '<->', tbl || '_idx', method, (SELECT qs FROM rc_fresh), 30);
	RESET kdtree.max_leaves;
	RESET lsh.probes;
	RESET lsh.candidates;
	RESET lsh.error_bound;
	RETURN r;
END $$;
SELECT cmp_ok(pg_temp.recall_applied('rc_kd', 'kdtree'), '>=', 0.85::float8, 'kdtree tuned, applied: recall@30 >= 0.85 on another sample');
SELECT cmp_ok(pg_temp.recall_applied('rc_lsh', 'lsh'), '>=', 0.85::float8, 'lsh tuned, applied: recall@30 >= 0.85 on another sample');
SELECT cmp_ok((SELECT recall FROM imgsearch_tune('rc_kd_idx', 1)), '=', 1::float8, 'kdtree tuned for 1: recall 1');

-- statement_timeout stops them (uncanceled, these take seconds: 3000 exact
-- sorts; the lsh ladder up to exact): query_canceled (57014), which pgTAP's
-- throws_ok cannot catch, raised soon after the timeout
CREATE FUNCTION pg_temp.canceled_after(query text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
BEGIN
	EXECUTE query;
	RETURN NULL;
EXCEPTION WHEN query_canceled THEN
	RETURN extract(epoch FROM clock_timestamp() - t0);
END $$;
SET statement_timeout = '50ms';
SELECT cmp_ok(pg_temp.canceled_after($$SELECT * FROM imgsearch_recall('rc_kd_idx', 10000, 100)$$), '<', 2::float8,
              'statement_timeout = 50ms cancels imgsearch_recall (57014) within 2 s');
SELECT cmp_ok(pg_temp.canceled_after($$SELECT * FROM imgsearch_tune('rc_lsh_idx', 1, 10000, 100)$$), '<', 2::float8,
              'statement_timeout = 50ms cancels imgsearch_tune (57014) within 2 s');
SET statement_timeout = '120s';

-- refusals
CREATE INDEX rc_btree ON rc_ff (id);
CREATE INDEX rc_expr ON rc_ff USING faissflat ((l2_normalize(v)));
CREATE INDEX rc_partial ON rc_ff USING faissflat (v) WHERE id > 0;
CREATE TABLE rc_empty (id int, v imgfeat);
INSERT INTO rc_empty VALUES (1, NULL);
CREATE INDEX rc_empty_idx ON rc_empty USING kdtree (v);
CREATE TABLE rc_part (id int, v imgfeat) PARTITION BY RANGE (id);
CREATE TABLE rc_part1 PARTITION OF rc_part FOR VALUES FROM (0) TO (10);
CREATE INDEX rc_part_idx ON rc_part USING faissflat (v);
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_btree')$$, '42809', '"rc_btree" is a btree index, not an imgsearch index', 'a btree index');
SELECT throws_ok($$SELECT * FROM imgsearch_tune('rc_btree')$$, '42809', NULL, 'imgsearch_tune: a btree index');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_ff')$$, '42809', '"rc_ff" is not an index', 'a table');
SELECT throws_ok($$SELECT * FROM imgsearch_recall(0)$$, '42P01', NULL, 'no such relation');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_expr')$$, '0A000', NULL, 'an expression index');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_partial')$$, '0A000', NULL, 'a partial index');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_part_idx')$$, '0A000', NULL, 'a partitioned index');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_empty_idx')$$, '55000',
                 'table rc_empty has no row with a non-NULL v, nothing to sample', 'a table without vectors');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_kd_idx', 0)$$, '22023', NULL, 'queries 0');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_kd_idx', 10001)$$, '22023', NULL, 'queries 10001');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_kd_idx', 10, 0)$$, '22023', NULL, 'k 0');
SELECT throws_ok($$SELECT * FROM imgsearch_recall('rc_kd_idx', NULL)$$, '22004', NULL, 'queries NULL');
SELECT throws_ok($$SELECT * FROM imgsearch_tune('rc_kd_idx', 0)$$, '22023', NULL, 'target_recall 0');
SELECT throws_ok($$SELECT * FROM imgsearch_tune('rc_kd_idx', 1.01)$$, '22023', NULL, 'target_recall 1.01');
SELECT throws_ok($$SELECT * FROM imgsearch_tune('rc_kd_idx', 'NaN')$$, '22023', NULL, 'target_recall NaN');
-- of two like indexes the planner uses one: the other is refused (rc_expr
-- and rc_partial are not used for ORDER BY v <-> q)
CREATE INDEX rc_ff_idx2 ON rc_ff USING faissflat (v);
CREATE FUNCTION pg_temp.sqlstate_of(idx regclass) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM imgsearch_recall(idx, 3, 3);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
SELECT is((SELECT array_agg(pg_temp.sqlstate_of(i) ORDER BY pg_temp.sqlstate_of(i))::text
           FROM unnest(ARRAY['rc_ff_idx', 'rc_ff_idx2']::regclass[]) i),
          '{55000,ok}', 'two faissflat indexes on one column: the one the planner does not use is refused');

SELECT * FROM finish();

DROP TABLE rc_centre, rc_src, rc_ff, rc_kd, rc_lsh, rc_small, rc_fresh, rc_tuned, rc_empty, rc_part;
