-- faissflat's filter-and-refine scan over its codes (faissflat.h) returns the
-- rows, order and distances of a sequential scan and sort (imgsearch.method =
-- 'argsort'): for L2 and cosine, at 3, 512 and 4096 dimensions, for k = 1,
-- 30, 2000 and every row (no LIMIT; over 1024 exact keys the scan turns into
-- flat passes, which the 1400-row tables reach), two queries each (one held
-- out, one a stored row); after the build (NULL vectors in the table, a zero
-- vector for cosine), after inserts past the build (outside the ranges the
-- build learned), after DELETE, after VACUUM, and after inserts into the
-- slots VACUUM freed; then with outliers inserted by another backend, and
-- through cursors while rows are inserted mid-scan; then the pass over
-- 70,000 codes on two threads and on one (faissflat.scan_threads). Every
-- stage's comparisons run with the staged pass forced (faissflat.staged on:
-- a first pass over 32 coded dimensions, where the codes have more) and
-- with one pass over the whole codes (off); a 20,000-row table checks it
-- over several chunks, and the planner's choice and price.
--
-- The data and the checks are kdtree_exact.sql's (plain random vectors,
-- vectors with a CNN-like decaying spectrum, duplicates, integer grid points
-- with many ties and zero vectors, magnitudes from 1e-30 to 6e38), with
-- faissflat's own indexes; every comparison with a sort is
-- helpers/topk.psql's topk_problems (ties as sets: on tie-free data, the
-- sort's order exactly).
SET client_min_messages = warning;
-- the codes scan is on by default (faissflat.codes): said here all the same
SET faissflat.codes = on;
-- a scan that never ends would otherwise hang the suite
SET statement_timeout = '60s';
\ir helpers/topk.psql

-- tbl: the table; kind: random, spectrum or ties (the tie tables are filled
-- below); n_build rows before the index, n_insert after it; l2_opts and
-- cos_opts: the reloptions of its two indexes ('' = the defaults).
CREATE TABLE ff_tables (tbl text PRIMARY KEY, dim int, kind text, n_build int, n_insert int,
                        l2_opts text, cos_opts text);
INSERT INTO ff_tables VALUES
	('ff_r3', 3, 'random', 600, 800, '', ''),
	('ff_s3', 3, 'spectrum', 600, 800, '', ''),
	('ff_r512', 512, 'random', 300, 400, '', ''),
	('ff_s512', 512, 'spectrum', 300, 400, '', ''),
	('ff_r4096', 4096, 'random', 120, 180, '', ''),
	('ff_s4096', 4096, 'spectrum', 120, 180, '', ''),
	('ff_grid4', 4, 'ties', 300, 400, '', ''),
	('ff_dup512', 512, 'ties', 150, 200, '', ''),
	('ff_x8', 8, 'extreme', 300, 400, '', '');

-- (stages x tables x operators x (plan + queries x k x 2)) + the empty and one-row tables
SELECT plan((SELECT 5 * count(*)::int * 2 * (1 + 2 * 4 * 2 * 2) FROM ff_tables)
            + (SELECT count(*)::int * 2 * (1 + 4 * 2 * 2) FROM ff_tables WHERE kind IN ('random', 'spectrum')) + 26
            + 4 * 2 * 3 + 2 + 2 * 8 + 4 + 4 + 3 + 4 + 3 * 2 * 2 * 2 + 1 + 2);

SELECT setseed(0.3125);
-- rows 1..n_insert are loaded, row n_insert + 1 is the held-out query
CREATE TABLE ff_src AS
SELECT t.tbl, s.id, s.v FROM ff_tables t, LATERAL pg_temp.spectrum_feats(t.dim, t.n_insert + 1) s
WHERE t.kind = 'spectrum';
INSERT INTO ff_src
SELECT tbl, i, pg_temp.random_feat(dim)
FROM ff_tables, generate_series(1, n_insert + 1) i WHERE kind = 'random';
-- a zero vector: its cosine distance is NaN, which sorts after every number
UPDATE ff_src SET v = '[0,0,0]' WHERE tbl = 'ff_r3' AND id = 100;
-- ties: points of the grid {0,1,2}^4 (81 of them: every point many times,
-- many equal distances), the zero vector among them; 40 random 512-d vectors,
-- each five times. (ff_x8, extreme magnitudes, is compared like them: its
-- tiny vectors all lie at the same float distance from a big query.)
INSERT INTO ff_src
SELECT 'ff_grid4', i, (SELECT array_agg(floor(random() * 3)::real) FROM generate_series(1, 4) WHERE i > 0)::imgfeat
FROM generate_series(1, 401) i;
CREATE TEMP TABLE ff_dup_base AS SELECT j, pg_temp.random_feat(512) AS v FROM generate_series(0, 39) j;
INSERT INTO ff_src SELECT 'ff_dup512', i, v FROM generate_series(1, 200) i JOIN ff_dup_base ON j = (i * 7) % 40;
-- extreme magnitudes: each vector scaled by 10^((i % 61) - 30), every 50th
-- near the largest float (3e38): bounds near FLT_MAX and below 1e-30; rows
-- inserted after the build fall far outside the build's ranges
INSERT INTO ff_src
SELECT 'ff_x8', i, (SELECT array_agg(((random() - 0.5 + 0 * c)
                                       * CASE WHEN i % 50 = 0 THEN 6e38 ELSE power(10::float8, (i % 61) - 30) END)::real)
                    FROM generate_series(1, 8) c)::imgfeat
FROM generate_series(1, 401) i;
-- its held-out query: a new vector
INSERT INTO ff_src SELECT 'ff_dup512', 201, pg_temp.random_feat(512);

-- Query 1 is held out (not in the table), query 2 is a stored row.
CREATE TABLE ff_query AS
SELECT s.tbl, 1 AS qn, s.v AS q FROM ff_src s JOIN ff_tables t USING (tbl) WHERE s.id = t.n_insert + 1
UNION ALL
SELECT tbl, 2, v FROM ff_src WHERE id = 7;
DELETE FROM ff_src s USING ff_tables t WHERE s.tbl = t.tbl AND s.id > t.n_insert;

-- no ties in the random and spectrum tables
DO $$ BEGIN
	PERFORM pg_temp.drop_ties('ff_src', 'ff_query', 'tbl', '{<->,<=>}',
	                          $w$s.tbl IN (SELECT tbl FROM ff_tables WHERE kind IN ('random', 'spectrum'))$w$);
END $$;
-- the tie tables do have ties (else their checks would prove little)
SELECT cmp_ok((SELECT count(*) - count(DISTINCT s.v <-> q.q) FROM ff_src s JOIN ff_query q USING (tbl)
               WHERE s.tbl = 'ff_grid4' AND q.qn = 1), '>', 100::bigint, 'ff_grid4: many equal distances');
SELECT cmp_ok((SELECT count(*) - count(DISTINCT v::text) FROM ff_src WHERE tbl = 'ff_dup512'), '>', 100::bigint,
              'ff_dup512: many duplicate vectors');

-- Every query of every table (qns NULL), or only the queries qns of the
-- tables that are not tie tables. The index's answer against the sort's
-- (helpers/topk.psql's knn, with the method faissflat and argsort): the
-- distances, and the rows (on the tie-free tables the sort's, in its order).
CREATE FUNCTION pg_temp.check_stage(stage text, qns int[] DEFAULT NULL) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	t record;
	c record;
	f record;
	f_on record;
	f_off record;
	a record;
	idx text;
	what text;
	staged text;
BEGIN
	FOR t IN SELECT * FROM ff_tables WHERE qns IS NULL OR kind IN ('random', 'spectrum') ORDER BY tbl LOOP
		FOR c IN
			SELECT q.qn, q.q, o.op, o.suffix, kk.k,
			       row_number() OVER (PARTITION BY o.op ORDER BY q.qn, kk.k NULLS LAST) AS nth
			FROM ff_query q, (VALUES ('<->', 'l2'), ('<=>', 'cos')) o(op, suffix), (VALUES (1), (30), (2000), (NULL)) kk(k)
			WHERE q.tbl = t.tbl AND (qns IS NULL OR q.qn = ANY (qns))
			ORDER BY o.op, q.qn, kk.k NULLS LAST
		LOOP
			idx := t.tbl || '_' || c.suffix;
			-- the staged pass forced (where the codes have cuts: over 32 coded
			-- dimensions), and one pass
			SELECT * INTO f_on FROM pg_temp.knn(t.tbl, c.op, c.q, c.k, 'faissflat', '{"faissflat.staged": "on"}');
			SELECT * INTO f_off FROM pg_temp.knn(t.tbl, c.op, c.q, c.k, 'faissflat', '{"faissflat.staged": "off"}');
			SELECT * INTO a FROM pg_temp.knn(t.tbl, c.op, c.q, c.k, 'argsort');
			FOREACH staged IN ARRAY ARRAY['on', 'off'] LOOP
				IF staged = 'on' THEN
					f := f_on;
				ELSE
					f := f_off;
				END IF;
				what := format('%s: %s (%s, %s-d) %s query %s, k=%s, staged %s:', stage, t.tbl, t.kind, t.dim, c.op, c.qn,
				               coalesce(c.k::text, 'all'), staged);
				RETURN QUERY SELECT * FROM pg_temp.check_answer(what,
					CASE WHEN c.nth = 1 AND staged = 'on'
					     THEN format('%s: %s %s: faissflat plans an index scan using %s, argsort does not', stage, t.tbl, c.op, idx)
					END, idx, f.ids, f.dists, f.true_dists, f.plan, a.ids, a.dists, a.plan, c.k IS NULL,
					t.kind IN ('random', 'spectrum') AND qns IS NULL);
			END LOOP;
		END LOOP;
	END LOOP;
END $$;

CREATE TABLE ff_r3 (id int, v imgfeat(3));
CREATE TABLE ff_s3 (id int, v imgfeat(3));
CREATE TABLE ff_r512 (id int, v imgfeat(512));
CREATE TABLE ff_s512 (id int, v imgfeat(512));
CREATE TABLE ff_r4096 (id int, v imgfeat(4096));
CREATE TABLE ff_s4096 (id int, v imgfeat(4096));
CREATE TABLE ff_grid4 (id int, v imgfeat(4));
CREATE TABLE ff_dup512 (id int, v imgfeat(512));
CREATE TABLE ff_x8 (id int, v imgfeat(8));

DO $$ BEGIN
	PERFORM pg_temp.load_stage('ff_tables', 'ff_src', 'build');
	PERFORM pg_temp.build_indexes('ff_tables', 'faissflat', '{l2,cos}');
END $$;

SELECT * FROM pg_temp.check_stage('build');

DO $$ BEGIN PERFORM pg_temp.load_stage('ff_tables', 'ff_src', 'insert'); END $$;
SELECT * FROM pg_temp.check_stage('insert');

DELETE FROM ff_r3 WHERE id % 4 = 0;
DELETE FROM ff_s3 WHERE id % 3 = 0;
DELETE FROM ff_r512 WHERE id % 4 = 0;
DELETE FROM ff_s512 WHERE id % 4 = 1;
DELETE FROM ff_r4096 WHERE id % 4 = 0;
DELETE FROM ff_s4096 WHERE id % 2 = 0;
DELETE FROM ff_grid4 WHERE id % 4 = 0;
DELETE FROM ff_dup512 WHERE id % 3 = 0;
DELETE FROM ff_x8 WHERE id % 3 = 1;
SELECT * FROM pg_temp.check_stage('delete');

VACUUM (INDEX_CLEANUP ON) ff_r3, ff_s3, ff_r512, ff_s512, ff_r4096, ff_s4096, ff_grid4, ff_dup512, ff_x8;
SELECT * FROM pg_temp.check_stage('vacuum');

-- the deleted rows come back: into the slots VACUUM freed (their old code
-- entries are dead; the new ones are appended)
DO $$ BEGIN PERFORM pg_temp.load_stage('ff_tables', 'ff_src', 'reuse'); END $$;
SELECT * FROM pg_temp.check_stage('reuse');

-- Outliers inserted by another backend, while this one holds the projection,
-- ranges and entries in its cache: three rows far from the data (each
-- coordinate x of a stored row becomes 0.5 - 20 (x - 0.5)), and a query near
-- the first (with 19 for 20). Their codes are clamped to the ranges' ends;
-- this backend must add their entries to its copy. (Ties are
-- not ruled out for this query: compared as in the tie tables.)
CREATE EXTENSION IF NOT EXISTS dblink;
DO $$ BEGIN PERFORM pg_temp.dblink_self('ff_other'); END $$;
CREATE FUNCTION pg_temp.far(v imgfeat, f float8) RETURNS imgfeat LANGUAGE sql AS $$
	SELECT array_agg((0.5 - f * (x - 0.5))::real ORDER BY n)::imgfeat FROM unnest(v::real[]) WITH ORDINALITY u(x, n) $$;
INSERT INTO ff_query
SELECT t.tbl, 3, pg_temp.far(s.v, 19)
FROM ff_tables t, ff_src s
WHERE t.kind IN ('random', 'spectrum') AND s.tbl = t.tbl AND s.id = (SELECT min(id) FROM ff_src WHERE tbl = t.tbl AND id > 10);
DO $$ BEGIN
	PERFORM dblink_exec('ff_other', format(
		$q$INSERT INTO %I SELECT -1000 - id, (SELECT array_agg((0.5 - 20 * (x - 0.5))::real ORDER BY n)
		                                    FROM unnest(v::real[]) WITH ORDINALITY u(x, n))::imgfeat
		   FROM ff_src WHERE tbl = %L AND id > 10 ORDER BY id LIMIT 3$q$, tbl, tbl))
	FROM ff_tables WHERE kind IN ('random', 'spectrum') ORDER BY tbl;
	PERFORM dblink_disconnect('ff_other');
END $$;
-- (the outliers are there, and query 3's nearest row by L2 is one of them)
SELECT is((SELECT count(*) FROM ff_r512 WHERE id < -1000), 3::bigint, 'the other backend inserted the outliers');
SELECT * FROM pg_temp.check_stage('outliers', '{3}');

-- A scan in progress while the index changes under it (helpers/topk.psql's
-- cursor_knn): a cursor fetches the first 10 rows, then rows nearer the
-- query than any other are inserted (invisible to the cursor's snapshot; new
-- code entries) and the table is analyzed (a relcache invalidation of
-- the index), by this backend or by another one; the cursor then fetches
-- the rest. Together: what a sort returned before. (The inserts are rolled
-- back or deleted afterwards.)
DO $$ BEGIN PERFORM pg_temp.dblink_self('ff_other'); END $$;
SELECT is(concat_ws('; ', CASE WHEN r.plan !~ ('Index Scan using ' || c.tbl || '_') THEN 'not an index scan' END,
                    nullif(pg_temp.topk_problems(r.ids, r.dists, a.ids, a.dists, true), '')), '',
          format('a %s cursor on %s: rows inserted and ANALYZE by %s mid-scan change nothing',
                 op, c.tbl, CASE WHEN other THEN 'another backend' ELSE 'this one' END))
FROM (VALUES ('ff_s512', '<->'), ('ff_r4096', '<=>')) c(tbl, op)
JOIN ff_query ON ff_query.tbl = c.tbl AND qn = 1, (VALUES (false), (true)) o(other),
     LATERAL pg_temp.cursor_knn(c.tbl, op, q, CASE WHEN other THEN 'ff_other' END, '{"imgsearch.method": "faissflat", "faissflat.codes": "on"}') r,
     LATERAL pg_temp.knn(c.tbl, op, q, NULL, 'argsort') a
ORDER BY c.tbl, other;
SELECT is((SELECT count(*) FROM ff_s512 WHERE id <= -2000) + (SELECT count(*) FROM ff_r4096 WHERE id <= -2000),
          0::bigint, 'the rows inserted mid-scan are gone again');
DO $$ BEGIN PERFORM dblink_disconnect('ff_other'); END $$;

-- An index built on an empty table: no projection learned yet; it must still
-- find every vector inserted afterwards, and after REINDEX.
CREATE TABLE ff_empty (id int, v imgfeat(16));
CREATE INDEX ff_empty_l2 ON ff_empty USING faissflat (v);
CREATE INDEX ff_empty_cos ON ff_empty USING faissflat (v imgfeat_cosine_ops);
SELECT is((pg_temp.knn('ff_empty', '<->', (SELECT array_agg(1::real) FROM generate_series(1, 16))::imgfeat,
                       NULL, 'faissflat')).ids, NULL, 'an index on an empty table returns nothing');
SELECT setseed(0.7);
INSERT INTO ff_empty SELECT i, pg_temp.random_feat(16) FROM generate_series(1, 200) i;
INSERT INTO ff_empty VALUES (0, NULL);
CREATE TEMP TABLE ff_empty_q AS SELECT n, pg_temp.random_feat(16) AS q FROM generate_series(1, 2) n;
-- (random data, ties not ruled out: compared as sets)
CREATE FUNCTION pg_temp.check_same(tbl text, op text, q imgfeat, k int, what text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	f record;
	a record;
	idx text := tbl || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END;
BEGIN
	SELECT * INTO f FROM pg_temp.knn(tbl, op, q, k, 'faissflat');
	SELECT * INTO a FROM pg_temp.knn(tbl, op, q, k, 'argsort');
	RETURN NEXT is(concat_ws('; ', CASE WHEN f.plan !~ ('Index Scan using ' || idx || ' ') THEN 'not an index scan using ' || idx END,
	                         nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, k IS NULL), ''),
	                         CASE WHEN f.dists IS DISTINCT FROM f.true_dists THEN 'a distance that is not the row''s' END), '',
	               format('%s %s k=%s: an index scan, ids and distances of the sort', what, op, coalesce(k::text, 'all')));
END $$;
SELECT pg_temp.check_same('ff_empty', op, q, k, 'inserts into an index built empty:')
FROM ff_empty_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (5), (NULL)) kk(k) WHERE n = 1;
REINDEX TABLE ff_empty;
SELECT pg_temp.check_same('ff_empty', op, q, k, 'after REINDEX:')
FROM ff_empty_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (5), (NULL)) kk(k) WHERE n = 2;

-- Rescans (one index scan per outer row, each with its own query), a partial
-- index and an index on an expression.
SELECT setseed(0.3);
CREATE TABLE ff_rs (id int, v imgfeat(16));
INSERT INTO ff_rs SELECT i, pg_temp.random_feat(16) FROM generate_series(1, 2000) i;
CREATE INDEX ff_rs_l2 ON ff_rs USING faissflat (v);
CREATE INDEX ff_rs_part ON ff_rs USING faissflat (v imgfeat_cosine_ops) WHERE id % 2 = 0;
CREATE INDEX ff_rs_expr ON ff_rs USING faissflat (l2_normalize(v));
ANALYZE ff_rs;
CREATE TABLE ff_rq AS SELECT n, pg_temp.random_feat(16) AS q FROM generate_series(1, 20) n;
-- (what, query, whole: every row, no LIMIT; the ids and distances in order)
CREATE TEMP VIEW ff_rs_answers AS
SELECT 'rescans' AS what, n, false AS whole, l.ids, l.dists
FROM ff_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, v <-> ff_rq.q AS d FROM ff_rs ORDER BY v <-> ff_rq.q LIMIT 5) s) l
UNION ALL
SELECT 'partial', n, true, l.ids, l.dists
FROM ff_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, v <=> q AS d FROM ff_rs WHERE id % 2 = 0 ORDER BY v <=> q) s) l
WHERE n = 1
UNION ALL
SELECT 'expression', n, false, l.ids, l.dists
FROM ff_rq, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                     FROM (SELECT id, l2_normalize(v) <-> l2_normalize(q) AS d FROM ff_rs
                           ORDER BY l2_normalize(v) <-> l2_normalize(q) LIMIT 50) s) l
WHERE n = 2;
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines('SELECT * FROM ff_rs_answers') p)
          ~ 'Index Scan using ff_rs_l2 .*Index Scan using ff_rs_part .*Index Scan using ff_rs_expr ',
          'rescans, the partial index and the expression index are index scans');
CREATE TEMP TABLE ff_rs_index AS SELECT * FROM ff_rs_answers;
SET imgsearch.method = 'argsort';
SET enable_seqscan = on;
SELECT is(concat_ws('; ', CASE WHEN count(*) <> CASE what WHEN 'rescans' THEN 20 ELSE 1 END THEN count(*) || ' queries' END,
                    string_agg('query ' || n || ': ' || nullif(pg_temp.topk_problems(k.ids, k.dists, a.ids, a.dists, a.whole), ''),
                               '; ' ORDER BY n)),
          '', what || ': the sort''s answers (ties as sets)')
FROM ff_rs_index k JOIN ff_rs_answers a USING (what, n)
GROUP BY what ORDER BY what;
RESET imgsearch.method;
RESET enable_seqscan;

-- Many entries (many FastScan blocks, a part-filled last one, and past the
-- 10,000 entries from which the scan goes on with flat passes from the start
-- when the filter cannot pay): 12,000 64-d rows with a decaying spectrum.
-- Queries: a held-out vector (the FastScan sums leave most entries beyond
-- tau, lazy, until a consumer wants every row), a stored row, a vector far
-- from every row (every distance about the same: nothing prunes, flat
-- passes from the start) and the zero vector (NaN cosine keys: no tau); k =
-- 30, 2000 and every row, against the sort (ties as sets).
-- (spectrum_table: tbl with n rows of dim-d vectors with a decaying
-- spectrum, its L2 and cosine indexes tbl_l2 and tbl_cos, and the temporary
-- tbl_src holding the rows and one more, id n + 1, held out)
CREATE FUNCTION pg_temp.spectrum_table(tbl text, dim int, n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('CREATE TABLE %I (id int, v imgfeat(%s))', tbl, dim);
	EXECUTE format('CREATE TEMP TABLE %I AS SELECT * FROM pg_temp.spectrum_feats(%s, %s)', tbl || '_src', dim, n + 1);
	EXECUTE format('INSERT INTO %I SELECT id, v FROM %I WHERE id <= %s', tbl, tbl || '_src', n);
	EXECUTE format('CREATE INDEX %I ON %I USING faissflat (v)', tbl || '_l2', tbl);
	EXECUTE format('CREATE INDEX %I ON %I USING faissflat (v imgfeat_cosine_ops)', tbl || '_cos', tbl);
	EXECUTE format('ANALYZE %I', tbl);
END $$;
SELECT setseed(0.41);
SELECT pg_temp.spectrum_table('ff_big', 64, 12000);
CREATE TEMP TABLE ff_big_q AS
SELECT 1 AS n, v AS q FROM ff_big_src WHERE id = 12001
UNION ALL SELECT 2, v FROM ff_big_src WHERE id = 7
UNION ALL SELECT 3, pg_temp.far(v, 1000) FROM ff_big_src WHERE id = 12001
UNION ALL SELECT 4, (SELECT array_agg(0::real) FROM generate_series(1, 64))::imgfeat;
SELECT pg_temp.check_same('ff_big', op, q, k, format('12,000 rows, query %s:', n))
FROM ff_big_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (30), (2000), (NULL)) kk(k)
ORDER BY n, op, k;

-- The planner prices the codes scan (faissflat_handler.c): a pass over the
-- codes and a few exact keys per row, not a flat pass. Forced to the index,
-- an L2 and a cosine LIMIT 30 cost less than a quarter of the estimate with
-- faissflat.codes off (the flat pass's); the inner product, which has no
-- codes scan, costs the same either way.
CREATE INDEX ff_big_ip ON ff_big USING faissflat (v imgfeat_ip_ops);
CREATE FUNCTION pg_temp.total_cost(query text, codes boolean) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	PERFORM set_config('imgsearch.method', 'faissflat', true);
	PERFORM set_config('faissflat.codes', codes::text, true);
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
	PERFORM set_config('faissflat.codes', 'on', true);
	PERFORM set_config('imgsearch.method', 'auto', true);
	RETURN (plan -> 0 -> 'Plan' ->> 'Total Cost')::float8;
END $$;
SELECT cmp_ok(pg_temp.total_cost(q, true), '<', pg_temp.total_cost(q, false) / 4,
              format('%s LIMIT 30: the codes scan is priced under a quarter of the flat pass', op))
FROM (VALUES ('<->'), ('<=>')) o(op),
     LATERAL (SELECT format('SELECT id FROM ff_big ORDER BY v %s (SELECT q FROM ff_big_q WHERE n = 1) LIMIT 30', op) AS q) qq;
SELECT is(pg_temp.total_cost(q, true), pg_temp.total_cost(q, false),
          'the inner product (no codes scan): priced the same with faissflat.codes on and off')
FROM (SELECT 'SELECT id FROM ff_big ORDER BY v <#> (SELECT q FROM ff_big_q WHERE n = 1) LIMIT 30' AS q) qq;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines(
              'SELECT id FROM ff_big ORDER BY v <#> (SELECT q FROM ff_big_q WHERE n = 1) LIMIT 30') p)
          ~ 'Index Scan using ff_big_ip ', 'the inner product: an index scan using ff_big_ip');
DROP INDEX ff_big_ip;

-- The staged pass (faissflat.staged; faissflat_core.h, steps 6-8): where the
-- build's sample searches found its first cut (32 of the 64 coded
-- dimensions) leaves at most an eighth of the rows, as on this steep
-- spectrum, 'auto' takes it and it is priced below one pass over the whole
-- codes ('off').
CREATE FUNCTION pg_temp.staged_cost(query text, staged text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	PERFORM set_config('imgsearch.method', 'faissflat', true);
	PERFORM set_config('faissflat.staged', staged, true);
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
	PERFORM set_config('faissflat.staged', 'auto', true);
	PERFORM set_config('imgsearch.method', 'auto', true);
	RETURN (plan -> 0 -> 'Plan' ->> 'Total Cost')::float8;
END $$;
SELECT cmp_ok(pg_temp.staged_cost(q, 'auto'), '<', pg_temp.staged_cost(q, 'off'),
              format('%s LIMIT 30, a steep spectrum: the staged pass is priced below one pass', op))
FROM (VALUES ('<->'), ('<=>')) o(op),
     LATERAL (SELECT format('SELECT id FROM ff_big ORDER BY v %s (SELECT q FROM ff_big_q WHERE n = 1) LIMIT 30', op) AS q) qq;

-- The build's sample searches (FaissflatMeta.sample_*: LIMIT 30 from 16
-- midpoints of its sample) tell the estimate whether the codes prune. On
-- 3,000 rows of 1024 uniform random coordinates, 512 coded components leave
-- the bounds too weak: every sample search goes on with flat passes (the
-- build's DEBUG1 line: 1,024 exact distances, 100%), and so does a query.
-- Such an index is priced as it runs, the pass over the codes and then flat
-- passes: above the flat pass alone (faissflat.codes off), and above the
-- same index built without the sample (faissflat.codes off at build, then
-- on: priced as a codes scan of a few keys, as before the sample). The
-- sample searches are not scans of the index.
SELECT setseed(0.0625);
CREATE TABLE ff_wide (id int, v imgfeat(1024));
INSERT INTO ff_wide SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 1024) WHERE i > 0)::imgfeat
FROM generate_series(1, 3000) i;
ANALYZE ff_wide;
BEGIN;
CREATE INDEX ff_wide_idx ON ff_wide USING faissflat (v);
SELECT is(pg_stat_get_xact_numscans('ff_wide_idx'::regclass), 0::bigint,
          'the build''s sample searches do not count as scans of the index');
COMMIT;
-- there the staged pass's first cut leaves nearly every row: 'auto' takes one
-- pass, priced as 'off'; forced ('on'), it still gives the sort's answers
SELECT is(pg_temp.staged_cost(q, 'auto'), pg_temp.staged_cost(q, 'off'),
          '1024-d uniform: the staged pass is not taken (''auto'' priced as ''off'')')
FROM (SELECT 'SELECT id FROM ff_wide ORDER BY v <-> (SELECT v FROM ff_wide WHERE id = 7) LIMIT 30' AS q) qq;
SELECT is(concat_ws('; ', CASE WHEN f.plan !~ 'Index Scan using ff_wide_idx ' THEN 'not an index scan' END,
                    nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, false), ''),
                    CASE WHEN f.dists IS DISTINCT FROM f.true_dists THEN 'a distance that is not the row''s' END), '',
          '1024-d uniform, staged on: <-> k=30: an index scan, ids and distances of the sort')
FROM pg_temp.knn('ff_wide', '<->', (SELECT v FROM ff_wide WHERE id = 7), 30, 'faissflat', '{"faissflat.staged": "on"}') f,
     pg_temp.knn('ff_wide', '<->', (SELECT v FROM ff_wide WHERE id = 7), 30, 'argsort') a;
CREATE TEMP TABLE ff_wide_cost AS
SELECT pg_temp.total_cost('SELECT id FROM ff_wide ORDER BY v <-> (SELECT v FROM ff_wide WHERE id = 7) LIMIT 30', true) AS sampled,
       pg_temp.total_cost('SELECT id FROM ff_wide ORDER BY v <-> (SELECT v FROM ff_wide WHERE id = 7) LIMIT 30', false) AS flat;
SET faissflat.codes = off;
REINDEX INDEX ff_wide_idx;
RESET faissflat.codes;
SELECT cmp_ok(sampled, '>', flat, '1024-d uniform: the codes scan is priced above the flat pass, as it then runs flat passes')
FROM ff_wide_cost;
SELECT cmp_ok(sampled, '>', pg_temp.total_cost('SELECT id FROM ff_wide ORDER BY v <-> (SELECT v FROM ff_wide WHERE id = 7) LIMIT 30', true),
              '1024-d uniform: priced above the same index built without the sample')
FROM ff_wide_cost;
DROP TABLE ff_wide;

-- Two scans of one index open at once in one backend (two subqueries: the
-- first scan ends only with the statement), so the second cannot use the
-- arrays the backend keeps for the index's scans and gets its own; then a
-- third scan, after both ended, gets the kept ones back. Every answer: the
-- sort's (ties as sets).
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
CREATE TEMP TABLE ff_two AS
SELECT (SELECT array_agg(id ORDER BY d, id) FROM (SELECT id, v <-> q1 AS d FROM ff_big ORDER BY v <-> q1 LIMIT 30) a) AS ids1,
       (SELECT array_agg(d ORDER BY d, id) FROM (SELECT id, v <-> q1 AS d FROM ff_big ORDER BY v <-> q1 LIMIT 30) a) AS dists1,
       (SELECT array_agg(id ORDER BY d, id) FROM (SELECT id, v <-> q2 AS d FROM ff_big ORDER BY v <-> q2 LIMIT 30) b) AS ids2,
       (SELECT array_agg(d ORDER BY d, id) FROM (SELECT id, v <-> q2 AS d FROM ff_big ORDER BY v <-> q2 LIMIT 30) b) AS dists2
FROM (SELECT (SELECT q FROM ff_big_q WHERE n = 1) AS q1, (SELECT q FROM ff_big_q WHERE n = 2) AS q2) qq;
SELECT is(concat_ws('; ', nullif(pg_temp.topk_problems(t.ids1, t.dists1, a1.ids, a1.dists, false), ''),
                    nullif(pg_temp.topk_problems(t.ids2, t.dists2, a2.ids, a2.dists, false), ''),
                    nullif(pg_temp.topk_problems(f3.ids, f3.dists, a1.ids, a1.dists, false), ''),
                    CASE WHEN f3.plan !~ 'Index Scan using ff_big_l2 ' THEN 'the third scan is not an index scan' END), '',
          'two scans of one index at once, then a third: the sort''s answers')
FROM ff_two t,
     LATERAL pg_temp.knn('ff_big', '<->', (SELECT q FROM ff_big_q WHERE n = 1), 30, 'argsort') a1,
     LATERAL pg_temp.knn('ff_big', '<->', (SELECT q FROM ff_big_q WHERE n = 2), 30, 'argsort') a2,
     LATERAL pg_temp.knn('ff_big', '<->', (SELECT q FROM ff_big_q WHERE n = 1), 30, 'faissflat') f3;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines(
              'SELECT (SELECT array_agg(id) FROM (SELECT id FROM ff_big ORDER BY v <-> (SELECT q FROM ff_big_q WHERE n = 1) LIMIT 30) a), '
              '(SELECT array_agg(id) FROM (SELECT id FROM ff_big ORDER BY v <-> (SELECT q FROM ff_big_q WHERE n = 2) LIMIT 30) b)') p)
          ~ 'Index Scan using ff_big_l2 .*Index Scan using ff_big_l2 ',
          'two scans of one index at once: both index scans');
RESET imgsearch.method;
RESET enable_seqscan;

-- Threads (faissflat.scan_threads): the pass over 70,000 codes (past the
-- 65,536 below which it stays on the backend) on two threads, then on one,
-- gives the sort's answers; a cancel mid-scan on two threads, and the next
-- scan is right.
SELECT setseed(0.53);
SELECT pg_temp.spectrum_table('ff_thr', 8, 70000);
CREATE TEMP TABLE ff_thr_q AS
SELECT 1 AS n, v AS q FROM ff_thr_src WHERE id = 70001 UNION ALL SELECT 2, v FROM ff_thr_src WHERE id = 11;
SET faissflat.scan_threads = 2;
SELECT pg_temp.check_same('ff_thr', op, q, k, format('70,000 rows, 2 threads, query %s:', n))
FROM ff_thr_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (30), (2000)) kk(k) ORDER BY n, op, k;
SET faissflat.scan_threads = 1;
SELECT pg_temp.check_same('ff_thr', op, q, k, format('70,000 rows, 1 thread, query %s:', n))
FROM ff_thr_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (30), (2000)) kk(k) ORDER BY n, op, k;
SET faissflat.scan_threads = 2;
SET imgsearch.method = 'faissflat';
-- (throws_ok's WHEN OTHERS does not catch a cancel)
CREATE FUNCTION pg_temp.sqlstate_of(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN query_canceled THEN
	RETURN SQLSTATE;
END $$;
SET statement_timeout = '5ms';
SELECT is(pg_temp.sqlstate_of('SELECT count(*) FROM (SELECT id FROM ff_thr ORDER BY v <-> (SELECT q FROM ff_thr_q WHERE n = 1) '
                              'OFFSET 0) a, generate_series(1, 100000)'), '57014',
          'a scan on two threads is canceled (statement_timeout)');
SET statement_timeout = '60s';
RESET imgsearch.method;
SELECT pg_temp.check_same('ff_thr', '<->', q, 30, '70,000 rows, 2 threads, after a cancel:') FROM ff_thr_q WHERE n = 1;
RESET faissflat.scan_threads;
SELECT throws_ok($$SET faissflat.scan_threads = 0$$, '22023', NULL, 'faissflat.scan_threads: 0 is refused');
SELECT throws_ok($$SET faissflat.scan_threads = 65$$, '22023', NULL, 'faissflat.scan_threads: 65 is refused');

-- The staged pass over 20,000 rows of a steep 72-d spectrum (cuts at 32 and
-- 64 of 72 coded dimensions; 5 chunks; unit/faissflat checks its passes on
-- 1-3 threads): 'auto' takes it (priced below 'off'), and 'on', 'off' and
-- 'auto' give the sort's answers.
SELECT setseed(0.71);
SELECT pg_temp.spectrum_table('ff_stg', 72, 20000);
CREATE TEMP TABLE ff_stg_q AS
SELECT 1 AS n, v AS q FROM ff_stg_src WHERE id = 20001 UNION ALL SELECT 2, v FROM ff_stg_src WHERE id = 29;
SELECT cmp_ok(pg_temp.staged_cost('SELECT id FROM ff_stg ORDER BY v <-> (SELECT q FROM ff_stg_q WHERE n = 1) LIMIT 30', 'auto'),
              '<', pg_temp.staged_cost('SELECT id FROM ff_stg ORDER BY v <-> (SELECT q FROM ff_stg_q WHERE n = 1) LIMIT 30', 'off'),
              '20,000 rows, 72-d: the staged pass is priced below one pass');
CREATE FUNCTION pg_temp.check_staged(mode text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('faissflat.staged', mode, false);
	RETURN QUERY SELECT pg_temp.check_same('ff_stg', op, q, k, format('20,000 rows, 72-d, staged %s, query %s:', mode, n))
		FROM ff_stg_q, (VALUES ('<->'), ('<=>')) o(op), (VALUES (30), (2000)) kk(k) ORDER BY n, op, k;
	PERFORM set_config('faissflat.staged', 'auto', false);
END $$;
SELECT pg_temp.check_staged(mode) FROM (VALUES ('on'), ('off'), ('auto')) m(mode);
-- built with the staged pass off, the build cannot measure it: 'auto' keeps
-- one pass there (priced as 'off'), as on an index built before the measure
SET faissflat.staged = off;
REINDEX INDEX ff_stg_l2;
RESET faissflat.staged;
SELECT is(pg_temp.staged_cost('SELECT id FROM ff_stg ORDER BY v <-> (SELECT q FROM ff_stg_q WHERE n = 1) LIMIT 30', 'auto'),
          pg_temp.staged_cost('SELECT id FROM ff_stg ORDER BY v <-> (SELECT q FROM ff_stg_q WHERE n = 1) LIMIT 30', 'off'),
          '20,000 rows, 72-d, built with staged off (not measured): auto priced as one pass');
SELECT pg_temp.check_same('ff_stg', '<->', q, 30, '20,000 rows, 72-d, not measured, auto:') FROM ff_stg_q WHERE n = 1;

-- One row, and a NULL: the row, whatever the query.
CREATE TABLE ff_one (id int, v imgfeat(3));
INSERT INTO ff_one VALUES (1, '[1,2,3]'), (2, NULL);
CREATE INDEX ff_one_l2 ON ff_one USING faissflat (v);
CREATE INDEX ff_one_cos ON ff_one USING faissflat (v imgfeat_cosine_ops);
SELECT pg_temp.check_same('ff_one', op, q, k, 'one row:')
FROM (VALUES ('<->'), ('<=>')) o(op), (VALUES ('[1,2,3]'::imgfeat), ('[-5,0.5,9]')) qq(q), (VALUES (1)) kk(k);
SELECT is((pg_temp.knn('ff_one', '<->', '[0,0,0]', NULL, 'faissflat')).ids, '{1}', 'one row: the NULL is not returned');

SELECT * FROM finish();

DROP EXTENSION dblink;
DROP VIEW ff_rs_answers;
DROP TABLE ff_r3, ff_s3, ff_r512, ff_s512, ff_r4096, ff_s4096, ff_grid4, ff_dup512, ff_x8, ff_empty, ff_one, ff_rs, ff_rq, ff_big, ff_thr, ff_stg,
	ff_src, ff_query, ff_tables;
