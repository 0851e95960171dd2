-- kdtree: catalog, plans, small answers that can be checked by hand, NULLs,
-- an empty table, reloptions, kdtree.max_leaves, errors, DDL variants,
-- imgsearch_index_check. Exactness on real data: test/pgtap/kdtree_exact.sql.
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- the plan's node lines, without the long query vectors
CREATE FUNCTION pg_temp.plan(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
    IF line !~ '(Order By|Sort Key):' THEN
      RETURN NEXT line;
    END IF;
  END LOOP;
END $$;
-- An index's ranking (ids and distances, in the order returned) against a
-- sort's, fair to ties, whose order no sort defines: the same distances in
-- the same order, distinct ids, and the same rows (id and distance), every
-- one (whole) or those nearer than the last distance (under LIMIT k, rows
-- tied with the k-th may be other rows at that distance).
CREATE FUNCTION pg_temp.same_ranking(ids int[], dists float8[], sort_ids int[], sort_dists float8[], whole bool)
RETURNS bool LANGUAGE sql AS $$
  SELECT dists = sort_dists
     AND (SELECT count(DISTINCT i) FROM unnest(ids) i) = cardinality(ids)
     AND NOT EXISTS ((SELECT i, d FROM unnest(ids, dists) u(i, d) WHERE whole OR d < sort_dists[cardinality(sort_dists)]
                      EXCEPT SELECT i, d FROM unnest(sort_ids, sort_dists) u(i, d))
                     UNION ALL
                     (SELECT i, d FROM unnest(sort_ids, sort_dists) u(i, d) WHERE whole OR d < sort_dists[cardinality(sort_dists)]
                      EXCEPT SELECT i, d FROM unnest(ids, dists) u(i, d))) $$;
-- Every ranking printed below is of data without ties where it is printed:
-- the distances each comment gives (and the printed ones) are distinct,
-- and under LIMIT k the k-th differs from the next one; the ranking of
-- random data is compared with the sort's by same_ranking.

-- the operator classes: L2 (default) and cosine, no inner product; they validate
SELECT opcname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
WHERE amname = 'kdtree' ORDER BY opcname;
SELECT amname, amtype FROM pg_am WHERE amname = 'kdtree';

-- an empty table: the build says the index scans every vector until REINDEX;
-- the scan returns nothing
CREATE TABLE kd_empty (id int, v imgfeat(3));
CREATE INDEX kd_empty_l2 ON kd_empty USING kdtree (v);
SET imgsearch.method = 'kdtree';
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_empty ORDER BY v <-> '[1,2,3]' LIMIT 3$$);
SELECT id FROM kd_empty ORDER BY v <-> '[1,2,3]' LIMIT 3;
-- then rows come: all found (distances 0, 1, sqrt(149))
INSERT INTO kd_empty VALUES (1, '[1,2,3]'), (2, '[1,2,4]'), (3, '[9,9,9]'), (4, NULL);
SELECT id FROM kd_empty ORDER BY v <-> '[1,2,3]';
-- REINDEX: now there is something to learn from, and no notice (distances
-- from [9,9,8]: 1, sqrt(129), sqrt(138))
REINDEX INDEX kd_empty_l2;
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_empty ORDER BY v <-> '[9,9,8]'$$);
SELECT id FROM kd_empty ORDER BY v <-> '[9,9,8]';
RESET enable_seqscan;
RESET imgsearch.method;
-- a table of NULLs only: nothing to learn from either
CREATE TABLE kd_nulls (id int, v imgfeat(3));
INSERT INTO kd_nulls VALUES (1, NULL), (2, NULL);
CREATE INDEX ON kd_nulls USING kdtree (v);
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
SELECT id FROM kd_nulls ORDER BY v <-> '[1,2,3]';
RESET enable_seqscan;
RESET imgsearch.method;

-- points on a line, a NULL, and the zero vector: the answers can be read off;
-- leaf_size = 1 and dims = 2: a deep tree over a projection that loses a dimension
CREATE TABLE kd_line (id int, v imgfeat(3));
INSERT INTO kd_line SELECT i, ARRAY[i, 10 - i, 1]::imgfeat FROM generate_series(1, 9) i;
INSERT INTO kd_line VALUES (0, NULL), (10, '[0,0,0]');
CREATE INDEX kd_line_l2 ON kd_line USING kdtree (v) WITH (dims = 2, leaf_size = 1);
CREATE INDEX kd_line_cos ON kd_line USING kdtree (v imgfeat_cosine_ops) WITH (leaf_size = 2);
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]'$$);
-- L2 from [3.2,7,1]: row 3 at 0.2, then 4, 2, 5, ...: every vector, not the NULL
SELECT id, round((v <-> '[3.2,7,1]')::numeric, 4) AS l2 FROM kd_line ORDER BY v <-> '[3.2,7,1]';
-- cosine: [1,9,1] points most like [0,1,0]; the zero vector (NaN) comes last
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY v <=> '[0,1,0]'$$);
SELECT id, round((v <=> '[0,1,0]')::numeric, 4) AS cosine FROM kd_line ORDER BY v <=> '[0,1,0]';
-- a query far outside the data (rows 1, 2, 3, 4 at 3737.93, 3738.73,
-- 3739.53, 3740.33), and one equal to a row (row 6 at 0, then 5 and 7 at
-- sqrt(2))
SELECT id FROM kd_line ORDER BY v <-> '[-1000,2000,-3000]' LIMIT 3;
SELECT id, v <-> '[6,4,1]' AS l2 FROM kd_line ORDER BY v <-> '[6,4,1]' LIMIT 1;
-- query vector on the left: the commutator serves too (rows 9, 8, 7 at 0,
-- sqrt(2), sqrt(8))
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY '[9,1,1]' <-> v LIMIT 2$$);
SELECT id FROM kd_line ORDER BY '[9,1,1]' <-> v LIMIT 2;
-- a NULL query (not folded away as a constant): every distance is NULL; the
-- index returns its 10 vectors, not the row whose vector is NULL
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY v <-> (SELECT NULL::imgfeat)$$);
SELECT count(*), count(d) FROM (SELECT id, v <-> (SELECT NULL::imgfeat) AS d FROM kd_line
                                ORDER BY v <-> (SELECT NULL::imgfeat)) s;
SELECT count(*) FROM (SELECT id FROM kd_line ORDER BY v <=> (SELECT NULL::imgfeat)) s;
-- exact duplicates: all come back, each once (rows 3, 11 and 12 at 0, all
-- of the 3, in the order of their ids; then 2 and 4 at sqrt(2))
INSERT INTO kd_line VALUES (11, '[3,7,1]'), (12, '[3,7,1]');
SELECT id, v <-> '[3,7,1]' AS l2 FROM kd_line ORDER BY v <-> '[3,7,1]', id LIMIT 3;
SELECT count(*), count(DISTINCT id) FROM (SELECT id FROM kd_line ORDER BY v <-> '[3,7,1]') s;
DELETE FROM kd_line WHERE id > 10;
RESET enable_seqscan;

-- kdtree.max_leaves: 0 (exact) by default, a budget of leaves when positive
SHOW kdtree.max_leaves;
SELECT name, setting, min_val, max_val, context, vartype FROM pg_settings WHERE name = 'kdtree.max_leaves';
SELECT pg_temp.err($$SET kdtree.max_leaves = -1$$);
SELECT pg_temp.err($$SET kdtree.max_leaves = 'many'$$);
SET kdtree.max_leaves = 1;
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]'$$);
-- distinct rows in non-decreasing distance, no more than there are vectors
SELECT count(*) <= 10 AS at_most_all, count(*) = count(DISTINCT id) AS distinct_ids,
       bool_and(d >= prev OR prev IS NULL) AS in_order
FROM (SELECT id, d, lag(d) OVER (ORDER BY n) AS prev
      FROM (SELECT id, v <-> '[3.2,7,1]' AS d, row_number() OVER () AS n
            FROM (SELECT id, v FROM kd_line ORDER BY v <-> '[3.2,7,1]') r) s) t;
-- LIMIT k: k rows when the table has them
SELECT count(*) FROM (SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]' LIMIT 4) s;
SELECT count(*) FROM (SELECT id FROM kd_line ORDER BY v <=> '[1,1,1]' LIMIT 9) s;
RESET enable_seqscan;
RESET kdtree.max_leaves;
RESET imgsearch.method;

-- the method switch, on a table big enough for an index to pay: kdtree picks
-- the kdtree index, argsort a sort, faissflat makes kdtree prohibitive (and
-- uses its own index), auto may use it
CREATE TABLE kd_many (id int, v imgfeat(4));
INSERT INTO kd_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(1, 3000) i;
CREATE INDEX kd_many_l2 ON kd_many USING kdtree (v);
CREATE INDEX kd_many_cos ON kd_many USING kdtree (v imgfeat_cosine_ops) WITH (dims = 3, leaf_size = 16);
CREATE INDEX kd_many_ff ON kd_many USING faissflat (v);
ANALYZE kd_many;
SET imgsearch.method = 'kdtree';
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <=> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'faissflat';
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- no faissflat index for cosine, and kdtree is not the method: a sort
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <=> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'argsort';
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- even with sequential scans disabled, argsort never takes the index
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- without an ORDER BY on an opclass operator, the index is of no use
SET imgsearch.method = 'kdtree';
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many WHERE id = 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <#> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_many ORDER BY v <-> '[1,0,0,1]' DESC LIMIT 3$$);
RESET enable_seqscan;
-- the kdtree answers equal the sort's (3000 rows on a curve)
SELECT array_agg(id) AS kd_ids, array_agg(d) AS kd_dists
FROM (SELECT id, v <-> '[1,0,0,1]' AS d FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 5) s \gset
SET imgsearch.method = 'argsort';
SELECT pg_temp.same_ranking(:'kd_ids', :'kd_dists', array_agg(id), array_agg(d), false) AS same_as_sort
FROM (SELECT id, v <-> '[1,0,0,1]' AS d FROM kd_many ORDER BY v <-> '[1,0,0,1]' LIMIT 5) s;
RESET imgsearch.method;

-- reloptions: dims 1..256 (cut to the vector's dimension), leaf_size >= 1
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (dims = 0)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (dims = 257)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (dims = -3)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (leaf_size = 0)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (leaf_size = 2000000000)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (dims = 'many')$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) WITH (lists = 10)$$);
CREATE INDEX kd_line_wide ON kd_line USING kdtree (v) WITH (dims = 256, leaf_size = 10000);
SELECT reloptions FROM pg_class WHERE relname = 'kd_line_wide';
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
DROP INDEX kd_line_l2;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3$$);
SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
RESET enable_seqscan;
RESET imgsearch.method;
ALTER INDEX kd_line_wide SET (leaf_size = 0);
DROP INDEX kd_line_wide;

-- no inner-product operator class for kdtree
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v imgfeat_ip_ops)$$);

-- dimension mismatches are clear errors
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
SELECT pg_temp.err($$SELECT id FROM kd_line ORDER BY v <-> '[1,2]' LIMIT 1$$);
SELECT pg_temp.err($$SELECT id FROM kd_line ORDER BY v <=> '[1,2,3,4]' LIMIT 1$$);
SELECT pg_temp.err($$INSERT INTO kd_line VALUES (11, '[1,2,3,4]')$$);
-- without a type modifier, the first vector fixes the index's dimension
CREATE TABLE kd_untyped (id int, v imgfeat);
CREATE INDEX ON kd_untyped USING kdtree (v);
INSERT INTO kd_untyped VALUES (1, '[1,1]'), (2, '[2,2]');
SELECT pg_temp.err($$INSERT INTO kd_untyped VALUES (3, '[1,2,3]')$$);
SELECT pg_temp.err($$SELECT id FROM kd_untyped ORDER BY v <-> '[1,2,3]' LIMIT 1$$);
-- (row 2 at 0, row 1 at sqrt(2))
SELECT id FROM kd_untyped ORDER BY v <-> '[2,2]' LIMIT 1;
-- and with a tree (built on rows): the insert path of the tree refuses it too
REINDEX INDEX kd_untyped_v_idx;
SELECT pg_temp.err($$INSERT INTO kd_untyped VALUES (3, '[1,2,3]')$$);
SELECT pg_temp.err($$SELECT id FROM kd_untyped ORDER BY v <=> '[1]' LIMIT 1$$);
-- (row 1 at 0.28, row 2 at 1.13)
SELECT id FROM kd_untyped ORDER BY v <-> '[1.2,1.2]' LIMIT 1;
-- mixed dimensions in the table at build time
CREATE TABLE kd_mixed (id int, v imgfeat);
INSERT INTO kd_mixed VALUES (1, '[1,1]'), (2, '[1,2,3]');
SELECT pg_temp.err($$CREATE INDEX ON kd_mixed USING kdtree (v)$$);
RESET enable_seqscan;
RESET imgsearch.method;

-- what the method does not take
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v, v)$$);
SELECT pg_temp.err($$CREATE UNIQUE INDEX ON kd_line USING kdtree (v)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (id)$$);
SELECT pg_temp.err($$CREATE INDEX ON kd_line USING kdtree (v) INCLUDE (id)$$);
SELECT pg_temp.err($$ALTER TABLE kd_line ADD CONSTRAINT kd_excl EXCLUDE USING kdtree (v WITH <->)$$);
SELECT pg_temp.err($$CLUSTER kd_line USING kd_line_cos$$);

-- CREATE INDEX CONCURRENTLY, REINDEX, unlogged and temporary tables
CREATE INDEX CONCURRENTLY kd_line_cic ON kd_line USING kdtree (v) WITH (dims = 1, leaf_size = 1);
REINDEX INDEX kd_line_cic;
REINDEX INDEX CONCURRENTLY kd_line_cic;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'kd_line_cic'::regclass;
CREATE UNLOGGED TABLE kd_unlogged AS SELECT * FROM kd_line;
CREATE INDEX ON kd_unlogged USING kdtree (v);
CREATE TEMP TABLE kd_temp AS SELECT * FROM kd_line;
CREATE INDEX ON kd_temp USING kdtree (v);
SET imgsearch.method = 'kdtree';
SET enable_seqscan = off;
SELECT id FROM kd_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
SELECT * FROM pg_temp.plan($$SELECT id FROM kd_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3$$);
SELECT id FROM kd_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
SELECT id FROM kd_temp ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
RESET enable_seqscan;
RESET imgsearch.method;

-- imgsearch_index_check on kdtree indexes: the method, and every row once
SELECT method, entries, heap_rows, dead_entries FROM imgsearch_index_check('kd_line_cic');
SELECT method, entries, heap_rows, dead_entries FROM imgsearch_index_check('kd_line_cos');
SELECT method, entries, heap_rows FROM imgsearch_index_check('kd_empty_l2');
SELECT method, entries, heap_rows FROM imgsearch_index_check('kd_many_cos');
-- after inserts past the build, DELETE and VACUUM
INSERT INTO kd_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(3001, 3500) i;
DELETE FROM kd_many WHERE id % 5 = 0;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('kd_many_l2');
VACUUM (INDEX_CLEANUP ON) kd_many;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('kd_many_l2');
SELECT reltuples FROM pg_class WHERE relname = 'kd_many_l2';
-- a maintenance_work_mem larger than one allocation may take (a VACUUM once failed)
SET maintenance_work_mem = '4GB';
DELETE FROM kd_many WHERE id % 7 = 0;
VACUUM (INDEX_CLEANUP ON) kd_many;
RESET maintenance_work_mem;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('kd_many_l2');
SELECT pg_temp.err($$SELECT imgsearch_index_check('kd_many')$$);

DROP TABLE kd_empty, kd_nulls, kd_line, kd_many, kd_untyped, kd_mixed, kd_unlogged, kd_temp;
