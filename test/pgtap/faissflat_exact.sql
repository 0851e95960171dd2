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
-- reproduce it exactly. Distances must be equal to the bit. (The comparison,
-- helpers/topk.psql's topk_problems, would allow ties, as sets.)
SET client_min_messages = warning;
-- a scan that never ends would otherwise hang the suite
SET statement_timeout = '60s';
\ir helpers/topk.psql
SELECT plan(5 * 108 + 7);

-- Every row of every stage: ids 1..build, then ..insert, then ..reuse.
CREATE TABLE ff_sizes (dim int PRIMARY KEY, build int, insert int, reuse int);
INSERT INTO ff_sizes VALUES (3, 2500, 3200, 3600), (512, 1200, 1500, 1700), (4096, 500, 700, 760);

SELECT setseed(0.25);
CREATE TABLE ff_src AS
SELECT dim, i AS id, pg_temp.random_feat(dim) AS v
FROM ff_sizes, generate_series(1, reuse) i;
-- a zero vector: its cosine distance is NaN, which sorts after every number
UPDATE ff_src SET v = '[0,0,0]' WHERE dim = 3 AND id = 100;

-- Query 1 is random, query 2 is a stored row (its own nearest neighbour).
CREATE TABLE ff_query AS
SELECT dim, 1 AS qn, pg_temp.random_feat(dim) AS q
FROM ff_sizes
UNION ALL
SELECT dim, 2, v FROM ff_src WHERE id = 7;

DO $$ BEGIN PERFORM pg_temp.drop_ties('ff_src', 'ff_query', 'dim', '{<->,<=>,<#>}'); END $$;

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

-- The nearest rows by one method (helpers/topk.psql's knn); errors unless
-- the plan is an index scan exactly when the method is not argsort.
CREATE FUNCTION pg_temp.ff_knn(tbl text, op text, q imgfeat, k int, method text,
                               OUT ids int[], OUT dists float8[], OUT true_dists float8[]) LANGUAGE plpgsql AS $$
DECLARE
	plan text;
BEGIN
	SELECT r.ids, r.dists, r.true_dists, r.plan INTO ids, dists, true_dists, plan
	FROM pg_temp.knn(tbl, op, q, k, method) r;
	IF (method = 'argsort') = (plan LIKE '%Index Scan using%') THEN
		RAISE EXCEPTION 'unexpected plan for %: %', method, plan;
	END IF;
END $$;

-- Every table, operator, query and k: the distances of the sort, and its
-- rows (each with its own distance).
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
		SELECT * INTO f FROM pg_temp.ff_knn('ff_t' || c.dim, c.op, c.q, c.k, 'faissflat');
		SELECT * INTO a FROM pg_temp.ff_knn('ff_t' || c.dim, c.op, c.q, c.k, 'argsort');
		what := format('%s: %s-d %s query %s, k=%s:', stage, c.dim, c.op, c.qn, coalesce(c.k::text, 'all'));
		RETURN NEXT is(concat_ws('; ', nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, c.k IS NULL), ''),
		                         CASE WHEN f.dists IS DISTINCT FROM f.true_dists THEN 'a distance that is not the row''s' END),
		               '', what || ' the sort''s rows, in order (ties as sets), each with its own distance');
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

-- the vector store is at most 5% larger than the vectors it holds (at 512-d
-- and up): the inner product's index is the store alone (no codes)
SELECT cmp_ok(pg_relation_size('ff_t512_ip')::numeric, '<=',
              1.05 * (SELECT count(v) * 512 * 4 FROM ff_t512), '512-d store within 5% of the raw vectors');
SELECT cmp_ok(pg_relation_size('ff_t4096_ip')::numeric, '<=',
              1.05 * (SELECT count(v) * 4096 * 4 FROM ff_t4096), '4096-d store within 5% of the raw vectors');

-- rescans: one index scan per outer row, each with its own query
CREATE TEMP VIEW ff_rescans AS
SELECT q.qn, l.ids, l.dists
FROM ff_query q, LATERAL (SELECT array_agg(id) AS ids, array_agg(d) AS dists
                          FROM (SELECT id, v <=> q.q AS d FROM ff_t512 ORDER BY v <=> q.q LIMIT 5) s) l
WHERE dim = 512;
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT ok((SELECT string_agg(p, ' ') FROM pg_temp.explain_lines('SELECT * FROM ff_rescans') p)
          ~ 'Nested Loop .*Index Scan using ff_t512_cos', 'the subquery is an index scan, once per query');
CREATE TEMP TABLE ff_rescans_ff AS SELECT * FROM ff_rescans;
RESET imgsearch.method;
RESET enable_seqscan;
SELECT is(concat_ws('; ', CASE WHEN (SELECT count(*) FROM ff_rescans_ff) <> 2 THEN 'not 2 queries' END,
                    (SELECT string_agg(format('query %s: %s', r.qn, p), '; ' ORDER BY r.qn)
                     FROM ff_rescans_ff r JOIN ff_query q ON q.dim = 512 AND q.qn = r.qn,
                          LATERAL pg_temp.knn('ff_t512', '<=>', q.q, 5, 'argsort') a,
                          LATERAL nullif(pg_temp.topk_problems(r.ids, r.dists, a.ids, a.dists, false), '') p
                     WHERE p IS NOT NULL)),
          '', 'rescans with a new query each return what a sort returns (ties as sets)');

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
FROM pg_class c WHERE relname IN ('ff_t3_ip', 'ff_t512_ip', 'ff_t4096_ip');
DO $$ BEGIN PERFORM pg_temp.load(2, 'reuse'); END $$;
SELECT * FROM pg_temp.check_stage('reuse');

-- fewer rows came back than VACUUM freed: they went to the freed slots (the
-- store alone: an L2 or cosine index also appends their code entries, and
-- reclaims the dead ones' space only at REINDEX)
SELECT is(pg_relation_size(relname::regclass), size, relname || ' did not grow: freed slots were reused')
FROM ff_size_before ORDER BY relname;

SELECT * FROM finish();

DROP VIEW ff_rescans;
DROP TABLE ff_rescans_ff, ff_t3, ff_t512, ff_t4096, ff_src, ff_query, ff_sizes;
