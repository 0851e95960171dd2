-- faissflat returns the rows, order and distances of a sequential scan and
-- sort (imgsearch.method = 'argsort'): for L2, cosine and inner product, at 3,
-- 512 and 4096 dimensions, for k = 1, 30 and every row, two queries each;
-- after the build (NULL vectors and a zero vector in the table), after inserts
-- past the build, after DELETE, after VACUUM, and after inserts that reuse the
-- freed slots.
--
-- The data is random, without ties: rows whose distance to a query equals
-- another row's under some metric (computed by the SQL operators) are dropped
-- before anything is loaded, so a sort has one right order and the index must
-- reproduce it exactly. Distances must be equal to the bit.
SET client_min_messages = warning;
-- a scan that never ends would otherwise hang the suite
SET statement_timeout = '60s';
SELECT plan(5 * 108 + 7);

-- Every row of every stage: ids 1..build, then ..insert, then ..reuse.
CREATE TABLE ff_sizes (dim int PRIMARY KEY, build int, insert int, reuse int);
INSERT INTO ff_sizes VALUES (3, 2500, 3200, 3600), (512, 1200, 1500, 1700), (4096, 500, 700, 760);

SELECT setseed(0.25);
CREATE TABLE ff_src AS
SELECT dim, i AS id,
       (SELECT array_agg(random()::real) FROM generate_series(1, dim) WHERE i > 0)::imgfeat AS v
FROM ff_sizes, generate_series(1, reuse) i;
-- a zero vector: its cosine distance is NaN, which sorts after every number
UPDATE ff_src SET v = '[0,0,0]' WHERE dim = 3 AND id = 100;

-- Query 1 is random, query 2 is a stored row (its own nearest neighbour).
CREATE TABLE ff_query AS
SELECT dim, 1 AS qn, (SELECT array_agg(random()::real) FROM generate_series(1, dim) WHERE dim > 0)::imgfeat AS q
FROM ff_sizes
UNION ALL
SELECT dim, 2, v FROM ff_src WHERE id = 7;

DELETE FROM ff_src s USING (
	SELECT DISTINCT dim, id FROM (
		SELECT s.dim, s.id,
		       count(*) OVER (PARTITION BY s.dim, q.qn, s.v <-> q.q) AS l2,
		       count(*) OVER (PARTITION BY s.dim, q.qn, s.v <=> q.q) AS cosine,
		       count(*) OVER (PARTITION BY s.dim, q.qn, s.v <#> q.q) AS ip
		FROM ff_src s JOIN ff_query q USING (dim)) c
	WHERE l2 > 1 OR cosine > 1 OR ip > 1) tied
WHERE s.dim = tied.dim AND s.id = tied.id;

CREATE TABLE ff_t3 (id int, v imgfeat(3));
CREATE TABLE ff_t512 (id int, v imgfeat(512));
CREATE TABLE ff_t4096 (id int, v imgfeat(4096));

-- Copies the rows of stage last_of (build, insert, reuse) after stage first (0, 1, 2).
CREATE FUNCTION pg_temp.load(first int, last_of text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	s record;
BEGIN
	FOR s IN SELECT * FROM ff_sizes LOOP
		EXECUTE format('INSERT INTO %I SELECT id, v FROM ff_src
		                WHERE dim = $1 AND id > $2 AND id <= $3 ORDER BY id', 'ff_t' || s.dim)
			USING s.dim,
			      CASE first WHEN 0 THEN 0 WHEN 1 THEN s.build ELSE s.insert END,
			      CASE last_of WHEN 'build' THEN s.build WHEN 'insert' THEN s.insert ELSE s.reuse END;
	END LOOP;
END $$;

CREATE FUNCTION pg_temp.explain_lines(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || query;
END $$;

-- The nearest rows by one method: ids and distances in the order returned,
-- without the rows whose vector is NULL (not indexed; a sort puts them last).
-- Errors unless the plan is an index scan exactly when the method is not argsort.
CREATE FUNCTION pg_temp.knn(tbl text, op text, q imgfeat, k int, method text,
                            OUT ids int[], OUT dists float8[]) LANGUAGE plpgsql AS $$
DECLARE
	query text := format('SELECT id, v %s %L::imgfeat AS d FROM %I ORDER BY v %s %L::imgfeat LIMIT %s',
	                     op, q, tbl, op, q, coalesce(k::text, 'ALL'));
	plan text;
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	-- for every row a sort may look cheaper: make sure the index is what runs
	PERFORM set_config('enable_seqscan', (method = 'argsort')::text, true);
	SELECT string_agg(p, E'\n') INTO plan FROM pg_temp.explain_lines(query) p;
	IF (method = 'argsort') = (plan LIKE '%Index Scan using%') THEN
		RAISE EXCEPTION 'unexpected plan for %: %', method, plan;
	END IF;
	EXECUTE format('SELECT array_agg(id), array_agg(d) FROM (%s) s WHERE d IS NOT NULL', query)
		INTO ids, dists;
END $$;

CREATE FUNCTION pg_temp.check_stage(stage text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	c record;
	f record;
	a record;
	what text;
BEGIN
	FOR c IN
		SELECT q.dim, q.qn, q.q, op, k
		FROM ff_query q, (VALUES ('<->'), ('<=>'), ('<#>')) o(op), (VALUES (1), (30), (NULL)) kk(k)
		ORDER BY q.dim, op, q.qn, k
	LOOP
		SELECT * INTO f FROM pg_temp.knn('ff_t' || c.dim, c.op, c.q, c.k, 'faissflat');
		SELECT * INTO a FROM pg_temp.knn('ff_t' || c.dim, c.op, c.q, c.k, 'argsort');
		what := format('%s: %s-d %s query %s, k=%s:', stage, c.dim, c.op, c.qn, coalesce(c.k::text, 'all'));
		RETURN NEXT is(f.ids, a.ids, what || ' ids in order');
		RETURN NEXT is(f.dists, a.dists, what || ' distances');
	END LOOP;
END $$;

DO $$ BEGIN PERFORM pg_temp.load(0, 'build'); END $$;
INSERT INTO ff_t3 SELECT -i, NULL FROM generate_series(1, 5) i;
INSERT INTO ff_t512 SELECT -i, NULL FROM generate_series(1, 5) i;
INSERT INTO ff_t4096 SELECT -i, NULL FROM generate_series(1, 5) i;
CREATE INDEX ff_t3_l2 ON ff_t3 USING faissflat (v);
CREATE INDEX ff_t3_cos ON ff_t3 USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ff_t3_ip ON ff_t3 USING faissflat (v imgfeat_ip_ops);
CREATE INDEX ff_t512_l2 ON ff_t512 USING faissflat (v imgfeat_l2_ops);
CREATE INDEX ff_t512_cos ON ff_t512 USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ff_t512_ip ON ff_t512 USING faissflat (v imgfeat_ip_ops);
CREATE INDEX ff_t4096_l2 ON ff_t4096 USING faissflat (v);
CREATE INDEX ff_t4096_cos ON ff_t4096 USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ff_t4096_ip ON ff_t4096 USING faissflat (v imgfeat_ip_ops);
ANALYZE ff_t3, ff_t512, ff_t4096;

SELECT * FROM pg_temp.check_stage('build');

-- the index is at most 5% larger than the vectors it holds (at 512-d and up)
SELECT cmp_ok(pg_relation_size('ff_t512_l2')::numeric, '<=',
              1.05 * (SELECT count(v) * 512 * 4 FROM ff_t512), '512-d index within 5% of the raw vectors');
SELECT cmp_ok(pg_relation_size('ff_t4096_l2')::numeric, '<=',
              1.05 * (SELECT count(v) * 4096 * 4 FROM ff_t4096), '4096-d index within 5% of the raw vectors');

-- rescans: one index scan per outer row, each with its own query
CREATE TEMP VIEW ff_rescans AS
SELECT q.qn, (SELECT array_agg(id) FROM (SELECT id FROM ff_t512 ORDER BY v <=> q.q LIMIT 5) s) AS ids
FROM ff_query q WHERE dim = 512;
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines('SELECT * FROM ff_rescans') p)
          ~ 'SubPlan.*Index Scan using ff_t512_cos', 'the subquery is an index scan');
SELECT is((SELECT array_agg(ids::text ORDER BY qn) FROM ff_rescans),
          (SELECT array_agg((pg_temp.knn('ff_t512', '<=>', q, 5, 'argsort')).ids::text ORDER BY qn)
           FROM ff_query WHERE dim = 512),
          'rescans with a new query each return what a sort returns');
RESET imgsearch.method;
RESET enable_seqscan;

DO $$ BEGIN PERFORM pg_temp.load(1, 'insert'); END $$;
SELECT * FROM pg_temp.check_stage('insert');

DELETE FROM ff_t3 WHERE id % 4 = 0;
DELETE FROM ff_t512 WHERE id % 4 = 0;
DELETE FROM ff_t4096 WHERE id % 4 = 0;
SELECT * FROM pg_temp.check_stage('delete');

VACUUM (INDEX_CLEANUP ON) ff_t3, ff_t512, ff_t4096;
SELECT * FROM pg_temp.check_stage('vacuum');

CREATE TEMP TABLE ff_size_before AS
SELECT c.relname, pg_relation_size(c.oid) AS size
FROM pg_class c WHERE relname IN ('ff_t3_l2', 'ff_t512_l2', 'ff_t4096_l2');
DO $$ BEGIN PERFORM pg_temp.load(2, 'reuse'); END $$;
SELECT * FROM pg_temp.check_stage('reuse');

-- fewer rows came back than VACUUM freed: they went to the freed slots
SELECT is(pg_relation_size(relname::regclass), size, relname || ' did not grow: freed slots were reused')
FROM ff_size_before ORDER BY relname;

SELECT * FROM finish();

DROP VIEW ff_rescans;
DROP TABLE ff_t3, ff_t512, ff_t4096, ff_src, ff_query, ff_sizes;
