-- Wide vectors make small indexes for small tables: a 2-row imgfeat(16000)
-- table gets indexes of a few MB (groups of 32 slots at 16000-d, lsh bits
-- chosen by the rows), not the 44-105 MB a 680-slot group and 1024 bits
-- took; they grow group by group as rows come, and still answer exactly as
-- a sequential scan. An lsh build whose rotation does not fit in
-- maintenance_work_mem is refused at once (54000), not after minutes.
BEGIN;
SET client_min_messages = warning;
SET statement_timeout = '120s';
SELECT plan(16);

CREATE FUNCTION pg_temp.rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)';
-- the ids by a sequential scan and sort, with the distances (random vectors:
-- no ties, checked below), and the same by the index named
CREATE FUNCTION pg_temp.seq_ids(q imgfeat) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
  SET LOCAL imgsearch.method = 'argsort';
  SELECT string_agg(id::text, ',' ORDER BY d, id) INTO r FROM (SELECT id, v <-> q AS d FROM w) s;
  RETURN r;
END $$;
CREATE FUNCTION pg_temp.index_ids(method text, q imgfeat) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
  PERFORM set_config('imgsearch.method', method, true);
  SET LOCAL enable_seqscan = off; SET LOCAL lsh.probes = 0; SET LOCAL lsh.candidates = 0;
  SELECT string_agg(id::text, ',') INTO r FROM (SELECT id FROM w ORDER BY v <-> q) s;
  RETURN r;
END $$;

SELECT setseed(0.16);
CREATE TABLE w (id int, v imgfeat(16000));
INSERT INTO w SELECT i, pg_temp.rand_vec(16000) FROM generate_series(1, 2) i;
CREATE INDEX w_flat ON w USING faissflat (v);
CREATE INDEX w_kd ON w USING kdtree (v);
CREATE INDEX w_lsh ON w USING lsh (v);
CREATE TEMP TABLE q AS SELECT pg_temp.rand_vec(16000) AS q;

SELECT cmp_ok(pg_relation_size('w_flat'), '<', 4 * 1024 * 1024::bigint, 'faissflat on 2 rows of 16000-d: under 4 MB');
SELECT cmp_ok(pg_relation_size('w_kd'), '<', 8 * 1024 * 1024::bigint, 'kdtree on 2 rows of 16000-d: under 8 MB');
SELECT cmp_ok(pg_relation_size('w_lsh'), '<', 12 * 1024 * 1024::bigint, 'lsh on 2 rows of 16000-d: under 12 MB');

SELECT is(pg_temp.index_ids(m, (SELECT q FROM q)), pg_temp.seq_ids((SELECT q FROM q)),
          m || ' on 2 rows agrees with a sequential scan')
FROM unnest(ARRAY['faissflat', 'kdtree', 'lsh']) m;

-- rows past the first group (32 slots at 16000-d), then a second build
INSERT INTO w SELECT i, pg_temp.rand_vec(16000) FROM generate_series(3, 70) i;
SELECT is((SELECT count(DISTINCT v <-> (SELECT q FROM q)) FROM w), 70::bigint, 'no two distances tie');
SELECT is((SELECT heap_rows || '/' || entries FROM imgsearch_index_check(i)), '70/70',
          i || ' checks out after inserts across groups')
FROM unnest(ARRAY['w_flat', 'w_kd', 'w_lsh']) i;
SELECT is(pg_temp.index_ids(m, (SELECT q FROM q)), pg_temp.seq_ids((SELECT q FROM q)),
          m || ' on 70 rows in three groups agrees with a sequential scan')
FROM unnest(ARRAY['faissflat', 'kdtree', 'lsh']) m;

-- the lsh build's memory
SELECT throws_ok($$CREATE INDEX ON w USING lsh (v) WITH (bits = 4096)$$, '54000', NULL,
                 'bits = 4096 at 16000-d needs more than maintenance_work_mem: refused');
SET maintenance_work_mem = '1MB';
SELECT throws_ok($$CREATE INDEX ON w USING lsh (v)$$, '54000', NULL,
                 'even the fewest bits do not fit in 1 MB: refused');
RESET maintenance_work_mem;
-- a 4096-d table of 2000 rows keeps 1024 bits at the default 64 MB
CREATE TABLE w4 (v imgfeat(4096));
INSERT INTO w4 SELECT pg_temp.rand_vec(4096) FROM generate_series(1, 2);
SELECT lives_ok($$CREATE INDEX ON w4 USING lsh (v) WITH (bits = 1024)$$,
                '1024 bits at 4096-d fit in the default maintenance_work_mem');

SELECT * FROM finish();
ROLLBACK;
