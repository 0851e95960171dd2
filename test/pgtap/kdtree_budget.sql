-- kdtree.max_leaves > 0 makes a kdtree scan approximate: at most that many
-- leaves are opened before rows are emitted. What must still hold, for
-- max_leaves = 1, 4 and 16, L2 and cosine, on random and decaying-spectrum
-- data with deep trees: LIMIT k returns exactly k rows (the tables have more),
-- ids are distinct, and the rows come in non-decreasing exact distance (the operator computed on each row; the scan
-- sets no recheck, so PostgreSQL returns them in the index's order). Recall@k
-- against a sequential scan and sort (imgsearch.method = 'argsort') is
-- reported with diag(); max_leaves = 0 (the default) and a budget larger than
-- the tree give the sort's answers exactly, ids and distances.
-- LIMIT ALL cannot return every row (rows in non-decreasing order and all of
-- them would be the exact answer): after the budget's rows the scan goes on
-- exactly, so the rows it misses all lie below some distance D, and every row
-- farther than D comes, in the sort's order.
SET client_min_messages = warning;
SET statement_timeout = '60s';
SELECT plan(2 * 2 * (3 * 3 + 2 * 2) + 1);

SELECT setseed(0.0625);
-- kb_s256: 256-d decaying spectrum (a mean, three random directions weighted
-- 1, 1/2, 1/3, noise scaled 1/rank over a random permutation of the
-- coordinates); kb_r32: 32-d uniform random. 2000 rows each, 2 NULLs; rows
-- 1..2000 are loaded, 2001..2005 are the queries.
CREATE TABLE kb_basis AS
SELECT c, random() - 0.5 AS b1, random() - 0.5 AS b2, random() - 0.5 AS b3,
       1.0 / row_number() OVER (ORDER BY random()) AS scale
FROM generate_series(1, 256) c;
CREATE TABLE kb_coef AS
SELECT i AS id, random() - 0.5 AS g1, random() - 0.5 AS g2, random() - 0.5 AS g3
FROM generate_series(1, 2005) i;
CREATE TABLE kb_src AS
SELECT 'kb_s256' AS tbl, k.id,
       array_agg((0.5 + k.g1 * b.b1 + k.g2 * b.b2 / 2 + k.g3 * b.b3 / 3 + (random() - 0.5) * b.scale)::real
                 ORDER BY b.c)::imgfeat AS v
FROM kb_coef k, kb_basis b GROUP BY k.id;
INSERT INTO kb_src
SELECT 'kb_r32', i, (SELECT array_agg(random()::real) FROM generate_series(1, 32) WHERE i > 0)::imgfeat
FROM generate_series(1, 2005) i;

CREATE TABLE kb_s256 (id int, v imgfeat(256));
CREATE TABLE kb_r32 (id int, v imgfeat(32));
INSERT INTO kb_s256 SELECT id, v FROM kb_src WHERE tbl = 'kb_s256' AND id <= 2000;
INSERT INTO kb_r32 SELECT id, v FROM kb_src WHERE tbl = 'kb_r32' AND id <= 2000;
INSERT INTO kb_s256 VALUES (-1, NULL), (-2, NULL);
INSERT INTO kb_r32 VALUES (-1, NULL), (-2, NULL);
-- about 250 leaves of 8 and 125 of 16
CREATE INDEX kb_s256_l2 ON kb_s256 USING kdtree (v) WITH (dims = 16, leaf_size = 8);
CREATE INDEX kb_s256_cos ON kb_s256 USING kdtree (v imgfeat_cosine_ops) WITH (dims = 16, leaf_size = 8);
CREATE INDEX kb_r32_l2 ON kb_r32 USING kdtree (v) WITH (dims = 8, leaf_size = 16);
CREATE INDEX kb_r32_cos ON kb_r32 USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 16);
ANALYZE kb_s256, kb_r32;
CREATE TABLE kb_query AS SELECT tbl, id - 2000 AS qn, v AS q FROM kb_src WHERE id > 2000;

CREATE FUNCTION pg_temp.explain_lines(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || query;
END $$;

-- One search: ids and distances in the order returned; the distance is the
-- operator on the row, also recomputed from the table by id (both must agree:
-- the row returned is the row whose distance it is); and the plan.
CREATE FUNCTION pg_temp.knn(tbl text, op text, q imgfeat, k int, method text, max_leaves int,
                            OUT ids int[], OUT dists float8[], OUT true_dists float8[], OUT plan text)
LANGUAGE plpgsql AS $$
DECLARE
	query text := format('SELECT id, v %s %L::imgfeat AS d FROM %I ORDER BY v %s %L::imgfeat LIMIT %s',
	                     op, q, tbl, op, q, coalesce(k::text, 'ALL'));
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	PERFORM set_config('enable_seqscan', (method = 'argsort')::text, true);
	PERFORM set_config('kdtree.max_leaves', max_leaves::text, true);
	SELECT string_agg(p, E'\n') INTO plan FROM pg_temp.explain_lines(query) p;
	EXECUTE format('SELECT array_agg(s.id ORDER BY s.n), array_agg(s.d ORDER BY s.n),
	                       array_agg(t.v %s %L::imgfeat ORDER BY s.n)
	                FROM (SELECT id, d, row_number() OVER () AS n FROM (%s) r) s
	                LEFT JOIN %I t ON t.id = s.id', op, q, query, tbl)
		INTO ids, dists, true_dists;
	PERFORM set_config('kdtree.max_leaves', '0', true);
END $$;

-- What is wrong with one approximate answer ('' if nothing): the count, an id
-- twice, a distance that is not the row's, a distance below the previous one,
-- or a plan that is not the kdtree index.
CREATE FUNCTION pg_temp.problems(ids int[], dists float8[], true_dists float8[], plan text, want int, idx text)
RETURNS text LANGUAGE sql AS $$
	SELECT concat_ws('; ',
		CASE WHEN coalesce(cardinality(ids), 0) <> want
		     THEN format('%s rows, not %s', coalesce(cardinality(ids), 0), want) END,
		CASE WHEN (SELECT count(DISTINCT i) FROM unnest(ids) i) <> cardinality(ids)
		     THEN 'an id twice' END,
		CASE WHEN dists IS DISTINCT FROM true_dists
		     THEN 'a distance that is not the row''s' END,
		CASE WHEN EXISTS (SELECT FROM generate_subscripts(dists, 1) i
		                  WHERE i > 1 AND NOT dists[i - 1] <= dists[i])
		     THEN 'distances out of order' END,
		CASE WHEN plan !~ ('Index Scan using ' || idx || ' ')
		     THEN 'not an index scan using ' || idx END)
$$;

-- What is wrong with a budget scan of every row against the sort's (ids and
-- distances, NULL vectors last): D, the largest distance of a row it missed;
-- its rows farther than D must be the sort's rows farther than D, in order.
CREATE FUNCTION pg_temp.tail_problems(ids int[], dists float8[], all_ids int[], all_dists float8[])
RETURNS text LANGUAGE sql AS $$
	WITH s AS (SELECT i, d FROM unnest(all_ids, all_dists) u(i, d) WHERE d IS NOT NULL),
	     missed AS (SELECT max(d) AS dmax FROM s WHERE i <> ALL (ids)),
	     mine AS (SELECT array_agg(i ORDER BY n) AS ids FROM unnest(ids, dists) WITH ORDINALITY u(i, d, n), missed
	              WHERE dmax IS NULL OR d > dmax),
	     theirs AS (SELECT array_agg(i ORDER BY n) AS ids FROM unnest(all_ids, all_dists) WITH ORDINALITY u(i, d, n), missed
	                WHERE d IS NOT NULL AND (dmax IS NULL OR d > dmax))
	SELECT CASE WHEN mine.ids IS DISTINCT FROM theirs.ids
	            THEN format('past %s: %s rows, the sort''s %s', missed.dmax,
	                        coalesce(cardinality(mine.ids), 0), coalesce(cardinality(theirs.ids), 0))
	            ELSE '' END
	FROM mine, theirs, missed
$$;

CREATE TABLE kb_recall (tbl text, op text, max_leaves int, k int, recall float8);

-- For one table, operator and budget: for k = 10 and 30, over the five
-- queries, every answer right in shape, recall recorded; LIMIT ALL on the
-- first query: every row once, in order.
CREATE FUNCTION pg_temp.check_budget(tbl text, op text, max_leaves int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	idx text := tbl || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END;
	n int;
	k int;
	c record;
	f record;
	a record;
	bad text;
	hits int;
BEGIN
	EXECUTE format('SELECT count(v) FROM %I', tbl) INTO n;
	FOREACH k IN ARRAY ARRAY[10, 30] LOOP
		bad := '';
		hits := 0;
		FOR c IN SELECT * FROM kb_query q WHERE q.tbl = check_budget.tbl ORDER BY qn LOOP
			SELECT * INTO f FROM pg_temp.knn(tbl, op, c.q, k, 'kdtree', max_leaves);
			SELECT * INTO a FROM pg_temp.knn(tbl, op, c.q, k, 'argsort', 0);
			IF pg_temp.problems(f.ids, f.dists, f.true_dists, f.plan, k, idx) <> '' THEN
				bad := bad || format('query %s: %s. ', c.qn, pg_temp.problems(f.ids, f.dists, f.true_dists, f.plan, k, idx));
			END IF;
			hits := hits + (SELECT count(*) FROM unnest(f.ids) i WHERE i = ANY (a.ids));
		END LOOP;
		INSERT INTO kb_recall VALUES (tbl, op, max_leaves, k, hits / (5.0 * k));
		RETURN NEXT is(bad, '', format('%s %s max_leaves=%s LIMIT %s: %s rows, distinct, each with its distance, in non-decreasing order',
		                               tbl, op, max_leaves, k, k));
	END LOOP;
	SELECT * INTO f FROM pg_temp.knn(tbl, op, (SELECT q FROM kb_query q WHERE q.tbl = check_budget.tbl AND qn = 1),
	                                 NULL, 'kdtree', max_leaves);
	SELECT * INTO a FROM pg_temp.knn(tbl, op, (SELECT q FROM kb_query q WHERE q.tbl = check_budget.tbl AND qn = 1),
	                                 NULL, 'argsort', 0);
	RETURN NEXT is(pg_temp.problems(f.ids, f.dists, f.true_dists, f.plan, cardinality(f.ids), idx)
	               || pg_temp.tail_problems(f.ids, f.dists, a.ids, a.dists), '',
	               format('%s %s max_leaves=%s LIMIT ALL: distinct rows in non-decreasing order; the sort''s rows past the farthest one missed',
	                      tbl, op, max_leaves));
END $$;

-- The sort's answers exactly, ids and distances, for the five queries.
CREATE FUNCTION pg_temp.check_exact(tbl text, op text, max_leaves int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	idx text := tbl || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END;
	k int;
	c record;
	f record;
	a record;
	bad text;
BEGIN
	FOREACH k IN ARRAY ARRAY[30, NULL] LOOP
		bad := '';
		FOR c IN SELECT * FROM kb_query q WHERE q.tbl = check_exact.tbl ORDER BY qn LOOP
			SELECT * INTO f FROM pg_temp.knn(tbl, op, c.q, k, 'kdtree', max_leaves);
			SELECT * INTO a FROM pg_temp.knn(tbl, op, c.q, k, 'argsort', 0);
			IF f.plan !~ ('Index Scan using ' || idx || ' ') THEN
				bad := bad || format('query %s: not an index scan using %s. ', c.qn, idx);
			END IF;
			-- without the NULL vectors, which only a sort returns (last)
			IF f.ids IS DISTINCT FROM a.ids[1:coalesce(k, cardinality(a.ids) - 2)] THEN
				bad := bad || format('query %s: ids %s, the sort''s %s. ', c.qn,
				                     f.ids[1:5], a.ids[1:5]);
			END IF;
			IF f.dists IS DISTINCT FROM a.dists[1:coalesce(k, cardinality(a.dists) - 2)] THEN
				bad := bad || format('query %s: distances differ. ', c.qn);
			END IF;
		END LOOP;
		IF k = 30 THEN
			INSERT INTO kb_recall SELECT tbl, op, max_leaves, k,
			       CASE WHEN bad = '' THEN 1 END;
		END IF;
		RETURN NEXT is(bad, '', format('%s %s max_leaves=%s LIMIT %s: the sort''s ids and distances',
		                               tbl, op, max_leaves, coalesce(k::text, 'ALL')));
	END LOOP;
END $$;

SELECT pg_temp.check_budget(tbl, op, ml)
FROM (VALUES ('kb_s256'), ('kb_r32')) t(tbl), (VALUES ('<->'), ('<=>')) o(op), (VALUES (1), (4), (16)) m(ml);
SELECT pg_temp.check_exact(tbl, op, ml)
FROM (VALUES ('kb_s256'), ('kb_r32')) t(tbl), (VALUES ('<->'), ('<=>')) o(op), (VALUES (0), (1000000)) m(ml);

SELECT diag(format('recall@%s %s %s max_leaves=%s: %s', k, tbl, op, max_leaves, coalesce(round(recall::numeric, 3)::text, 'not exact')))
FROM kb_recall ORDER BY tbl, op, k, max_leaves;

-- The budget does something: one leaf of 16 random 32-d points cannot hold
-- the true 30 nearest of 2000 for every query (if recall is 1 here, the
-- setting is ignored).
SELECT cmp_ok((SELECT recall FROM kb_recall WHERE tbl = 'kb_r32' AND op = '<->' AND max_leaves = 1 AND k = 30),
              '<', 1::float8, 'max_leaves = 1 on kb_r32 is approximate: recall@30 below 1');

SELECT * FROM finish();

DROP TABLE kb_s256, kb_r32, kb_src, kb_basis, kb_coef, kb_query, kb_recall;
