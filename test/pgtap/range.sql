-- Range search: WHERE v <<->> imgsearch_sphere(q, r) (L2) and
-- WHERE v <<=>> imgsearch_sphere(q, r) (cosine), closed balls (distance <= r).
--
-- For each method (faissflat, kdtree, lsh) x {L2, cosine} x queries and radii
-- that catch no row, one row, some rows and every row (radii set to the
-- distances themselves, so the boundary counts: a row at exactly r is in),
-- the index scan's ids equal those of a sequential scan with the plain
-- distance operator, WHERE v <-> q <= r (imgsearch.method = 'argsort',
-- enable_indexscan and enable_bitmapscan off):
--   - alone, with another WHERE clause, with budget GUCs set small
--     (kdtree.max_leaves = 1, lsh.probes = 1, lsh.candidates = 16: a range
--     search ignores them), as sets;
--   - with ORDER BY v <-> q LIMIT 10 (the sphere's centre) and ORDER BY on
--     another query LIMIT 5: the distances, in order, equal the sequential
--     scan's, and the ids are rows of the reference at those distances;
--   - EXPLAIN shows an Index Scan with the sphere as Index Cond.
-- The table has exact duplicates (radius 0 around a stored row catches it
-- and its copies), NULL vectors (never in range) and a zero vector (cosine
-- distance NaN: in no cosine sphere). Then NULL spheres, bad radii (22023)
-- and dimension mismatches (22000), with and without an index.
SET client_min_messages = warning;
SET statement_timeout = '60s';
\ir helpers/topk.psql
SELECT plan(3 * 2 * 7 * 7 + 1 + 15);

SELECT setseed(0.375);
CREATE TABLE rg_src AS SELECT * FROM pg_temp.spectrum_feats(16, 1501);
CREATE TABLE rg (id int, v imgfeat(16));
INSERT INTO rg SELECT id, v FROM rg_src WHERE id <= 1500;
-- exact duplicates: rows 1001..1040 again, as 3001..3040 (row 1007 has a copy: 3007)
INSERT INTO rg SELECT id + 2000, v FROM rg WHERE id BETWEEN 1001 AND 1040;
INSERT INTO rg VALUES (-1, NULL), (-2, NULL), (-3, '[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]');
CREATE INDEX rg_ff_l2 ON rg USING faissflat (v);
CREATE INDEX rg_ff_cos ON rg USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX rg_kd_l2 ON rg USING kdtree (v) WITH (dims = 8, leaf_size = 16);
CREATE INDEX rg_kd_cos ON rg USING kdtree (v imgfeat_cosine_ops) WITH (dims = 8, leaf_size = 16);
CREATE INDEX rg_lsh_l2 ON rg USING lsh (v);
CREATE INDEX rg_lsh_cos ON rg USING lsh (v imgfeat_cosine_ops);
ANALYZE rg;

-- Queries: 1 is a stored row with a duplicate (row 1007), 2 a new vector.
CREATE TABLE rg_query AS
SELECT 1 AS qn, v AS q FROM rg WHERE id = 1007
UNION ALL
SELECT 2, v FROM rg_src WHERE id = 1501;

-- The distances of every row to each query, by the plain operators (a sequential scan).
CREATE TABLE rg_dist AS
SELECT qn, op, id, CASE op WHEN '<->' THEN v <-> q ELSE v <=> q END AS d
FROM rg, rg_query, (VALUES ('<->'), ('<=>')) o(op)
WHERE v IS NOT NULL;

-- Cases: (query, radius, what it catches); radii are distances of rows.
CREATE TABLE rg_case AS
WITH ranked AS (
	SELECT qn, op, d, row_number() OVER (PARTITION BY qn, op ORDER BY d) AS rank
	FROM rg_dist WHERE d <> 'NaN'   -- the zero vector's cosine distance
)
SELECT qn, op, r, what FROM (
	-- none: half the nearest distance of the new vector
	SELECT qn, op, d / 2 AS r, 'no row' AS what FROM ranked WHERE qn = 2 AND rank = 1
	UNION ALL
	-- exactly one: the nearest distance of the new vector (the boundary)
	SELECT qn, op, d, 'one row at r' FROM ranked WHERE qn = 2 AND rank = 1
	UNION ALL
	-- the stored row and its copy, at its distance to itself (0 under L2)
	SELECT qn, op, d, 'a row and its duplicate' FROM ranked WHERE qn = 1 AND rank = 1
	UNION ALL
	SELECT qn, op, d, 'some rows' FROM ranked WHERE rank = 60
	UNION ALL
	SELECT qn, op, d, 'a third' FROM ranked WHERE qn = 1 AND rank = 500
	UNION ALL
	-- every row (but NULLs, and the zero vector's NaN under cosine)
	SELECT qn, op, d, 'every row' FROM ranked r1
	WHERE qn = 2 AND rank = (SELECT max(rank) FROM ranked r2 WHERE r2.qn = r1.qn AND r2.op = r1.op)
) c;

SELECT is((SELECT array_agg(format('%s %s: %s', op, what, n) ORDER BY op, what)
           FROM (SELECT c.op, c.what, (SELECT count(*) FROM rg_dist d WHERE d.qn = c.qn AND d.op = c.op AND d.d <= c.r) AS n
                 FROM rg_case c WHERE what IN ('no row', 'one row at r', 'a row and its duplicate')) s),
          '{"<-> a row and its duplicate: 2","<-> no row: 0","<-> one row at r: 1",'
          '"<=> a row and its duplicate: 2","<=> no row: 0","<=> one row at r: 1"}',
          'the cases catch no row, one row, a row and its copy');

-- Runs query (text with %1$s for the sphere operator) by method; the
-- rows as (id, d) in the order returned. argsort: a sequential scan.
CREATE FUNCTION pg_temp.range_rows(query text, method text, settings jsonb DEFAULT NULL)
RETURNS TABLE (n bigint, id int, d float8) LANGUAGE plpgsql AS $$
DECLARE
	saved jsonb;
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	PERFORM set_config('enable_seqscan', (method = 'argsort')::text, true);
	PERFORM set_config('enable_indexscan', (method <> 'argsort')::text, true);
	PERFORM set_config('enable_bitmapscan', 'off', true);
	saved := pg_temp.apply_settings(settings);
	RETURN QUERY EXECUTE format('SELECT row_number() OVER (), id, d FROM (%s) s', query);
	PERFORM pg_temp.restore_settings(saved);
END $$;

CREATE FUNCTION pg_temp.ids(query text, method text, settings jsonb DEFAULT NULL) RETURNS int[]
LANGUAGE sql AS $$
	SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM pg_temp.range_rows(query, method, settings) $$;

-- What is wrong with ordered rows against the reference's ('' if nothing):
-- the distances, in order, must be equal; each id must be a reference row
-- at its distance (ties as sets), and come once.
CREATE FUNCTION pg_temp.order_problems(query text, method text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	got float8[];
	want float8[];
	ids int[];
	bad int;
BEGIN
	CREATE TEMP TABLE IF NOT EXISTS rg_got (n bigint, id int, d float8);
	CREATE TEMP TABLE IF NOT EXISTS rg_want (n bigint, id int, d float8);
	TRUNCATE rg_got, rg_want;
	INSERT INTO rg_got SELECT * FROM pg_temp.range_rows(query, method);
	INSERT INTO rg_want SELECT * FROM pg_temp.range_rows(query, 'argsort');
	SELECT coalesce(array_agg(d ORDER BY n), '{}') INTO got FROM rg_got;
	SELECT coalesce(array_agg(d ORDER BY n), '{}') INTO want FROM rg_want;
	IF got IS DISTINCT FROM want THEN
		RETURN format('distances %s, want %s', got, want);
	END IF;
	SELECT count(*) INTO bad FROM rg_got g
	WHERE (SELECT count(*) FROM rg_got h WHERE h.id = g.id) > 1;
	IF bad > 0 THEN
		RETURN 'a row twice';
	END IF;
	-- a row of the answer tied with the reference's last distance may be another tied row
	EXECUTE format('SELECT array_agg(g.id) FROM rg_got g WHERE NOT EXISTS (SELECT 1 FROM (%s) w WHERE w.id = g.id AND w.d = g.d)',
	               regexp_replace(query, 'LIMIT [0-9]+', ''))
		INTO ids;
	IF ids IS NOT NULL THEN
		RETURN format('rows %s are not reference rows at their distance', ids);
	END IF;
	RETURN '';
END $$;

-- The checks of one case, as TAP lines.
CREATE FUNCTION pg_temp.range_case(method text, op text, qn int, r float8, what text)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	sop text := CASE op WHEN '<->' THEN '<<->>' ELSE '<<=>>' END;
	q imgfeat := (SELECT x.q FROM rg_query x WHERE x.qn = range_case.qn);
	other imgfeat := (SELECT x.q FROM rg_query x WHERE x.qn = 3 - range_case.qn);
	sphere text := format('imgsearch_sphere(%L::imgfeat, %s)', q, r);
	label text := format('%s %s query %s r=%s (%s)', method, sop, qn, r, what);
	ref int[];
	plan text;
BEGIN
	-- the reference: the plain distance operator over a sequential scan
	ref := pg_temp.ids(format('SELECT id, 0::float8 AS d FROM rg WHERE v %s %L::imgfeat <= %s', op, q, r), 'argsort');
	RETURN NEXT is(pg_temp.ids(format('SELECT id, 0::float8 AS d FROM rg WHERE v %s %s', sop, sphere), method),
	               ref, label || ': the ids of v ' || op || ' q <= r');
	RETURN NEXT is(pg_temp.ids(format('SELECT id, 0::float8 AS d FROM rg WHERE v %s %s', sop, sphere), 'argsort'),
	               ref, label || ': the operator over a sequential scan, too');
	RETURN NEXT is(pg_temp.ids(format('SELECT id, 0::float8 AS d FROM rg WHERE v %s %s AND id %% 3 = 0', sop, sphere), method),
	               ARRAY(SELECT x FROM unnest(ref) x WHERE x % 3 = 0 ORDER BY x),
	               label || ': with another WHERE clause');
	RETURN NEXT is(pg_temp.ids(format('SELECT id, 0::float8 AS d FROM rg WHERE v %s %s', sop, sphere), method,
	                           '{"kdtree.max_leaves": 1, "lsh.probes": 1, "lsh.candidates": 16}'),
	               ref, label || ': small budgets change nothing');
	RETURN NEXT is(pg_temp.order_problems(
		format('SELECT id, v %s %L::imgfeat AS d FROM rg WHERE v %s %s ORDER BY v %s %L::imgfeat LIMIT 10',
		       op, q, sop, sphere, op, q), method),
		'', label || ': ORDER BY the centre LIMIT 10');
	RETURN NEXT is(pg_temp.order_problems(
		format('SELECT id, v %s %L::imgfeat AS d FROM rg WHERE v %s %s ORDER BY v %s %L::imgfeat LIMIT 5',
		       op, other, sop, sphere, op, other), method),
		'', label || ': ORDER BY another query LIMIT 5');
	PERFORM set_config('imgsearch.method', method, true);
	PERFORM set_config('enable_seqscan', 'off', true);
	SELECT string_agg(p, E'\n') INTO plan
	FROM pg_temp.explain_lines(format('SELECT id FROM rg WHERE v %s %s', sop, sphere)) p;
	RESET enable_seqscan;
	RETURN NEXT ok(plan ~ ('Index Scan using rg_' || CASE method WHEN 'faissflat' THEN 'ff' WHEN 'kdtree' THEN 'kd' ELSE 'lsh' END
	                       || '_' || CASE op WHEN '<->' THEN 'l2' ELSE 'cos' END || ' on rg')
	               AND plan ~ 'Index Cond: \(v <<', label || ': an index scan: ' || plan);
END $$;

SELECT pg_temp.range_case(m.method, c.op, c.qn, c.r, c.what)
FROM (VALUES ('faissflat'), ('kdtree'), ('lsh')) m(method), rg_case c
ORDER BY m.method, c.op, c.qn, c.r;

-- Under imgsearch.method = auto, with sequential scans allowed, the planner
-- takes an index for a small radius (the operators' fixed selectivity).
SELECT ok(p ~ 'Index Scan using rg_(ff|kd|lsh)_l2 on rg', 'auto: a small radius takes an index: ' || p)
FROM (SELECT string_agg(e, E'\n') AS p
      FROM pg_temp.explain_lines(format('SELECT id FROM rg WHERE v <<->> imgsearch_sphere(%L::imgfeat, 0.01)',
                                        (SELECT q FROM rg_query WHERE qn = 2))) e) s;

-- NULLs, as SQL has them: no row is within a NULL sphere, nor a sphere of a
-- NULL centre or radius; a NULL vector is within no sphere.
SET imgsearch.method = kdtree;
SET enable_seqscan = off;
SELECT is((SELECT count(*) FROM rg WHERE v <<->> NULL::imgsearch_sphere), 0::bigint,
          'a NULL sphere through the index: no row');
SELECT is((SELECT count(*) FROM rg WHERE v <<->> imgsearch_sphere(NULL, 1)), 0::bigint,
          'imgsearch_sphere(NULL, r) is NULL: no row');
SELECT is((SELECT count(*) FROM rg WHERE v <<=>> ROW((SELECT v FROM rg WHERE id = 1007), NULL)::imgsearch_sphere), 0::bigint,
          'a sphere of NULL radius through the index: no row');
SELECT is((SELECT count(*) FROM rg WHERE v <<->> imgsearch_sphere((SELECT v FROM rg WHERE id = 1007), 1e6)),
          (SELECT count(v) FROM rg), 'a radius beyond every row: every row but the NULL ones');
SELECT ok(NULL::imgfeat <<->> imgsearch_sphere('[1,2]', 1) IS NULL
          AND '[1,2]'::imgfeat <<->> ROW('[1,2]', NULL)::imgsearch_sphere IS NULL
          AND '[1,2]'::imgfeat <<=>> NULL IS NULL, 'the operators are NULL for a NULL side');
SELECT ok('[0,0]'::imgfeat <<=>> imgsearch_sphere('[1,2]', 2) = false,
          'a zero vector (cosine distance NaN) is within no cosine sphere');

-- Bad radii: 22023, from the constructor, the operators and the index scan.
SELECT throws_ok($$SELECT imgsearch_sphere('[1,2]', -0.5)$$, '22023', NULL, 'a negative radius');
SELECT throws_ok($$SELECT imgsearch_sphere('[1,2]', 'NaN')$$, '22023', NULL, 'a NaN radius');
SELECT throws_ok($$SELECT imgsearch_sphere('[1,2]', 'Infinity')$$, '22023', NULL, 'an infinite radius');
SELECT throws_ok($$SELECT '[1,2]'::imgfeat <<->> ROW('[1,2]', -1)::imgsearch_sphere$$, '22023', NULL,
                 'a negative radius past the constructor: the operator');
SELECT throws_ok($$SELECT count(*) FROM rg WHERE v <<->> ROW((SELECT v FROM rg WHERE id = 1007), 'NaN')::imgsearch_sphere$$,
                 '22023', NULL, 'a NaN radius past the constructor: the index scan');
-- Dimension mismatches: 22000.
SELECT throws_ok($$SELECT '[1,2,3]'::imgfeat <<=>> imgsearch_sphere('[1,2]', 1)$$, '22000', NULL,
                 'the operator: different dimensions');
SELECT throws_ok($$SELECT count(*) FROM rg WHERE v <<->> imgsearch_sphere('[1,2,3]', 1)$$, '22000', NULL,
                 'the index scan: different dimensions');
RESET enable_seqscan;
RESET imgsearch.method;
SELECT is((SELECT array_agg(amvalidate(c.oid)) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
           WHERE a.amname IN ('faissflat', 'kdtree', 'lsh')), '{t,t,t,t,t,t,t,t}',
          'every imgsearch operator class validates (the sphere operators at strategies 4 and 5)');

SELECT * FROM finish();
