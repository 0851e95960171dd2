-- The shared re-rank call of the vector store (imgs_store_keys, reached
-- through the test hook faissflat_store_keys): for slots in any order, with
-- repeats, it returns each slot's heap TID and the key of its vector, equal to
-- the bit to the SQL operator on the row that TID names; at 3 dimensions (many
-- vectors a page), 1000 (some vectors within a page, some across two) and
-- 4096 (every vector over three pages), for L2, cosine and inner product.
-- Then the slot reuse rule's store side: VACUUM frees exactly the slots of
-- the deleted rows, and inserts reuse them with their new rows' TIDs and
-- vectors.
SET client_min_messages = warning;
SET statement_timeout = '60s';
SELECT plan(3 * 7);

SELECT setseed(0.75);
CREATE TABLE sk (dim int, id int, v imgfeat);
INSERT INTO sk
SELECT dim, i, (SELECT array_agg(random()::real) FROM generate_series(1, dim) WHERE i > 0)::imgfeat
FROM (VALUES (3, 1500), (1000, 400), (4096, 150)) d(dim, n), generate_series(1, n) i;
CREATE TABLE sk3 AS SELECT id, v::imgfeat(3) AS v FROM sk WHERE dim = 3;
CREATE TABLE sk1000 AS SELECT id, v::imgfeat(1000) AS v FROM sk WHERE dim = 1000;
CREATE TABLE sk4096 AS SELECT id, v::imgfeat(4096) AS v FROM sk WHERE dim = 4096;
CREATE INDEX sk3_cos ON sk3 USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX sk1000_l2 ON sk1000 USING faissflat (v);
CREATE INDEX sk4096_ip ON sk4096 USING faissflat (v imgfeat_ip_ops);
CREATE TABLE skq AS
SELECT dim, (SELECT array_agg(random()::real) FROM generate_series(1, dim) WHERE dim > 0)::imgfeat AS q
FROM (VALUES (3), (1000), (4096)) d(dim);

-- slots 0..n-1 in a random order, every one twice
CREATE FUNCTION pg_temp.slots(n int) RETURNS int8[] LANGUAGE sql AS $$
	SELECT array_agg(s ORDER BY random()) FROM generate_series(0, n - 1) s, generate_series(1, 2) $$;

-- (slot, live, tid, key, the id and operator's value of the row at tid)
CREATE FUNCTION pg_temp.keys(tbl regclass, idx regclass, d int, n int)
RETURNS TABLE (slot int8, live bool, tid tid, key float8, id int, value float8) LANGUAGE plpgsql AS $$
DECLARE
	op text := CASE idx::text WHEN 'sk3_cos' THEN '<=>' WHEN 'sk1000_l2' THEN '<->' ELSE '<#>' END;
BEGIN
	RETURN QUERY EXECUTE format(
		'SELECT k.slot, k.live, k.heap_tid, CASE %L WHEN ''<->'' THEN sqrt(k.key) ELSE k.key END,
		        t.id, t.v %s (SELECT q FROM skq WHERE dim = %s)
		 FROM faissflat_store_keys(%L, pg_temp.slots(%s),
		                           (SELECT q FROM skq WHERE dim = %s)) k
		 LEFT JOIN %s t ON t.ctid = k.heap_tid', op, op, d, idx, n, d, tbl);
END $$;

CREATE TEMP TABLE before AS
SELECT 'sk3' AS tbl, * FROM pg_temp.keys('sk3', 'sk3_cos', 3, 1500)
UNION ALL SELECT 'sk1000', * FROM pg_temp.keys('sk1000', 'sk1000_l2', 1000, 400)
UNION ALL SELECT 'sk4096', * FROM pg_temp.keys('sk4096', 'sk4096_ip', 4096, 150);

SELECT is((SELECT count(*) FROM before b WHERE b.tbl = t.tbl), 2 * t.n::bigint,
          t.tbl || ': one row per slot asked for')
FROM (VALUES ('sk3', 1500), ('sk1000', 400), ('sk4096', 150)) t(tbl, n);
SELECT is((SELECT count(DISTINCT tid) FROM before b WHERE b.tbl = t.tbl AND live), t.n::bigint,
          t.tbl || ': every slot live, each with a TID of its own')
FROM (VALUES ('sk3', 1500), ('sk1000', 400), ('sk4096', 150)) t(tbl, n);
SELECT is((SELECT count(*) FROM before b WHERE b.tbl = t.tbl AND value IS NULL), 0::bigint,
          t.tbl || ': every TID names a row of the table')
FROM (VALUES ('sk3'), ('sk1000'), ('sk4096')) t(tbl);
SELECT is((SELECT count(*) FROM before b WHERE b.tbl = t.tbl AND key IS DISTINCT FROM value), 0::bigint,
          t.tbl || ': every key is the operator''s value on its row, to the bit')
FROM (VALUES ('sk3'), ('sk1000'), ('sk4096')) t(tbl);

-- reuse: delete a third, vacuum, insert as many new rows
DELETE FROM sk3 WHERE id % 3 = 0;
DELETE FROM sk1000 WHERE id % 3 = 0;
DELETE FROM sk4096 WHERE id % 3 = 0;
VACUUM (INDEX_CLEANUP ON) sk3, sk1000, sk4096;
CREATE TEMP TABLE freed AS
SELECT 'sk3' AS tbl, * FROM pg_temp.keys('sk3', 'sk3_cos', 3, 1500)
UNION ALL SELECT 'sk1000', * FROM pg_temp.keys('sk1000', 'sk1000_l2', 1000, 400)
UNION ALL SELECT 'sk4096', * FROM pg_temp.keys('sk4096', 'sk4096_ip', 4096, 150);
SELECT is((SELECT array_agg(DISTINCT slot ORDER BY slot) FROM freed f WHERE f.tbl = t.tbl AND NOT live),
          (SELECT array_agg(DISTINCT slot ORDER BY slot) FROM before b WHERE b.tbl = t.tbl AND b.id % 3 = 0),
          t.tbl || ': VACUUM freed exactly the slots of the deleted rows')
FROM (VALUES ('sk3'), ('sk1000'), ('sk4096')) t(tbl);

INSERT INTO sk3 SELECT -id, v FROM sk WHERE dim = 3 AND id % 3 = 1 LIMIT 500;
INSERT INTO sk1000 SELECT -id, v FROM sk WHERE dim = 1000 AND id % 3 = 1 LIMIT 133;
INSERT INTO sk4096 SELECT -id, v FROM sk WHERE dim = 4096 AND id % 3 = 1 LIMIT 50;
CREATE TEMP TABLE reused AS
SELECT 'sk3' AS tbl, * FROM pg_temp.keys('sk3', 'sk3_cos', 3, 1500)
UNION ALL SELECT 'sk1000', * FROM pg_temp.keys('sk1000', 'sk1000_l2', 1000, 400)
UNION ALL SELECT 'sk4096', * FROM pg_temp.keys('sk4096', 'sk4096_ip', 4096, 150);
SELECT is((SELECT count(*) FROM reused r JOIN freed f USING (tbl, slot)
           WHERE r.tbl = t.tbl AND NOT f.live AND (NOT r.live OR r.id >= 0)), 0::bigint,
          t.tbl || ': every freed slot went to a new row (the slot count did not grow)')
FROM (VALUES ('sk3'), ('sk1000'), ('sk4096')) t(tbl);
SELECT is((SELECT count(*) FROM reused r WHERE r.tbl = t.tbl AND (r.value IS NULL OR r.key IS DISTINCT FROM r.value)),
          0::bigint, t.tbl || ': reused slots give the new rows'' keys, to the bit')
FROM (VALUES ('sk3'), ('sk1000'), ('sk4096')) t(tbl);

SELECT * FROM finish();
DROP TABLE sk, sk3, sk1000, sk4096, skq;
