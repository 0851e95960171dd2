-- kdtree (kdtree.max_leaves = 0, the default) returns the rows, order and
-- distances of a sequential scan and sort (imgsearch.method = 'argsort'): for
-- L2 and cosine, at 3, 512 and 4096 dimensions, for k = 1, 30 and every row,
-- two queries each (one held out, one a stored row); after the build (NULL
-- vectors in the table, a zero vector for cosine), after inserts past the
-- build, after DELETE, after VACUUM, and after inserts into the slots VACUUM
-- freed; then with outliers inserted by another backend, and through cursors
-- while rows are inserted mid-scan.
--
-- Two kinds of data: plain random vectors, and vectors with a decaying
-- spectrum like CNN features (a mean, three random directions weighted 1,
-- 1/2, 1/3, and noise whose scale decays as 1/rank over a random permutation
-- of the coordinates), which is what the PCA projection is for. Small
-- reloptions (dims = 8, leaf_size = 4 and the like) make the trees deep even
-- with a few hundred rows; one index keeps the defaults.
--
-- In those tables rows whose distance to a query ties another row's (by the
-- SQL operators) are dropped before anything is loaded, so a sort has one
-- right order and the index must reproduce it exactly, ids and distances to
-- the bit. Separate tables hold exact duplicates and many ties (integer grid
-- points, repeated 512-d vectors, several zero vectors): there the distances
-- must be equal to the bit and the ids distinct, and the same set as the
-- sort's below the k-th distance (at the k-th, any of the tied rows may come).
-- Last, an index built on an empty table (it scans every vector until
-- REINDEX), and a table of one row. Every comparison with a sort is
-- helpers/topk.psql's topk_problems (ties as sets: on tie-free data, the
-- sort's order exactly).
SET client_min_messages = warning;
-- a scan that never ends would otherwise hang the suite
SET statement_timeout = '60s';
\ir helpers/topk.psql

-- tbl: the table; kind: random, spectrum or ties (the tie tables are filled
-- below); n_build rows before the index, n_insert after it; l2_opts and
-- cos_opts: the reloptions of its two indexes ('' = the defaults).
CREATE TABLE kd_tables (tbl text PRIMARY KEY, dim int, kind text, n_build int, n_insert int,
                        l2_opts text, cos_opts text);
INSERT INTO kd_tables VALUES
	('kd_r3', 3, 'random', 600, 800, 'dims = 8, leaf_size = 4', 'dims = 2, leaf_size = 1'),
	('kd_s3', 3, 'spectrum', 600, 800, 'dims = 1, leaf_size = 3', 'dims = 3, leaf_size = 4'),
	('kd_r512', 512, 'random', 300, 400, 'dims = 8, leaf_size = 4', 'dims = 16, leaf_size = 2'),
	('kd_s512', 512, 'spectrum', 300, 400, 'dims = 8, leaf_size = 4', ''),
	('kd_r4096', 4096, 'random', 120, 180, 'dims = 8, leaf_size = 4', 'dims = 4, leaf_size = 8'),
	('kd_s4096', 4096, 'spectrum', 120, 180, 'dims = 32, leaf_size = 4', 'dims = 8, leaf_size = 1'),
	('kd_grid4', 4, 'ties', 300, 400, 'dims = 2, leaf_size = 3', 'dims = 3, leaf_size = 1'),
	('kd_dup512', 512, 'ties', 150, 200, 'dims = 8, leaf_size = 4', 'dims = 8, leaf_size = 2'),
	('kd_x8', 8, 'extreme', 300, 400, 'dims = 4, leaf_size = 2', 'dims = 4, leaf_size = 2');

-- (stages x tables x operators x (plan + queries x k x 2)) + the empty and one-row tables
SELECT plan((SELECT 5 * count(*)::int * 2 * (1 + 2 * 3 * 2) FROM kd_tables)
            + (SELECT count(*)::int * 2 * (1 + 3 * 2) FROM kd_tables WHERE kind IN ('random', 'spectrum')) + 26);

SELECT setseed(0.3125);
-- rows 1..n_insert are loaded, row n_insert + 1 is the held-out query
CREATE TABLE kd_src AS
SELECT t.tbl, s.id, s.v FROM kd_tables t, LATERAL pg_temp.spectrum_feats(t.dim, t.n_insert + 1) s
WHERE t.kind = 'spectrum';
INSERT INTO kd_src
SELECT tbl, i, pg_temp.random_feat(dim)
FROM kd_tables, generate_series(1, n_insert + 1) i WHERE kind = 'random';
-- a zero vector: its cosine distance is NaN, which sorts after every number
UPDATE kd_src SET v = '[0,0,0]' WHERE tbl = 'kd_r3' AND id = 100;
-- ties: points of the grid {0,1,2}^4 (81 of them: every point many times,
-- many equal distances), the zero vector among them; 40 random 512-d vectors,
-- each five times. (kd_x8, extreme magnitudes, is compared like them: its
-- tiny vectors all lie at the same float distance from a big query.)
INSERT INTO kd_src
SELECT 'kd_grid4', i, (SELECT array_agg(floor(random() * 3)::real) FROM generate_series(1, 4) WHERE i > 0)::imgfeat
FROM generate_series(1, 401) i;
CREATE TEMP TABLE kd_dup_base AS SELECT j, pg_temp.random_feat(512) AS v FROM generate_series(0, 39) j;
INSERT INTO kd_src SELECT 'kd_dup512', i, v FROM generate_series(1, 200) i JOIN kd_dup_base ON j = (i * 7) % 40;
-- extreme magnitudes: each vector scaled by 10^((i % 61) - 30), every 50th
-- near the largest float (3e38): bounds near FLT_MAX and below 1e-30; rows
-- inserted after the build fall far outside the build's boxes
INSERT INTO kd_src
SELECT 'kd_x8', i, (SELECT array_agg(((random() - 0.5 + 0 * c)
                                       * CASE WHEN i % 50 = 0 THEN 6e38 ELSE power(10::float8, (i % 61) - 30) END)::real)
                    FROM generate_series(1, 8) c)::imgfeat
FROM generate_series(1, 401) i;
-- its held-out query: a new vector
INSERT INTO kd_src SELECT 'kd_dup512', 201, pg_temp.random_feat(512);

-- Query 1 is held out (not in the table), query 2 is a stored row.
CREATE TABLE kd_query AS
SELECT s.tbl, 1 AS qn, s.v AS q FROM kd_src s JOIN kd_tables t USING (tbl) WHERE s.id = t.n_insert + 1
UNION ALL
SELECT tbl, 2, v FROM kd_src WHERE id = 7;
DELETE FROM kd_src s USING kd_tables t WHERE s.tbl = t.tbl AND s.id > t.n_insert;

-- no ties in the random and spectrum tables
DO $$ BEGIN
	PERFORM pg_temp.drop_ties('kd_src', 'kd_query', 'tbl', '{<->,<=>}',
	                          $w$s.tbl IN (SELECT tbl FROM kd_tables WHERE kind IN ('random', 'spectrum'))$w$);
END $$;
-- the tie tables do have ties (else their checks would prove little)
SELECT cmp_ok((SELECT count(*) - count(DISTINCT s.v <-> q.q) FROM kd_src s JOIN kd_query q USING (tbl)
               WHERE s.tbl = 'kd_grid4' AND q.qn = 1), '>', 100::bigint, 'kd_grid4: many equal distances');
SELECT cmp_ok((SELECT count(*) - count(DISTINCT v::text) FROM kd_src WHERE tbl = 'kd_dup512'), '>', 100::bigint,
              'kd_dup512: many duplicate vectors');

-- Every query of every table (qns NULL), or only the queries qns of the
-- tables that are not tie tables. The index's answer against the sort's
-- (helpers/topk.psql's knn, with the method kdtree and argsort): the
-- distances, and the rows (on the tie-free tables the sort's, in its order).
CREATE FUNCTION pg_temp.check_stage(stage text, qns int[] DEFAULT NULL) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	t record;
	c record;
	f record;
	a record;
	idx text;
	what text;
BEGIN
	FOR t IN SELECT * FROM kd_tables WHERE qns IS NULL OR kind IN ('random', 'spectrum') ORDER BY tbl LOOP
		FOR c IN
			SELECT q.qn, q.q, o.op, o.suffix, kk.k,
			       row_number() OVER (PARTITION BY o.op ORDER BY q.qn, kk.k NULLS LAST) AS nth
			FROM kd_query q, (VALUES ('<->', 'l2'), ('<=>', 'cos')) o(op, suffix), (VALUES (1), (30), (NULL)) kk(k)
			WHERE q.tbl = t.tbl AND (qns IS NULL OR q.qn = ANY (qns))
			ORDER BY o.op, q.qn, kk.k NULLS LAST
		LOOP
			idx := t.tbl || '_' || c.suffix;
			SELECT * INTO f FROM pg_temp.knn(t.tbl, c.op, c.q, c.k, 'kdtree');
			SELECT * INTO a FROM pg_temp.knn(t.tbl, c.op, c.q, c.k, 'argsort');
			what := format('%s: %s (%s, %s-d) %s query %s, k=%s:', stage, t.tbl, t.kind, t.dim, c.op, c.qn,
			               coalesce(c.k::text, 'all'));
			RETURN QUERY SELECT * FROM pg_temp.check_answer(what,
				CASE WHEN c.nth = 1
				     THEN format('%s: %s %s: kdtree plans an index scan using %s, argsort does not', stage, t.tbl, c.op, idx)
				END, idx, f.ids, f.dists, f.true_dists, f.plan, a.ids, a.dists, a.plan, c.k IS NULL,
				t.kind IN ('random', 'spectrum') AND qns IS NULL);
		END LOOP;
	END LOOP;
END $$;

CREATE TABLE kd_r3 (id int, v imgfeat(3));
CREATE TABLE kd_s3 (id int, v imgfeat(3));
CREATE TABLE kd_r512 (id int, v imgfeat(512));
CREATE TABLE kd_s512 (id int, v imgfeat(512));
CREATE TABLE kd_r4096 (id int, v imgfeat(4096));
CREATE TABLE kd_s4096 (id int, v imgfeat(4096));
CREATE TABLE kd_grid4 (id int, v imgfeat(4));
CREATE TABLE kd_dup512 (id int, v imgfeat(512));
CREATE TABLE kd_x8 (id int, v imgfeat(8));

DO $$ BEGIN
	PERFORM pg_temp.load_stage('kd_tables', 'kd_src', 'build');
	PERFORM pg_temp.build_indexes('kd_tables', 'kdtree', '{l2,cos}');
END $$;

SELECT * FROM pg_temp.check_stage('build');

DO $$ BEGIN PERFORM pg_temp.load_stage('kd_tables', 'kd_src', 'insert'); END $$;
SELECT * FROM pg_temp.check_stage('insert');

DELETE FROM kd_r3 WHERE id % 4 = 0;
DELETE FROM kd_s3 WHERE id % 3 = 0;
DELETE FROM kd_r512 WHERE id % 4 = 0;
DELETE FROM kd_s512 WHERE id % 4 = 1;
DELETE FROM kd_r4096 WHERE id % 4 = 0;
DELETE FROM kd_s4096 WHERE id % 2 = 0;
DELETE FROM kd_grid4 WHERE id % 4 = 0;
DELETE FROM kd_dup512 WHERE id % 3 = 0;
DELETE FROM kd_x8 WHERE id % 3 = 1;
SELECT * FROM pg_temp.check_stage('delete');

VACUUM (INDEX_CLEANUP ON) kd_r3, kd_s3, kd_r512, kd_s512, kd_r4096, kd_s4096, kd_grid4, kd_dup512, kd_x8;
SELECT * FROM pg_temp.check_stage('vacuum');

-- the deleted rows come back: into the slots VACUUM freed (their old leaf
-- entries are dead; the new ones go wherever the rows descend)
DO $$ BEGIN PERFORM pg_temp.load_stage('kd_tables', 'kd_src', 'reuse'); END $$;
SELECT * FROM pg_temp.check_stage('reuse');

-- Outliers inserted by another backend, while this one holds the tree and
-- its boxes in its cache: three rows far from the data (each coordinate x of
-- a stored row becomes 0.5 - 20 (x - 0.5)), and a query near the first (with
-- 19 for 20). Their leaves' boxes grow; this backend must see it. (Ties are
-- not ruled out for this query: compared as in the tie tables.)
CREATE EXTENSION IF NOT EXISTS dblink;
DO $$ BEGIN PERFORM pg_temp.dblink_self('kd_other'); END $$;
CREATE FUNCTION pg_temp.far(v imgfeat, f float8) RETURNS imgfeat LANGUAGE sql AS $$
	SELECT array_agg((0.5 - f * (x - 0.5))::real ORDER BY n)::imgfeat FROM unnest(v::real[]) WITH ORDINALITY u(x, n) $$;
INSERT INTO kd_query
SELECT t.tbl, 3, pg_temp.far(s.v, 19)
FROM kd_tables t, kd_src s
WHERE t.kind IN ('random', 'spectrum') AND s.tbl = t.tbl AND s.id = (SELECT min(id) FROM kd_src WHERE tbl = t.tbl AND id > 10);
DO $$ BEGIN
	PERFORM dblink_exec('kd_other', format(
		$q$INSERT INTO %I SELECT -1000 - id, (SELECT array_agg((0.5 - 20 * (x - 0.5))::real ORDER BY n)
		                                    FROM unnest(v::real[]) WITH ORDINALITY u(x, n))::imgfeat
		   FROM kd_src WHERE tbl = %L AND id > 10 ORDER BY id LIMIT 3$q$, tbl, tbl))
	FROM kd_tables WHERE kind IN ('random', 'spectrum') ORDER BY tbl;
	PERFORM dblink_disconnect('kd_other');
END $$;
-- (the outliers are there, and query 3's nearest row by L2 is one of them)
SELECT is((SELECT count(*) FROM kd_r512 WHERE id < -1000), 3::bigint, 'the other backend inserted the outliers');
SELECT * FROM pg_temp.check_stage('outliers', '{3}');

-- A scan in progress while the index changes under it (helpers/topk.psql's
-- cursor_knn): a cursor fetches the first 10 rows, then rows nearer the
-- query than any other are inserted (invisible to the cursor's snapshot; the
-- leaves' boxes grow) and the table is analyzed (a relcache invalidation of
-- the index), by this backend or by another one; the cursor then fetches
-- the rest. Together: what a sort returned before. (The inserts are rolled
-- back or deleted afterwards.)
DO $$ BEGIN PERFORM pg_temp.dblink_self('kd_other'); END $$;
SELECT is(concat_ws('; ', CASE WHEN r.plan !~ ('Index Scan using ' || c.tbl || '_') THEN 'not an index scan' END,
                    nullif(pg_temp.topk_problems(r.ids, r.dists, a.ids, a.dists, true), '')), '',
          format('a %s cursor on %s: rows inserted and ANALYZE by %s mid-scan change nothing',
                 op, c.tbl, CASE WHEN other THEN 'another backend' ELSE 'this one' END))
FROM (VALUES ('kd_s512', '<->'), ('kd_r4096', '<=>')) c(tbl, op)
JOIN kd_query ON kd_query.tbl = c.tbl AND qn = 1, (VALUES (false), (true)) o(other),
     LATERAL pg_temp.cursor_knn(c.tbl, op, q, CASE WHEN other THEN 'kd_other' END, '{"imgsearch.method": "kdtree"}') r,
     LATERAL pg_temp.knn(c.tbl, op, q, NULL, 'argsort') a
ORDER BY c.tbl, other;
SELECT is((SELECT count(*) FROM kd_s512 WHERE id <= -2000) + (SELECT count(*) FROM kd_r4096 WHERE id <= -2000),
          0::bigint, 'the rows inserted mid-scan are gone again');
DO $$ BEGIN PERFORM dblink_disconnect('kd_other'); END $$;

-- An index built on an empty table: no projection learned yet; it must still
-- find every vector inserted afterwards, and after REINDEX.
CREATE TABLE kd_empty (id int, v imgfeat(16));
CREATE INDEX kd_empty_l2 ON kd_empty USING kdtree (v) WITH (dims = 4, leaf_size = 2);
CREATE INDEX kd_empty_cos ON kd_empty USING kdtree (v imgfeat_cosine_ops);
SELECT is((pg_temp.knn('kd_empty', '<->', (SELECT array_agg(1::real) FROM generate_series(1, 16))::imgfeat,
                       NULL, 'kdtree')).ids, NULL, 'an index on an empty table returns nothing');
SELECT setseed(0.7);
INSERT INTO kd_empty SELECT i, pg_temp.random_feat(16) FROM generate_series(1, 200) i;
INSERT INTO kd_empty VALUES (0, NULL);
CREATE TEMP TABLE kd_empty_q AS SELECT n, pg_temp.random_feat(16) AS q FROM generate_series(1, 2) n;
-- (random data, ties not ruled out: compared as sets)
CREATE FUNCTION pg_temp.check_same(tbl text, op text, q imgfeat, k int, what text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	f record;
	a record;
	idx text := tbl || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END;
BEGIN
	SELECT * INTO f FROM pg_temp.knn(tbl, op, q, k, 'kdtree');
	SELECT * INTO a FROM pg_temp.knn(tbl, op, q, k, 'argsort');
	RETURN NEXT is(concat_ws('; ', CASE WHEN f.plan !~ ('Index Scan using ' || idx || ' ') THEN 'not an index scan using ' || idx END,
	                         nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, k IS NULL), ''),
	                         CASE WHEN f.dists IS DISTINCT FROM f.true_dists THEN 'a distance that is not the row''s' END), '',
	               format('%s %s k=%s: an index scan, ids and distances of the sort', what, op, coalesce(k::text, 'all')));
END $$;
SELECT pg_temp.check_same('kd_empty', op, q, k, 'inserts into an index built empty:')
FROM kd_empty_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (5), (NULL)) kk(k) WHERE n = 1;
REINDEX TABLE kd_empty;
SELECT pg_temp.check_same('kd_empty', op, q, k, 'after REINDEX:')
FROM kd_empty_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (5), (NULL)) kk(k) WHERE n = 2;

-- Rescans (one index scan per outer row, each with its own query), a partial
-- index and an index on an expression.
SELECT setseed(0.3);
CREATE TABLE kd_rs (id int, v imgfeat(16));
INSERT INTO kd_rs SELECT i, pg_temp.random_feat(16) FROM generate_series(1, 2000) i;
CREATE INDEX kd_rs_l2 ON kd_rs USING kdtree (v) WITH (dims = 4, leaf_size = 8);
CREATE INDEX kd_rs_part ON kd_rs USING kdtree (v imgfeat_cosine_ops) WITH (dims = 4, leaf_size = 8) WHERE id % 2 = 0;
CREATE INDEX kd_rs_expr ON kd_rs USING kdtree (l2_normalize(v)) WITH (dims = 8, leaf_size = 4);
ANALYZE kd_rs;
CREATE TABLE kd_rq AS SELECT n, pg_temp.random_feat(16) AS q FROM generate_series(1, 20) n;
-- (what, query, whole: every row, no LIMIT; the ids and distances in order)
CREATE TEMP VIEW kd_rs_answers AS
SELECT 'rescans' AS what, n, false AS whole, l.ids, l.dists
FROM kd_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, v <-> kd_rq.q AS d FROM kd_rs ORDER BY v <-> kd_rq.q LIMIT 5) s) l
UNION ALL
SELECT 'partial', n, true, l.ids, l.dists
FROM kd_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, v <=> q AS d FROM kd_rs WHERE id % 2 = 0 ORDER BY v <=> q) s) l
WHERE n = 1
UNION ALL
SELECT 'expression', n, false, l.ids, l.dists
FROM kd_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, l2_normalize(v) <-> l2_normalize(q) AS d FROM kd_rs
                           ORDER BY l2_normalize(v) <-> l2_normalize(q) LIMIT 50) s) l
WHERE n = 2;
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines('SELECT * FROM kd_rs_answers') p)
          ~ 'Index Scan using kd_rs_l2 .*Index Scan using kd_rs_part .*Index Scan using kd_rs_expr ',
          'rescans, the partial index and the expression index are index scans');
CREATE TEMP TABLE kd_rs_kdtree AS SELECT * FROM kd_rs_answers;
SET imgsearch.method = 'argsort';
SET enable_seqscan = on;
SELECT is(concat_ws('; ', CASE WHEN count(*) <> CASE what WHEN 'rescans' THEN 20 ELSE 1 END THEN count(*) || ' queries' END,
                    string_agg('query ' || n || ': ' || nullif(pg_temp.topk_problems(k.ids, k.dists, a.ids, a.dists, a.whole), ''),
                               '; ' ORDER BY n)),
          '', what || ': the sort''s answers (ties as sets)')
FROM kd_rs_kdtree k JOIN kd_rs_answers a USING (what, n)
GROUP BY what ORDER BY what;
RESET imgsearch.method;
RESET enable_seqscan;

-- One row, and a NULL: the row, whatever the query.
CREATE TABLE kd_one (id int, v imgfeat(3));
INSERT INTO kd_one VALUES (1, '[1,2,3]'), (2, NULL);
CREATE INDEX kd_one_l2 ON kd_one USING kdtree (v);
CREATE INDEX kd_one_cos ON kd_one USING kdtree (v imgfeat_cosine_ops) WITH (dims = 1, leaf_size = 1);
SELECT pg_temp.check_same('kd_one', op, q, k, 'one row:')
FROM (VALUES ('<->'), ('<=>')) o(op), (VALUES ('[1,2,3]'::imgfeat), ('[-5,0.5,9]')) qq(q), (VALUES (1)) kk(k);
SELECT is((pg_temp.knn('kd_one', '<->', '[0,0,0]', NULL, 'kdtree')).ids, '{1}', 'one row: the NULL is not returned');

SELECT * FROM finish();

DROP EXTENSION dblink;
DROP VIEW kd_rs_answers;
DROP TABLE kd_r3, kd_s3, kd_r512, kd_s512, kd_r4096, kd_s4096, kd_grid4, kd_dup512, kd_x8, kd_empty, kd_one, kd_rs, kd_rq,
	kd_src, kd_query, kd_tables;
