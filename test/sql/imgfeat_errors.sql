-- Every error path: SQLSTATE and message. err() runs a statement and shows
-- the error it raises instead of aborting the script.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- malformed text
SELECT pg_temp.err($$SELECT ''::imgfeat$$);
SELECT pg_temp.err($$SELECT '1,2'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1,2'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1,,2]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1,2,]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1 2]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[a]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1]x'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1e39]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1e-50]'::imgfeat$$);
-- empty
SELECT pg_temp.err($$SELECT '[]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '{}'::real[]::imgfeat$$);
-- NaN and infinities, in every way in
SELECT pg_temp.err($$SELECT '[1,NaN]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[inf]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '[-Infinity]'::imgfeat$$);
SELECT pg_temp.err($$SELECT '{1,NaN}'::real[]::imgfeat$$);
SELECT pg_temp.err($$SELECT '{Infinity}'::double precision[]::imgfeat$$);
SELECT pg_temp.err($$SELECT '{NaN}'::numeric[]::imgfeat$$);
SELECT pg_temp.err($$SELECT '{1e300}'::double precision[]::imgfeat$$);
-- too many dimensions
SELECT pg_temp.err($$SELECT array_fill(1::real, ARRAY[16001])::imgfeat$$);
SELECT pg_temp.err($$SELECT ('[' || repeat('1,', 16000) || '1]')::imgfeat$$);
SELECT pg_temp.err($$SELECT '[1]'::imgfeat(16001)$$);
SELECT pg_temp.err($$SELECT '[1]'::imgfeat(0)$$);
SELECT pg_temp.err($$SELECT '[1]'::imgfeat(1, 2)$$);
-- typmod mismatch
SELECT pg_temp.err($$SELECT '[1,2]'::imgfeat(3)$$);
SELECT pg_temp.err($$SELECT '{1,2}'::real[]::imgfeat(3)$$);
CREATE TABLE t3 (v imgfeat(3));
SELECT pg_temp.err($$INSERT INTO t3 VALUES ('[1,2]')$$);
SELECT pg_temp.err($$INSERT INTO t3 VALUES (ARRAY[1,2,3,4])$$);
DROP TABLE t3;
-- arrays that cannot be vectors
SELECT pg_temp.err($$SELECT '{{1,2},{3,4}}'::real[]::imgfeat$$);
SELECT pg_temp.err($$SELECT '{1,NULL}'::real[]::imgfeat$$);
-- dimension mismatch between operands
SELECT pg_temp.err($$SELECT '[1,2]'::imgfeat <-> '[1,2,3]'$$);
SELECT pg_temp.err($$SELECT '[1,2]'::imgfeat <=> '[1,2,3]'$$);
SELECT pg_temp.err($$SELECT '[1,2]'::imgfeat <#> '[1,2,3]'$$);
SELECT pg_temp.err($$SELECT l2_squared_distance('[1]', '[1,2]')$$);
SELECT pg_temp.err($$SELECT inner_product('[1]', '[1,2]')$$);
SELECT pg_temp.err($$SELECT avg(v) FROM (VALUES ('[1,2]'::imgfeat), ('[1,2,3]')) t(v)$$);

-- a plain error, then the session carries on
SELECT '[1,2'::imgfeat;
SELECT '[1,2]'::imgfeat;
