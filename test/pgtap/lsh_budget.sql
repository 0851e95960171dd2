-- lsh.probes (buckets probed, nearest first) and lsh.candidates (entries
-- re-ranked exactly) bound the first round of an lsh search; a query that
-- asks for more rows than that round yields goes on exactly, returning rows
-- in order. What must hold for tiny
-- budgets, lsh.probes = 1, 2 and lsh.candidates = 1, 5, 30 and mixes, on
-- clustered 32-d and 256-d data and uniform 32-d data with many small
-- buckets, for L2, cosine and
-- inner product, with LIMIT 1, 50 and 200 (more than a budget yields): LIMIT k
-- returns exactly k rows (the tables have more), ids are distinct, each row
-- carries the operator's exact distance (recomputed from the table by id),
-- the rows come in non-decreasing distance, no row without a vector comes.
-- LIMIT ALL: the same, and past the farthest row it missed every row comes,
-- in the sort's order. (Rows never go backwards: a row a round missed below
-- the last row returned never comes, so LIMIT ALL cannot be held to every
-- row; LIMIT k, k at most 200 of 1000 to 3000 rows, is held to k rows, as
-- the method's interface promises (docs/methods.md "lsh": LIMIT n returns n rows
-- unless n nears the table's size).) Rows tied with the nearest are never
-- below a row returned before them: exact duplicates of the query, and
-- different vectors at exactly the same distance, must all come. Recall@30 against
-- a sequential scan and sort (imgsearch.method = 'argsort') is reported with
-- diag(); at the smallest budget it is below 1 (else the settings are ignored).
-- Comparisons with the sort are helpers/topk.psql's (ties as sets; recall
-- counts a row at the 30th distance).
SET client_min_messages = warning;
-- enable_seqscan = off costs the seq scans of the helper queries past
-- jit_above_cost: JIT compiling each of them would take most of the time
SET jit = off;
SET statement_timeout = '60s';
\ir helpers/topk.psql

CREATE TABLE lb_tables (tbl text PRIMARY KEY, dim int, n int, ncl int, off float8, spread float8);
-- (lb_r32: one centre and noise of width 2, i.e. uniform random in a cube)
INSERT INTO lb_tables VALUES ('lb_c32', 32, 3000, 20, 0, 0.8), ('lb_c256', 256, 1200, 12, 0.5, 1.0),
	('lb_r32', 32, 2000, 1, 0, 2.0);
CREATE TABLE lb_budgets (probes int, candidates int);
INSERT INTO lb_budgets VALUES (1, 0), (2, 0), (0, 1), (0, 5), (0, 30), (1, 1), (2, 5), (1, 30), (2, 30);

-- tables x operators x budgets x 2, the recall check, duplicates and ties: operators x budgets
SELECT plan(3 * 3 * 9 * 2 + 1 + 2 * 4 + 1 + 2 * 4);

SELECT setseed(0.1875);
-- rows 1..n are loaded, n + 1 .. n + 5 are the queries
CREATE TABLE lb_src AS
SELECT t.tbl, s.id, s.v
FROM lb_tables t, LATERAL pg_temp.cluster_feats(t.dim, t.n + 5, t.ncl, t.off, t.spread, 3, 7) s
ORDER BY t.tbl, s.id;
CREATE TABLE lb_query AS
SELECT s.tbl, s.id - t.n AS qn, s.v AS q FROM lb_src s JOIN lb_tables t USING (tbl) WHERE s.id > t.n;
DELETE FROM lb_src s USING lb_tables t WHERE s.tbl = t.tbl AND s.id > t.n;
-- no ties (the order of a sort is the one right order): a row whose distance
-- to a query equals another row's, by any operator, goes
DO $$ BEGIN PERFORM pg_temp.drop_ties('lb_src', 'lb_query', 'tbl', '{<->,<=>,<#>}'); END $$;

CREATE TABLE lb_c32 (id int, v imgfeat(32));
CREATE TABLE lb_c256 (id int, v imgfeat(256));
-- two thirds before the build, the rest after it (the search must find those too)
INSERT INTO lb_c32 SELECT id, v FROM lb_src WHERE tbl = 'lb_c32' AND id <= 2000;
INSERT INTO lb_c256 SELECT id, v FROM lb_src WHERE tbl = 'lb_c256' AND id <= 800;
INSERT INTO lb_c32 VALUES (-1, NULL), (-2, NULL);
INSERT INTO lb_c256 VALUES (-1, NULL), (-2, NULL);
-- 256 and 200 buckets of about 8 and 4 entries
CREATE INDEX lb_c32_l2 ON lb_c32 USING lsh (v) WITH (buckets = 256);
CREATE INDEX lb_c32_cos ON lb_c32 USING lsh (v imgfeat_cosine_ops) WITH (bits = 32, buckets = 256);
CREATE INDEX lb_c32_ip ON lb_c32 USING lsh (v imgfeat_ip_ops) WITH (buckets = 256);
CREATE INDEX lb_c256_l2 ON lb_c256 USING lsh (v) WITH (bits = 64, buckets = 200);
CREATE INDEX lb_c256_cos ON lb_c256 USING lsh (v imgfeat_cosine_ops) WITH (buckets = 200);
CREATE INDEX lb_c256_ip ON lb_c256 USING lsh (v imgfeat_ip_ops) WITH (bits = 256, buckets = 200);
INSERT INTO lb_c32 SELECT id, v FROM lb_src WHERE tbl = 'lb_c32' AND id > 2000 AND id <= 3000 ORDER BY id;
INSERT INTO lb_c256 SELECT id, v FROM lb_src WHERE tbl = 'lb_c256' AND id > 800 AND id <= 1200 ORDER BY id;
INSERT INTO lb_c32 VALUES (-3, NULL);
CREATE TABLE lb_r32 (id int, v imgfeat(32));
INSERT INTO lb_r32 SELECT id, v FROM lb_src WHERE tbl = 'lb_r32' AND id <= 2000;
INSERT INTO lb_r32 VALUES (-1, NULL);
CREATE INDEX lb_r32_l2 ON lb_r32 USING lsh (v) WITH (buckets = 250);
CREATE INDEX lb_r32_cos ON lb_r32 USING lsh (v imgfeat_cosine_ops) WITH (buckets = 250);
CREATE INDEX lb_r32_ip ON lb_r32 USING lsh (v imgfeat_ip_ops) WITH (buckets = 250);
ANALYZE lb_c32, lb_c256, lb_r32;

CREATE TABLE lb_recall (tbl text, op text, probes int, candidates int, recall float8);

-- One table, operator and budget: LIMIT 1, 50, 200 for the five queries
-- (helpers/topk.psql's scan_problems); LIMIT ALL for the first (and
-- tail_problems); recall@30 recorded.
CREATE FUNCTION pg_temp.check_budget(tbl text, op text, probes int, candidates int) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
	idx text := tbl || CASE op WHEN '<->' THEN '_l2' WHEN '<=>' THEN '_cos' ELSE '_ip' END;
	budget text := format('lsh.probes=%s lsh.candidates=%s', probes, candidates);
	n int;
	k int;
	c record;
	f record;
	a record;
	bad text := '';
	p text;
	hits int := 0;
BEGIN
	EXECUTE format('SELECT count(v) FROM %I', tbl) INTO n;
	FOR c IN SELECT * FROM lb_query q WHERE q.tbl = check_budget.tbl ORDER BY qn LOOP
		FOREACH k IN ARRAY ARRAY[1, 50, 200] LOOP
			SELECT * INTO f FROM pg_temp.knn(tbl, op, c.q, k, 'lsh', pg_temp.lsh_budget(probes, candidates));
			p := pg_temp.scan_problems(f.ids, f.dists, f.true_dists, f.plan, k, idx);
			IF p <> '' THEN
				bad := bad || format('query %s LIMIT %s: %s. ', c.qn, k, p);
			END IF;
		END LOOP;
		SELECT * INTO f FROM pg_temp.knn(tbl, op, c.q, 30, 'lsh', pg_temp.lsh_budget(probes, candidates));
		SELECT * INTO a FROM pg_temp.knn(tbl, op, c.q, 30, 'argsort');
		hits := hits + pg_temp.recall_hits(f.true_dists, a.dists);
	END LOOP;
	INSERT INTO lb_recall VALUES (tbl, op, probes, candidates, hits / 150.0);
	RETURN NEXT is(bad, '', format('%s %s %s, LIMIT 1, 50, 200: that many distinct rows, each with its distance, in non-decreasing order',
	                               tbl, op, budget));
	SELECT * INTO f FROM pg_temp.knn(tbl, op, (SELECT q FROM lb_query q WHERE q.tbl = check_budget.tbl AND qn = 1),
	                                 NULL, 'lsh', pg_temp.lsh_budget(probes, candidates));
	SELECT * INTO a FROM pg_temp.knn(tbl, op, (SELECT q FROM lb_query q WHERE q.tbl = check_budget.tbl AND qn = 1),
	                                 NULL, 'argsort');
	RETURN NEXT is(concat_ws('; ', nullif(pg_temp.scan_problems(f.ids, f.dists, f.true_dists, f.plan, NULL, idx), ''),
	                         nullif(pg_temp.tail_problems(f.ids, f.dists, a.ids, a.dists), '')), '',
	               format('%s %s %s, LIMIT ALL: distinct rows in non-decreasing order, each with its distance; the sort''s rows past the farthest one missed',
	                      tbl, op, budget));
END $$;

SELECT pg_temp.check_budget(tbl, op, probes, candidates)
FROM (VALUES (1, 'lb_c32'), (2, 'lb_c256'), (3, 'lb_r32')) t(tn, tbl), (VALUES (1, '<->'), (2, '<=>'), (3, '<#>')) o(opn, op),
     lb_budgets b
ORDER BY tn, opn, probes, candidates;

SELECT diag(format('recall@30 %s %s lsh.probes=%s lsh.candidates=%s: %s', tbl, op, probes, candidates,
                   round(recall::numeric, 3)))
FROM lb_recall ORDER BY tbl, op, probes, candidates;

-- The budget does something: two buckets of about 8 of 3000 rows, 30
-- candidates, cannot give the true 30 nearest for every query. (A budget of
-- fewer than 16 candidates returns none of them: the scan is exact.)
SELECT cmp_ok((SELECT recall FROM lb_recall WHERE tbl = 'lb_c32' AND op = '<->' AND probes = 2 AND candidates = 30),
              '<', 1::float8, 'lsh.probes = 2, lsh.candidates = 30 on lb_c32 is approximate: recall@30 below 1');

-- Exact duplicates: 40 distinct 32-d vectors, each 25 times (1000 rows);
-- the query is one of them. Its 25 copies are at distance 0 (cosine: the
-- same value for each), nothing is nearer, so no copy can be "below" a row
-- returned before it: with any budget, LIMIT 25 returns the 25 copies and
-- LIMIT 60 returns 60 distinct rows in order.
SELECT setseed(0.625);
CREATE TABLE lb_dup_base AS
SELECT j, pg_temp.random_feat(32, -0.5) AS v FROM generate_series(0, 39) j;
CREATE TABLE lb_dup (id int, v imgfeat(32));
INSERT INTO lb_dup SELECT i, v FROM generate_series(1, 1000) i JOIN lb_dup_base ON j = (i * 7) % 40 ORDER BY i;
CREATE INDEX lb_dup_l2 ON lb_dup USING lsh (v) WITH (buckets = 100);
CREATE INDEX lb_dup_cos ON lb_dup USING lsh (v imgfeat_cosine_ops) WITH (buckets = 100);
ANALYZE lb_dup;
CREATE FUNCTION pg_temp.check_dup(op text, probes int, candidates int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	idx text := 'lb_dup' || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END;
	c record;
	f record;
	bad text := '';
	p text;
BEGIN
	FOR c IN SELECT j, v FROM lb_dup_base WHERE j IN (0, 13, 27) ORDER BY j LOOP
		SELECT * INTO f FROM pg_temp.knn('lb_dup', op, c.v, 25, 'lsh', pg_temp.lsh_budget(probes, candidates));
		p := pg_temp.scan_problems(f.ids, f.dists, f.true_dists, f.plan, 25, idx);
		IF p = '' AND EXISTS (SELECT FROM unnest(f.ids) i JOIN lb_dup d ON d.id = i WHERE d.v::text <> c.v::text) THEN
			p := 'a row that is not a copy of the query';
		END IF;
		IF p <> '' THEN
			bad := bad || format('copies of base %s, LIMIT 25: %s. ', c.j, p);
		END IF;
		SELECT * INTO f FROM pg_temp.knn('lb_dup', op, c.v, 60, 'lsh', pg_temp.lsh_budget(probes, candidates));
		p := pg_temp.scan_problems(f.ids, f.dists, f.true_dists, f.plan, 60, idx);
		IF p <> '' THEN
			bad := bad || format('copies of base %s, LIMIT 60: %s. ', c.j, p);
		END IF;
	END LOOP;
	RETURN bad;
END $$;
SELECT is(pg_temp.check_dup(op, probes, candidates), '',
          format('lb_dup %s lsh.probes=%s lsh.candidates=%s: LIMIT 25 gives the 25 copies of the query, LIMIT 60 60 distinct rows in order',
                 op, probes, candidates))
FROM (VALUES (1, '<->'), (2, '<=>')) o(opn, op), (VALUES (1, 1), (1, 0), (0, 1), (2, 5)) b(probes, candidates)
ORDER BY opn, probes, candidates;

-- Ties between different vectors (integer coordinates: the distances are
-- exact): 64 rows q + e_i and q - e_i, all at L2 distance 1 from q = (5, ..,
-- 5), nearer than any other row; 100 permutations of (0, 1, .., 31), all
-- with inner product 496 with (1, .., 1), more than any other row's; 800
-- other rows. The tied rows are the nearest: none can be below a row
-- returned before it, so with any budget LIMIT 64 (L2) and LIMIT 100 (inner
-- product) return exactly the tied rows.
SELECT setseed(0.8125);
CREATE TABLE lb_tie (id int, grp text, v imgfeat(32));
INSERT INTO lb_tie
SELECT 100 * s + i, 'l2', (SELECT array_agg(CASE WHEN c = i THEN 5 + s ELSE 5 END::real ORDER BY c) FROM generate_series(1, 32) c)::imgfeat
FROM generate_series(1, 32) i, (VALUES (-1), (1)) ss(s);
INSERT INTO lb_tie
SELECT 1000 + n, 'ip', (SELECT array_agg(w::real ORDER BY random() + 0 * n) FROM generate_series(0, 31) w)::imgfeat
FROM generate_series(1, 100) n;
INSERT INTO lb_tie
SELECT 2000 + n, 'other', v FROM (
	SELECT n, (SELECT array_agg(floor(random() * 13)::real) FROM generate_series(1, 32) WHERE n > 0)::imgfeat AS v
	FROM generate_series(1, 800) n) o
WHERE v <-> (SELECT array_agg(5::real) FROM generate_series(1, 32))::imgfeat > 1.5;
CREATE INDEX lb_tie_l2 ON lb_tie USING lsh (v) WITH (buckets = 100);
CREATE INDEX lb_tie_ip ON lb_tie USING lsh (v imgfeat_ip_ops) WITH (buckets = 100);
ANALYZE lb_tie;
CREATE FUNCTION pg_temp.check_tie(op text, probes int, candidates int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	q imgfeat := (SELECT array_agg(CASE op WHEN '<->' THEN 5 ELSE 1 END::real) FROM generate_series(1, 32))::imgfeat;
	want_grp text := CASE op WHEN '<->' THEN 'l2' ELSE 'ip' END;
	k int;
	f record;
	p text;
BEGIN
	SELECT count(*) INTO k FROM lb_tie t WHERE t.grp = want_grp;
	SELECT * INTO f FROM pg_temp.knn('lb_tie', op, q, k, 'lsh', pg_temp.lsh_budget(probes, candidates));
	p := pg_temp.scan_problems(f.ids, f.dists, f.true_dists, f.plan, k, 'lb_tie_' || want_grp);
	IF p = '' AND EXISTS (SELECT FROM unnest(f.ids) i JOIN lb_tie t ON t.id = i WHERE t.grp <> want_grp) THEN
		p := 'a row not of the tied group';
	END IF;
	RETURN p;
END $$;
SELECT cmp_ok((SELECT count(DISTINCT v <-> (SELECT array_agg(5::real) FROM generate_series(1, 32))::imgfeat)
               FROM lb_tie WHERE grp = 'l2')
              + (SELECT count(DISTINCT v <#> (SELECT array_agg(1::real) FROM generate_series(1, 32))::imgfeat)
                 FROM lb_tie WHERE grp = 'ip'), '=', 2::bigint, 'lb_tie: the tied groups do tie (one distance each)');
SELECT is(pg_temp.check_tie(op, probes, candidates), '',
          format('lb_tie %s lsh.probes=%s lsh.candidates=%s: LIMIT (group size) returns exactly the tied nearest group',
                 op, probes, candidates))
FROM (VALUES (1, '<->'), (2, '<#>')) o(opn, op), (VALUES (1, 1), (1, 0), (0, 1), (2, 5)) b(probes, candidates)
ORDER BY opn, probes, candidates;

SELECT * FROM finish();

DROP TABLE lb_c32, lb_c256, lb_r32, lb_src, lb_query, lb_tables, lb_budgets, lb_recall, lb_dup, lb_dup_base, lb_tie;
