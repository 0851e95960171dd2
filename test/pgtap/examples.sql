-- Several examples ("more like these, less like those"), both strategies.
--
-- The average example (imgsearch_average_example) against the same vector
-- computed in SQL from the elements (float8 array arithmetic), and a search
-- through every index on it against a sequential scan and sort on the SQL
-- vector. The best score (imgfeat <-> / <=> imgexamples) through one index
-- scan of each method in exact mode (kdtree.max_leaves = 0; lsh.probes =
-- lsh.candidates = 0), for L2 and cosine, 1 to 3 positives and 0 to 2
-- negatives, with and without a WHERE filter, LIMIT 1, 30 and ALL, against
-- an SQL computation over the whole table with the plain operators (the
-- least distance to a positive, d+, and to a negative, d-; d+ when there
-- is no negative or d+ < d-, else 2^290 / d-, Infinity for d- = 0), tied
-- scores compared as sets (helpers/topk.psql). The operator without an
-- index (a sort) against the same computation; one positive against the
-- plain search; budget modes: distinct rows, their own scores, never
-- decreasing, min(LIMIT, rows) of them. Errors with their SQLSTATEs.
--
-- The table: 500 clustered 6-d rows, 40 exact duplicates of stored rows, a
-- zero vector (cosine distance NaN), 5 rows without a vector; a filter
-- keeps about a seventh of them.
SET client_min_messages = warning;
SET jit = off;
SET statement_timeout = '60s';
\ir helpers/topk.psql

SELECT plan(28 + 3 + 18 + 12 + 216 + 24 + 64 + 64 + 4);

SELECT setseed(0.40625);
CREATE TABLE ex_src AS SELECT id, v FROM pg_temp.cluster_feats(6, 510, 8, 0, 0.8, 3, 7);
CREATE TABLE ex_t (id int, v imgfeat(6));
INSERT INTO ex_t SELECT id, v FROM ex_src WHERE id <= 500;
INSERT INTO ex_t SELECT 500 + id, v FROM ex_src WHERE id <= 40;	-- duplicates
INSERT INTO ex_t VALUES (999, '[0,0,0,0,0,0]');
INSERT INTO ex_t SELECT -i, NULL FROM generate_series(1, 5) i;
-- held-out vectors 501..510 of ex_src become 1001..1010: examples that are no row
UPDATE ex_src SET id = id + 500 WHERE id > 500;
INSERT INTO ex_src VALUES (1011, '[0,0,0,0,0,0]');	-- a zero example: its cosine distances are NaN
CREATE INDEX ex_t_faissflat_l2 ON ex_t USING faissflat (v);
CREATE INDEX ex_t_faissflat_cos ON ex_t USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ex_t_kdtree_l2 ON ex_t USING kdtree (v) WITH (dims = 4, leaf_size = 4);
CREATE INDEX ex_t_kdtree_cos ON ex_t USING kdtree (v imgfeat_cosine_ops) WITH (dims = 3, leaf_size = 2);
CREATE INDEX ex_t_lsh_l2 ON ex_t USING lsh (v) WITH (buckets = 16);
CREATE INDEX ex_t_lsh_cos ON ex_t USING lsh (v imgfeat_cosine_ops) WITH (bits = 4, buckets = 8);
ANALYZE ex_t;

-- The example sets, by id of ex_src (1001..1010: held out).
CREATE TABLE ex_sets (sn int PRIMARY KEY, pos int[], neg int[]);
INSERT INTO ex_sets VALUES
	(1, '{1001}', '{}'),
	(2, '{17,1002}', '{1003}'),
	(3, '{5,1004,250}', '{1005,33}'),
	(4, '{1006}', '{1007,1006}'),	-- a negative equal to the positive: every row pushed back
	(5, '{1008,1009}', '{12}'),		-- a stored negative (and its duplicate): rows at Infinity
	(6, '{1011,1010}', '{}');		-- a zero positive: under <=> it is nearest to no row
CREATE FUNCTION pg_temp.vecs(ids int[]) RETURNS imgfeat[] LANGUAGE sql AS $$
	SELECT coalesce(array_agg(v ORDER BY n), '{}') FROM unnest(ids) WITH ORDINALITY u(i, n) JOIN ex_src s ON s.id = u.i $$;
CREATE FUNCTION pg_temp.ex(sn int) RETURNS imgexamples LANGUAGE sql AS $$
	SELECT imgsearch_examples(pg_temp.vecs(pos), pg_temp.vecs(neg)) FROM ex_sets s WHERE s.sn = ex.sn $$;

-- The SQL computation: every row with a vector passing filter, its score by
-- the plain operator op, in score order (ids within a score: any order).
CREATE FUNCTION pg_temp.truth(op text, pos imgfeat[], neg imgfeat[], filter text)
RETURNS TABLE (id int, s float8) LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT id, CASE WHEN dneg IS NULL OR dpos < dneg THEN dpos
		                WHEN dneg = 0 THEN 'Infinity'::float8
		                ELSE 2::float8 ^ 290 / dneg END
		FROM (SELECT id, (SELECT min(v %1$s p) FROM unnest($1) p) AS dpos,
		                 (SELECT min(v %1$s n) FROM unnest($2) n) AS dneg
		      FROM ex_t WHERE v IS NOT NULL AND (%2$s)) d$q$, op, filter) USING pos, neg;
END $$;
CREATE FUNCTION pg_temp.truth_topk(op text, pos imgfeat[], neg imgfeat[], filter text, k int,
                                   OUT ids int[], OUT dists float8[]) LANGUAGE sql AS $$
	SELECT array_agg(id ORDER BY s, id), array_agg(s ORDER BY s, id)
	FROM (SELECT * FROM pg_temp.truth(op, pos, neg, filter) ORDER BY s, id LIMIT k) t $$;

-- One search ORDER BY v op ex through method (argsort: a sort), with the
-- settings given: ids and scores as returned, and the plan.
CREATE FUNCTION pg_temp.ex_scan(op text, ex imgexamples, filter text, k int, method text, settings jsonb DEFAULT NULL,
                                OUT ids int[], OUT dists float8[], OUT plan text) LANGUAGE plpgsql AS $$
DECLARE
	query text := format('SELECT id, v %s %L::imgexamples AS d FROM ex_t WHERE %s ORDER BY v %s %L::imgexamples LIMIT %s',
	                     op, ex, filter, op, ex, coalesce(k::text, 'ALL'));
	saved jsonb;
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	PERFORM set_config('enable_seqscan', (method = 'argsort')::text, true);
	saved := pg_temp.apply_settings(settings);
	SELECT string_agg(p, E'\n') INTO plan FROM pg_temp.explain_lines(query) p;
	EXECUTE format('SELECT array_agg(id ORDER BY n), array_agg(d ORDER BY n)
	                FROM (SELECT id, d, row_number() OVER () AS n FROM (%s) r) s WHERE d IS NOT NULL', query)
		INTO ids, dists;
	PERFORM pg_temp.restore_settings(saved);
END $$;

CREATE FUNCTION pg_temp.idx(method text, op text) RETURNS text LANGUAGE sql AS $$
	SELECT 'ex_t_' || method || CASE op WHEN '<->' THEN '_l2' ELSE '_cos' END $$;
CREATE FUNCTION pg_temp.exact_settings(method text) RETURNS jsonb LANGUAGE sql AS $$
	SELECT CASE method WHEN 'lsh' THEN '{"lsh.probes": 0, "lsh.candidates": 0}'::jsonb
	                   WHEN 'kdtree' THEN '{"kdtree.max_leaves": 0}'::jsonb END $$;

-- ---------------------------------------------------------------------------
-- Errors, NULLs, text and binary forms (28)
-- ---------------------------------------------------------------------------
SELECT throws_ok($$SELECT imgsearch_examples('{}')$$, '22023', NULL, 'examples: no positive');
SELECT throws_ok($$SELECT imgsearch_examples('{}', ARRAY['[1,2]'::imgfeat])$$, '22023', NULL,
                 'examples: negatives but no positive');
SELECT throws_ok($$SELECT imgsearch_examples(ARRAY['[1,2]'::imgfeat, NULL])$$, '22004', NULL,
                 'examples: a NULL positive');
SELECT throws_ok($$SELECT imgsearch_examples(ARRAY['[1,2]'::imgfeat], ARRAY[NULL::imgfeat])$$, '22004', NULL,
                 'examples: a NULL negative');
SELECT throws_ok($$SELECT imgsearch_examples(ARRAY['[1,2]'::imgfeat, '[1,2,3]'])$$, '22000', NULL,
                 'examples: positives of two dimensions');
SELECT throws_ok($$SELECT imgsearch_examples(ARRAY['[1,2]'::imgfeat], ARRAY['[1,2,3]'::imgfeat])$$, '22000', NULL,
                 'examples: a negative of another dimension');
SELECT throws_ok($$SELECT imgsearch_examples(array_fill('[1,2]'::imgfeat, ARRAY[40]), array_fill('[1,2]'::imgfeat, ARRAY[25]))$$,
                 '54000', NULL, 'examples: more than 64');
SELECT lives_ok($$SELECT imgsearch_examples(array_fill('[1,2]'::imgfeat, ARRAY[40]), array_fill('[1,2]'::imgfeat, ARRAY[24]))$$,
                'examples: 64 are allowed');
SELECT throws_ok($$SELECT '[1,2]'::imgfeat <-> imgsearch_examples(ARRAY['[1,2,3]'::imgfeat])$$, '22000', NULL,
                 'imgfeat <-> imgexamples: different dimensions');
SELECT throws_ok($$SELECT '[1,2]'::imgfeat <=> imgsearch_examples(ARRAY['[1,2,3]'::imgfeat])$$, '22000', NULL,
                 'imgfeat <=> imgexamples: different dimensions');
SET enable_seqscan = off;
SET imgsearch.method = 'kdtree';
SELECT throws_ok($$SELECT id FROM ex_t ORDER BY v <-> imgsearch_examples(ARRAY['[1,2,3]'::imgfeat]) LIMIT 3$$,
                 '22000', NULL, 'an index scan of examples of another dimension');
RESET enable_seqscan;
RESET imgsearch.method;
SELECT is(imgsearch_examples(NULL)::text, NULL, 'examples: NULL positives give NULL');
SELECT is('[1,2]'::imgfeat <-> NULL::imgexamples, NULL, 'imgfeat <-> NULL::imgexamples is NULL');
SELECT is(imgsearch_examples(ARRAY['[1,2.5]'::imgfeat, '[3,-4]'], ARRAY['[1e-7,6]'::imgfeat])::text,
          '[1,2.5];[3,-4] / [1e-07,6]', 'imgexamples text form');
SELECT is((SELECT string_agg(pg_temp.ex(sn)::text::imgexamples::text, '|') FROM ex_sets),
          (SELECT string_agg(pg_temp.ex(sn)::text, '|') FROM ex_sets), 'imgexamples text form round trip');
SELECT throws_ok($$SELECT '[1,2]'::imgexamples$$, '22P02', NULL, 'imgexamples text without "/"');
-- binary form, through COPY files in the data directory: a round trip, the
-- bytes of a small value, and malformed values written as bytea (the same framing)
CREATE TABLE ex_bin (sn int, e imgexamples);
CREATE TABLE ex_bin_one (e imgexamples);
CREATE FUNCTION pg_temp.copy_sql(query text, name text) RETURNS text LANGUAGE sql AS $$
	SELECT format(query, current_setting('data_directory') || '/' || name) $$;
DO $$
BEGIN
	EXECUTE pg_temp.copy_sql('COPY (SELECT sn, pg_temp.ex(sn) FROM ex_sets) TO %L (FORMAT binary)', 'examples_test.bin');
	EXECUTE pg_temp.copy_sql('COPY ex_bin FROM %L (FORMAT binary)', 'examples_test.bin');
	EXECUTE pg_temp.copy_sql($q$COPY (SELECT decode('000100010002000100000000000000000000000000000000', 'hex')) TO %L (FORMAT binary)$q$,
	                         'examples_bad1.bin');
	EXECUTE pg_temp.copy_sql($q$COPY (SELECT decode('00010001000200003f80000040000000', 'hex')) TO %L (FORMAT binary)$q$,
	                         'examples_bad2.bin');
	EXECUTE pg_temp.copy_sql($q$COPY (SELECT decode('0000000100020000', 'hex')) TO %L (FORMAT binary)$q$,
	                         'examples_bad3.bin');
END $$;
SELECT is((SELECT string_agg(e::text, '|' ORDER BY sn) FROM ex_bin),
          (SELECT string_agg(pg_temp.ex(sn)::text, '|' ORDER BY sn) FROM ex_sets), 'imgexamples binary round trip (COPY)');
SELECT is(encode(imgexamples_send('[1,2] / [3,4]'), 'hex'), '00010001000200003f800000400000004040000040800000',
          'imgexamples binary form: n_pos, n_neg, dim, 0, floats');
SELECT throws_ok(pg_temp.copy_sql('COPY ex_bin_one FROM %L (FORMAT binary)', 'examples_bad1.bin'), '22P03', NULL,
                 'binary imgexamples: a reserved field not 0');
SELECT throws_ok(pg_temp.copy_sql('COPY ex_bin_one FROM %L (FORMAT binary)', 'examples_bad2.bin'), '22P03', NULL,
                 'binary imgexamples: fewer floats than the header says');
SELECT throws_ok(pg_temp.copy_sql('COPY ex_bin_one FROM %L (FORMAT binary)', 'examples_bad3.bin'), '22023', NULL,
                 'binary imgexamples: no positive');
SELECT throws_ok($$SELECT imgsearch_average_example('{}')$$, '22023', NULL, 'average: no positive');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY[NULL::imgfeat])$$, '22004', NULL, 'average: a NULL positive');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY['[1,2]'::imgfeat], ARRAY['[1,2,3]'::imgfeat])$$, '22000', NULL,
                 'average: a negative of another dimension');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY['[1,2]'::imgfeat], '{}', 'NaN')$$, '22023', NULL,
                 'average: a NaN weight');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY['[1,2]'::imgfeat], '{}', 'Infinity')$$, '22023', NULL,
                 'average: an infinite weight');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY['[1,2]'::imgfeat], '{}', -1)$$, '22023', NULL,
                 'average: a negative weight');
SELECT throws_ok($$SELECT imgsearch_average_example(ARRAY['[3e38,2]'::imgfeat], ARRAY['[-3e38,2]'::imgfeat], 2)$$,
                 '22003', NULL, 'average: a result beyond float4');

-- ---------------------------------------------------------------------------
-- The average example (3 + 18)
-- ---------------------------------------------------------------------------
-- The SQL vector: each element, the positives' sum in order / their count,
-- minus w times the negatives' likewise, in float8, then rounded to real.
CREATE FUNCTION pg_temp.sql_average(pos int[], neg int[], w float8) RETURNS imgfeat LANGUAGE sql AS $$
	WITH e AS (SELECT l.kind, l.n, a.c, a.x::float8 AS x
	           FROM (SELECT 'p' AS kind, n, i FROM unnest(pos) WITH ORDINALITY u(i, n)
	                 UNION ALL SELECT 'n', n, i FROM unnest(neg) WITH ORDINALITY u(i, n)) l
	           JOIN ex_src s ON s.id = l.i, unnest(s.v::real[]) WITH ORDINALITY a(x, c)),
	     mean AS (SELECT c, sum(x ORDER BY n) FILTER (WHERE kind = 'p') / count(*) FILTER (WHERE kind = 'p') AS mp,
	                     sum(x ORDER BY n) FILTER (WHERE kind = 'n') / count(*) FILTER (WHERE kind = 'n') AS mn
	              FROM e GROUP BY c)
	SELECT array_agg(CASE WHEN mn IS NULL THEN mp ELSE mp - w * mn END::real ORDER BY c)::imgfeat FROM mean $$;

CREATE TABLE ex_avg (an int PRIMARY KEY, pos int[], neg int[], w float8);
INSERT INTO ex_avg VALUES (1, '{1001,1002,1003}', '{}', 1), (2, '{17,1004}', '{1005,33,1006}', 0.75),
	(3, '{1007}', '{1008}', 0);

SELECT is(imgsearch_average_example(pg_temp.vecs(pos), pg_temp.vecs(neg), w)::text,
          pg_temp.sql_average(pos, neg, w)::text,
          format('average of %s less %s times %s: the vector computed in SQL', pos, w, neg))
FROM ex_avg ORDER BY an;

-- through every index (exact), against a sort on the SQL vector
SELECT is(concat_ws('; ', nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, false), ''),
                    CASE WHEN f.plan !~ ('Index Scan using ' || pg_temp.idx(m, op) || ' ') THEN 'not an index scan: ' || f.plan END),
          '', format('%s %s ORDER BY v %s imgsearch_average_example(%s, %s, %s) LIMIT 30: a sort on the SQL vector''s rows and distances',
                 m, pg_temp.idx(m, op), op, pos, neg, w))
FROM ex_avg, unnest(ARRAY['faissflat', 'kdtree', 'lsh']) m, unnest(ARRAY['<->', '<=>']) op,
     LATERAL pg_temp.knn('ex_t', op, imgsearch_average_example(pg_temp.vecs(pos), pg_temp.vecs(neg), w), 30, m,
                         pg_temp.exact_settings(m)) f,
     LATERAL pg_temp.knn('ex_t', op, pg_temp.sql_average(pos, neg, w), 30, 'argsort') a
ORDER BY an, m, op;

-- ---------------------------------------------------------------------------
-- Best score without an index: the operator in a sort (12)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.topk_problems(f.ids, f.dists, t.ids, t.dists, true), '',
          format('sort ORDER BY v %s examples %s (positives %s, negatives %s): the SQL computation', op, sn, pos, neg))
FROM ex_sets, unnest(ARRAY['<->', '<=>']) op,
     LATERAL pg_temp.ex_scan(op, pg_temp.ex(sn), 'true', NULL, 'argsort') f,
     LATERAL pg_temp.truth_topk(op, pg_temp.vecs(pos), pg_temp.vecs(neg), 'true', NULL) t
ORDER BY sn, op;

-- ---------------------------------------------------------------------------
-- Best score through one index scan, exact (216)
-- ---------------------------------------------------------------------------
SELECT is(concat_ws('; ', nullif(pg_temp.topk_problems(f.ids, f.dists, t.ids, t.dists, k IS NULL), ''),
                    CASE WHEN f.plan !~ ('Index Scan using ' || pg_temp.idx(m, op) || ' ') THEN 'not an index scan: ' || f.plan END),
          '', format('%s ORDER BY v %s examples %s (positives %s, negatives %s) WHERE %s LIMIT %s: the SQL computation',
                     pg_temp.idx(m, op), op, sn, pos, neg, filter, coalesce(k::text, 'ALL')))
FROM unnest(ARRAY['faissflat', 'kdtree', 'lsh']) WITH ORDINALITY mm(m, mn), unnest(ARRAY['<->', '<=>']) op, ex_sets,
     unnest(ARRAY['true', 'id % 7 = 3']) filter, unnest(ARRAY[1, 30, NULL]) WITH ORDINALITY kk(k, kn),
     LATERAL pg_temp.ex_scan(op, pg_temp.ex(sn), filter, k, m, pg_temp.exact_settings(m)) f,
     LATERAL pg_temp.truth_topk(op, pg_temp.vecs(pos), pg_temp.vecs(neg), filter, k) t
ORDER BY mn, op, sn, filter, kn;

-- ---------------------------------------------------------------------------
-- One positive, no negative: the plain search (24)
-- ---------------------------------------------------------------------------
SELECT is(pg_temp.topk_problems(f.ids, f.dists, p.ids, p.dists, k IS NULL), '',
          format('%s ORDER BY v %s imgsearch_examples(ARRAY[q%s]) LIMIT %s: the ids and distances of ORDER BY v %s q',
                 pg_temp.idx(m, op), op, qid, coalesce(k::text, 'ALL'), op))
FROM unnest(ARRAY['faissflat', 'kdtree', 'lsh']) WITH ORDINALITY mm(m, mn), unnest(ARRAY['<->', '<=>']) op,
     unnest(ARRAY[1010, 250]) qid, unnest(ARRAY[30, NULL]) WITH ORDINALITY kk(k, kn),
     LATERAL pg_temp.ex_scan(op, imgsearch_examples(pg_temp.vecs(ARRAY[qid])), 'true', k, m, pg_temp.exact_settings(m)) f,
     LATERAL pg_temp.knn('ex_t', op, (pg_temp.vecs(ARRAY[qid]))[1], k, m, pg_temp.exact_settings(m)) p
ORDER BY mn, op, qid, kn;

-- ---------------------------------------------------------------------------
-- Budgets (64 + 64): distinct rows, each with its own score, never
-- decreasing; and as many as LIMIT or the rows that qualify
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.budget_problems(op text, sn int, filter text, k int, m text, settings jsonb, count_only bool)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	f record;
	pos imgfeat[] := (SELECT pg_temp.vecs(s.pos) FROM ex_sets s WHERE s.sn = budget_problems.sn);
	neg imgfeat[] := (SELECT pg_temp.vecs(s.neg) FROM ex_sets s WHERE s.sn = budget_problems.sn);
	true_dists float8[];
	n int;
	s record;
	want int[];
BEGIN
	SELECT * INTO f FROM pg_temp.ex_scan(op, pg_temp.ex(sn), filter, k, m, settings);
	IF count_only THEN
		-- the index never sees the filter: the answer is its unfiltered stream's
		-- rows that pass, in order, up to LIMIT (docs/methods.md, "Budgets and
		-- filters"); so the count is min(LIMIT, passing rows of the stream)
		SELECT * INTO s FROM pg_temp.ex_scan(op, pg_temp.ex(sn), 'true', NULL, m, settings);
		EXECUTE format('SELECT array_agg(u.i ORDER BY u.n) FROM (SELECT u.i, u.n FROM unnest($1) WITH ORDINALITY u(i, n)
		                  JOIN ex_t ON ex_t.id = u.i WHERE %s ORDER BY u.n LIMIT %s) u', filter, coalesce(k::text, 'ALL'))
			INTO want USING s.ids;
		RETURN CASE WHEN f.ids IS DISTINCT FROM want
		            THEN format('%s rows, not the %s of the unfiltered stream that pass', coalesce(cardinality(f.ids), 0),
		                        coalesce(cardinality(want), 0)) ELSE '' END;
	END IF;
	SELECT array_agg(t.s ORDER BY u.n) INTO true_dists
	FROM unnest(f.ids) WITH ORDINALITY u(i, n) LEFT JOIN pg_temp.truth(op, pos, neg, filter) t ON t.id = u.i;
	RETURN pg_temp.scan_problems(f.ids, f.dists, true_dists, f.plan, NULL, pg_temp.idx(m, op));
END $$;

CREATE TABLE ex_budgets (bn int, m text, settings jsonb);
INSERT INTO ex_budgets VALUES (1, 'kdtree', '{"kdtree.max_leaves": 1}'), (2, 'kdtree', '{"kdtree.max_leaves": 4}'),
	(3, 'lsh', '{"lsh.probes": 1, "lsh.candidates": 16}'), (4, 'lsh', '{"lsh.probes": 2, "lsh.candidates": 0}');
CREATE FUNCTION pg_temp.check_budgets(count_only bool) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT is(pg_temp.budget_problems(op, sn, filter, k, m, settings, count_only), '',
	          format('%s %s ORDER BY v %s examples %s WHERE %s LIMIT %s: %s',
	                 pg_temp.idx(m, op), settings, op, sn, filter, coalesce(k::text, 'ALL'),
	                 CASE WHEN count_only THEN 'the unfiltered stream''s passing rows, up to LIMIT'
	                      ELSE 'distinct rows, each with its score, non-decreasing, through the index' END))
	FROM ex_budgets, unnest(ARRAY['<->', '<=>']) op, unnest(ARRAY[2, 3]) sn,
	     unnest(ARRAY['true', 'id % 7 = 3']) filter, unnest(ARRAY[30, NULL]) WITH ORDINALITY kk(k, kn)
	ORDER BY bn, op, sn, filter, kn $$;
SELECT pg_temp.check_budgets(false);
-- Budget modes are approximate in their first round only, then exact (the
-- stream's every row past that round's last one: pgtap/filtered_topk holds
-- that against a sort); a filter loses no row of the stream.
SELECT pg_temp.check_budgets(true);

-- ---------------------------------------------------------------------------
-- EXPLAIN and the score's shape (4)
-- ---------------------------------------------------------------------------
SET enable_seqscan = off;
SELECT matches((SELECT string_agg(p, E'\n') FROM pg_temp.explain_lines(
                 $$SELECT id FROM ex_t WHERE id % 7 = 3
                   ORDER BY v <=> imgsearch_examples(ARRAY(SELECT v FROM ex_src WHERE id IN (3, 1001)),
                                                     ARRAY(SELECT v FROM ex_src WHERE id = 1002)) LIMIT 5$$) p),
               'Index Scan using ex_t_\w+_cos', 'EXPLAIN: <=> imgsearch_examples(ARRAY(subquery), ...) is an index scan (auto)');
RESET enable_seqscan;
SELECT is((SELECT '[1,0]'::imgfeat <-> imgsearch_examples(ARRAY['[4,4]'::imgfeat, '[1,3]'], ARRAY['[1,-5]'::imgfeat])), 3::float8,
          'a row nearer a positive than every negative scores its distance to the nearest positive');
SELECT is((SELECT '[1,0]'::imgfeat <-> imgsearch_examples(ARRAY['[4,4]'::imgfeat], ARRAY['[1,-2]'::imgfeat])),
          2::float8 ^ 290 / 2, 'a row nearer a negative scores 2^290 / its distance to the nearest negative');
SELECT is((SELECT '[1,0]'::imgfeat <=> imgsearch_examples(ARRAY['[4,4]'::imgfeat], ARRAY['[2,0]'::imgfeat])),
          'Infinity'::float8, 'a row at distance 0 from a negative scores Infinity');

SELECT * FROM finish();
