-- An allocation that fails inside a C++ core (imgsearch.inject_fault makes
-- the named fault point throw std::bad_alloc) is a clean ERROR with SQLSTATE
-- 53200 (out_of_memory): the backend stays up, the statement's work is
-- rolled back, and the same statement works once the fault is cleared.
CREATE TABLE faults (id int, v imgfeat(4));
INSERT INTO faults SELECT i, ARRAY[i, i % 7, (i * 3) % 11, 1]::imgfeat FROM generate_series(1, 300) i;
CREATE INDEX faults_lsh ON faults USING lsh (v) WITH (buckets = 8);
CREATE INDEX faults_kd ON faults USING kdtree (v);
CREATE INDEX faults_ff ON faults USING faissflat (v);
SET enable_seqscan = off;
-- a budget: on data this small exact kdtree scans are flat from the start
-- and never reach the tree search
SET kdtree.max_leaves = 4;

-- runs sql under imgsearch.method with the fault point armed; its
-- SQLSTATE and message, or 'no error'
CREATE FUNCTION pg_temp.with_fault(point text, method text, sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('imgsearch.method', method, true);
  PERFORM set_config('imgsearch.inject_fault', point, true);
  EXECUTE sql;
  PERFORM set_config('imgsearch.inject_fault', '', true);
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  PERFORM set_config('imgsearch.inject_fault', '', true);
  RETURN SQLSTATE || ' ' || SQLERRM;
END $$;

SELECT point, pg_temp.with_fault(point, method, sql) AS outcome
FROM (VALUES
  ('lsh_train', 'auto', 'CREATE INDEX faults_lsh2 ON faults USING lsh (v) WITH (buckets = 8)'),
  ('lsh_hash_many', 'auto', 'CREATE INDEX faults_lsh2 ON faults USING lsh (v) WITH (buckets = 8)'),
  ('lsh_hash_chunk', 'auto', 'CREATE INDEX faults_lsh2 ON faults USING lsh (v) WITH (buckets = 8)'),
  ('lsh_hash', 'auto', 'INSERT INTO faults VALUES (1000, ''[1,2,3,4]'')'),
  ('lsh_query_begin', 'lsh', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('lsh_query_probe_order', 'lsh', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('kd_pca_train', 'auto', 'CREATE INDEX faults_kd2 ON faults USING kdtree (v)'),
  ('kd_tree_build', 'auto', 'CREATE INDEX faults_kd2 ON faults USING kdtree (v)'),
  ('kd_search_begin', 'kdtree', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('kd_search_next', 'kdtree', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('ff_a2_pass', 'faissflat', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('ff_a2_pass_chunk', 'faissflat', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s'),
  ('no_such_point', 'kdtree', 'SELECT count(*) FROM (SELECT id FROM faults ORDER BY v <-> ''[5,5,5,1]'' LIMIT 3) s')
) AS t(point, method, sql);

-- nothing half-done: no new index, no new row, the indexes check out
SELECT count(*) AS indexes FROM pg_index WHERE indrelid = 'faults'::regclass;
SELECT count(*) AS rows FROM faults;
SELECT method, heap_rows FROM imgsearch_index_check('faults_lsh');
SELECT method, heap_rows FROM imgsearch_index_check('faults_kd');
SELECT method, heap_rows FROM imgsearch_index_check('faults_ff');

RESET kdtree.max_leaves;

-- and with the fault cleared each statement works: a sequential scan agrees
SET imgsearch.inject_fault = '';
INSERT INTO faults VALUES (1000, '[1,2,3,4]');
SET imgsearch.method = argsort;   -- the reference: a sequential scan and sort
CREATE TEMP TABLE want AS
  SELECT string_agg(id::text, ',' ORDER BY d, id) AS ids
  FROM (SELECT id, v <-> '[5,5,5,1]' AS d FROM faults ORDER BY d, id LIMIT 3) s;
-- the nearest three are at distinct distances (checked here, so the
-- comparison below cannot depend on the order of ties)
SELECT count(DISTINCT d) = 4 AS no_ties
FROM (SELECT v <-> '[5,5,5,1]' AS d FROM faults ORDER BY d LIMIT 4) s;
SET imgsearch.method = lsh;
SELECT string_agg(id::text, ',') = (SELECT ids FROM want) AS lsh_agrees
FROM (SELECT id FROM faults ORDER BY v <-> '[5,5,5,1]' LIMIT 3) s;
SET imgsearch.method = kdtree;
SELECT string_agg(id::text, ',') = (SELECT ids FROM want) AS kdtree_agrees
FROM (SELECT id FROM faults ORDER BY v <-> '[5,5,5,1]' LIMIT 3) s;
SET imgsearch.method = faissflat;
SELECT string_agg(id::text, ',') = (SELECT ids FROM want) AS faissflat_agrees
FROM (SELECT id FROM faults ORDER BY v <-> '[5,5,5,1]' LIMIT 3) s;
RESET imgsearch.method;
RESET enable_seqscan;

-- only a superuser may arm a fault
CREATE ROLE faults_plain_user;
SET ROLE faults_plain_user;
SET imgsearch.inject_fault = 'kd_search_next';
RESET ROLE;
DROP ROLE faults_plain_user;
DROP TABLE faults;
