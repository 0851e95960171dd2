-- The planner's choice follows the filter (index_cost.c): under
-- imgsearch.method = auto, a LIMIT 30 query whose filter keeps 0.1% or 1% of
-- 20k rows is answered by a sequential scan, the filter and a sort (an
-- ordered index scan would read about 30 / 0.001 rows, the whole table, or
-- 3000, to find 30 that pass; the estimate before it kept lsh at 1%), and
-- the same query without the filter by an ordered index scan (30 rows read);
-- for each index method alone on the table. imgsearch.method
-- naming a method makes that method's index answer even where the sort looks
-- cheaper: on a table of 100 rows, of 3 rows, and under the 0.1% filter;
-- argsort makes every query sort. Plans only (EXPLAIN (COSTS OFF)): nothing
-- here depends on timing.
SET client_min_messages = warning;
SET statement_timeout = '60s';

-- 20k rows x 64 dimensions, seeded; bucket uniform in 0..999, so bucket < 1 keeps 0.1%
SELECT setseed(0.21);
CREATE TABLE fp (id int, bucket int, v imgfeat(64));
INSERT INTO fp
SELECT i, floor(random() * 1000)::int,
       (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i > 0)::imgfeat(64)
FROM generate_series(1, 20000) i;
CREATE TABLE fp_small (id int, bucket int, v imgfeat(64));
INSERT INTO fp_small SELECT * FROM fp WHERE id <= 100;
CREATE TABLE fp_tiny (id int, bucket int, v imgfeat(64));
INSERT INTO fp_tiny SELECT * FROM fp WHERE id <= 3;
ANALYZE fp;
ANALYZE fp_small;
ANALYZE fp_tiny;

-- the plan of a query, its lines joined
CREATE FUNCTION plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	line text;
	plan text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		plan := plan || line || E'\n';
	END LOOP;
	RETURN plan;
END $$;

-- the query: the 30 nearest to a stored row's vector, with an optional filter
CREATE FUNCTION nearest(tbl text, filter text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT id FROM %I %s ORDER BY v <-> (SELECT v FROM %I WHERE id = 2) LIMIT 30',
				  tbl, filter, tbl)
$$;

CREATE TABLE methods (am text PRIMARY KEY);
INSERT INTO methods VALUES ('faissflat'), ('kdtree'), ('lsh');

SELECT plan(3 * 3 + 3 * 3 + 2);

-- auto, one index at a time
CREATE FUNCTION auto_plans(am text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	filtered text;
	one_percent text;
	unfiltered text;
BEGIN
	EXECUTE format('CREATE INDEX fp_%s ON fp USING %s (v)', am, am);
	SET imgsearch.method = auto;
	filtered := plan_of(nearest('fp', 'WHERE bucket < 1'));
	one_percent := plan_of(nearest('fp', 'WHERE bucket < 10'));
	unfiltered := plan_of(nearest('fp', ''));
	EXECUTE format('DROP INDEX fp_%s', am);
	RETURN NEXT ok(filtered LIKE '%Sort%' AND filtered NOT LIKE '%Index Scan%',
				   am || ', auto: a 0.1% filter sorts the rows that pass' ||
				   CASE WHEN filtered NOT LIKE '%Sort%' THEN E'\n' || filtered ELSE '' END);
	RETURN NEXT ok(one_percent LIKE '%Sort%' AND one_percent NOT LIKE '%Index Scan%',
				   am || ', auto: a 1% filter sorts the rows that pass' ||
				   CASE WHEN one_percent NOT LIKE '%Sort%' THEN E'\n' || one_percent ELSE '' END);
	RETURN NEXT ok(unfiltered LIKE format('%%Index Scan using fp_%s%%', am) AND unfiltered NOT LIKE '%Sort%',
				   am || ', auto: no filter, an ordered index scan' ||
				   CASE WHEN unfiltered NOT LIKE '%Index Scan%' THEN E'\n' || unfiltered ELSE '' END);
END $$;

SELECT auto_plans(am) FROM methods ORDER BY am;

-- imgsearch.method = <method>, with every kind of index on the tables
CREATE INDEX fp_faissflat ON fp USING faissflat (v);
CREATE INDEX fp_kdtree ON fp USING kdtree (v);
CREATE INDEX fp_lsh ON fp USING lsh (v);
CREATE INDEX fp_small_faissflat ON fp_small USING faissflat (v);
CREATE INDEX fp_small_kdtree ON fp_small USING kdtree (v);
CREATE INDEX fp_small_lsh ON fp_small USING lsh (v);
CREATE INDEX fp_tiny_faissflat ON fp_tiny USING faissflat (v);
CREATE INDEX fp_tiny_kdtree ON fp_tiny USING kdtree (v);
CREATE INDEX fp_tiny_lsh ON fp_tiny USING lsh (v);

CREATE FUNCTION forced_plans(am text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	p text;
	q record;
BEGIN
	PERFORM set_config('imgsearch.method', am, true);
	FOR q IN SELECT * FROM (VALUES ('fp_small', ''), ('fp_tiny', ''), ('fp', 'WHERE bucket < 1')) t(tbl, filter)
	LOOP
		p := plan_of(nearest(q.tbl, q.filter));
		RETURN NEXT ok(p LIKE format('%%Index Scan using %s_%s%%', q.tbl, am),
					   format('imgsearch.method = %s: %s %s uses its %s index', am, q.tbl, q.filter, am) ||
					   CASE WHEN p NOT LIKE '%Index Scan%' THEN E'\n' || p ELSE '' END);
	END LOOP;
END $$;

BEGIN;
SELECT forced_plans(am) FROM methods ORDER BY am;
COMMIT;

SET imgsearch.method = argsort;
SELECT ok(plan_of(nearest('fp_small', '')) NOT LIKE '%Index Scan%', 'argsort: a small table sorts');
SELECT ok(plan_of(nearest('fp', '')) NOT LIKE '%Index Scan%', 'argsort: no filter, a sort');
RESET imgsearch.method;

SELECT * FROM finish();
