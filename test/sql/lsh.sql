-- lsh: catalog, plans, small answers that can be checked by hand, NULLs, an
-- empty table, reloptions, the GUCs lsh.probes and lsh.candidates, errors,
-- DDL variants, imgsearch_index_check. Exactness and budgets on real data:
-- test/pgtap/lsh_exact.sql, test/pgtap/lsh_budget.sql.
-- the error a statement raises; one that succeeds is rolled back
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RAISE SQLSTATE 'P0099';
EXCEPTION
  WHEN SQLSTATE 'P0099' THEN
    RETURN 'no error';
  WHEN OTHERS THEN
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

-- the access method and its operator classes: L2 (default), cosine, inner
-- product, one ordering operator each (L2 and cosine also order by several
-- examples, strategies 6 and 7); they validate
SELECT amname, amtype FROM pg_am WHERE amname = 'lsh';
SELECT opcname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
WHERE amname = 'lsh' ORDER BY opcname;
SELECT f.opfname, o.amopstrategy, o.amopopr::regoperator, o.amoppurpose,
       (SELECT s.opfname FROM pg_opfamily s WHERE s.oid = o.amopsortfamily) AS sort_family
FROM pg_amop o JOIN pg_opfamily f ON f.oid = o.amopfamily JOIN pg_am a ON a.oid = f.opfmethod
WHERE amname = 'lsh' ORDER BY f.opfname, o.amopstrategy;

-- an empty table: the build says the index reads every vector until
-- REINDEX; the scan returns nothing
CREATE TABLE lsh_empty (id int, v imgfeat(3));
CREATE INDEX lsh_empty_l2 ON lsh_empty USING lsh (v);
SET imgsearch.method = 'lsh';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_empty ORDER BY v <-> '[1,2,3]' LIMIT 3$$);
SELECT id FROM lsh_empty ORDER BY v <-> '[1,2,3]' LIMIT 3;
-- then rows come: all found, in order, with the default budget (distances
-- 0, 1, sqrt(149))
INSERT INTO lsh_empty VALUES (1, '[1,2,3]'), (2, '[1,2,4]'), (3, '[9,9,9]'), (4, NULL);
SELECT id FROM lsh_empty ORDER BY v <-> '[1,2,3]';
-- REINDEX: now there are rows to hash, and no notice (distances from
-- [9,9,8]: 1, sqrt(129), sqrt(138))
REINDEX INDEX lsh_empty_l2;
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_empty ORDER BY v <-> '[9,9,8]'$$);
SELECT id FROM lsh_empty ORDER BY v <-> '[9,9,8]';
RESET enable_seqscan;
RESET imgsearch.method;
-- a table of NULLs only: nothing to hash either
CREATE TABLE lsh_nulls (id int, v imgfeat(3));
INSERT INTO lsh_nulls VALUES (1, NULL), (2, NULL);
CREATE INDEX ON lsh_nulls USING lsh (v);
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SELECT id FROM lsh_nulls ORDER BY v <-> '[1,2,3]';
RESET enable_seqscan;
RESET imgsearch.method;

-- points on a line, a NULL, and the zero vector: the answers can be read
-- off; as many buckets as rows, and 3
CREATE TABLE lsh_line (id int, v imgfeat(3));
INSERT INTO lsh_line SELECT i, ARRAY[i, 10 - i, 1]::imgfeat FROM generate_series(1, 9) i;
INSERT INTO lsh_line VALUES (0, NULL), (10, '[0,0,0]');
CREATE INDEX lsh_line_l2 ON lsh_line USING lsh (v) WITH (bits = 8, buckets = 10);
CREATE INDEX lsh_line_cos ON lsh_line USING lsh (v imgfeat_cosine_ops) WITH (buckets = 3);
CREATE INDEX lsh_line_ip ON lsh_line USING lsh (v imgfeat_ip_ops) WITH (bits = 16, buckets = 10);
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <-> '[3.2,7,1]'$$);
-- L2 from [3.2,7,1]: row 3 at 0.2, then 4, 2, 5, ...: every vector, not the NULL
SELECT id, round((v <-> '[3.2,7,1]')::numeric, 4) AS l2 FROM lsh_line ORDER BY v <-> '[3.2,7,1]';
-- cosine: [1,9,1] points most like [0,1,0]; the zero vector (NaN) comes last
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <=> '[0,1,0]'$$);
SELECT id, round((v <=> '[0,1,0]')::numeric, 4) AS cosine FROM lsh_line ORDER BY v <=> '[0,1,0]';
-- inner product with [0,1,0] is 10 - i: row 1 first (-9), the zero vector last (0)
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <#> '[0,1,0]'$$);
SELECT id, v <#> '[0,1,0]' AS neg_ip FROM lsh_line ORDER BY v <#> '[0,1,0]';
-- and with [1,0,0] it is -i: row 9 first, the zero vector last
SELECT id FROM lsh_line ORDER BY v <#> '[1,0,0]' LIMIT 3;
-- a query far outside the data (rows 1, 2, 3, 4 at 3737.93, 3738.73,
-- 3739.53, 3740.33), and one equal to a row (row 6 at 0, then 5 and 7 at
-- sqrt(2))
SELECT id FROM lsh_line ORDER BY v <-> '[-1000,2000,-3000]' LIMIT 3;
SELECT id, v <-> '[6,4,1]' AS l2 FROM lsh_line ORDER BY v <-> '[6,4,1]' LIMIT 1;
-- query vector on the left: the commutator serves too (rows 9, 8, 7 at 0,
-- sqrt(2), sqrt(8))
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY '[9,1,1]' <-> v LIMIT 2$$);
SELECT id FROM lsh_line ORDER BY '[9,1,1]' <-> v LIMIT 2;
-- a NULL query (not folded away as a constant): every distance is NULL; the
-- index returns its 10 vectors, not the row whose vector is NULL
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <-> (SELECT NULL::imgfeat)$$);
SELECT count(*), count(d) FROM (SELECT id, v <-> (SELECT NULL::imgfeat) AS d FROM lsh_line
                                ORDER BY v <-> (SELECT NULL::imgfeat)) s;
SELECT count(*) FROM (SELECT id FROM lsh_line ORDER BY v <=> (SELECT NULL::imgfeat)) s;
SELECT count(*) FROM (SELECT id FROM lsh_line ORDER BY v <#> (SELECT NULL::imgfeat)) s;
-- exact duplicates: all come back, each once (rows 3, 11 and 12 at 0, all
-- of the 3, in the order of their ids; then 2 and 4 at sqrt(2))
INSERT INTO lsh_line VALUES (11, '[3,7,1]'), (12, '[3,7,1]');
SELECT id, v <-> '[3,7,1]' AS l2 FROM lsh_line ORDER BY v <-> '[3,7,1]', id LIMIT 3;
SELECT count(*), count(DISTINCT id) FROM (SELECT id FROM lsh_line ORDER BY v <-> '[3,7,1]') s;
DELETE FROM lsh_line WHERE id > 10;
-- the deleted duplicates are not returned
SELECT id FROM lsh_line ORDER BY v <-> '[3,7,1]' LIMIT 1;
SELECT count(*), count(*) FILTER (WHERE id > 10) AS deleted FROM (SELECT id FROM lsh_line ORDER BY v <-> '[3,7,1]') s;
RESET enable_seqscan;

-- lsh.probes and lsh.candidates: integers >= 0 (0: every bucket, every entry)
SELECT name, min_val, context, vartype FROM pg_settings WHERE name IN ('lsh.probes', 'lsh.candidates') ORDER BY name;
-- the defaults are budgets, not probe-everything
SELECT current_setting('lsh.probes')::int > 0 AS probes_positive,
       current_setting('lsh.candidates')::int > 0 AS candidates_positive;
SELECT pg_temp.err($$SET lsh.probes = -1$$);
SELECT pg_temp.err($$SET lsh.candidates = -1$$);
SELECT pg_temp.err($$SET lsh.probes = 'many'$$);
SELECT pg_temp.err($$SET lsh.candidates = 2147483647$$);
SELECT pg_temp.err($$SET lsh.probes = 65537$$);
SELECT pg_temp.err($$SET lsh.nothing = 1$$);
SET lsh.probes = 0;
SET lsh.candidates = 0;
SHOW lsh.probes;
SHOW lsh.candidates;
-- a budget of one bucket and one candidate: distinct rows in non-decreasing
-- distance, each with its distance, as many as asked for (past its first round the search is exact)
SET lsh.probes = 1;
SET lsh.candidates = 1;
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <-> '[3.2,7,1]' LIMIT 4$$);
SELECT count(*) AS n, count(*) = count(DISTINCT id) AS distinct_ids,
       bool_and(d >= prev OR prev IS NULL) AS in_order,
       bool_and(d = (SELECT v <-> '[3.2,7,1]' FROM lsh_line l WHERE l.id = t.id)) AS own_distance
FROM (SELECT id, d, lag(d) OVER (ORDER BY n) AS prev
      FROM (SELECT id, v <-> '[3.2,7,1]' AS d, row_number() OVER () AS n
            FROM (SELECT id, v FROM lsh_line ORDER BY v <-> '[3.2,7,1]' LIMIT 4) r) s) t;
-- ties: rows 1..9 all have the inner product 11 with [1,1,1], the nearest
-- any row has (the zero vector's is 0): none of them can be below a row
-- returned before it, so each comes, then the zero vector
SELECT count(*) FROM (SELECT id FROM lsh_line ORDER BY v <#> '[1,1,1]' LIMIT 7) s;
SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE d = -11) AS tied
FROM (SELECT id, v <#> '[1,1,1]' AS d FROM lsh_line ORDER BY v <#> '[1,1,1]') s;
RESET enable_seqscan;
RESET lsh.probes;
RESET lsh.candidates;
RESET imgsearch.method;

-- the method switch, on a table big enough for an index to pay: lsh picks
-- the lsh index of the operator, argsort a sort, kdtree and faissflat make
-- lsh prohibitive (and use their own indexes)
CREATE TABLE lsh_many (id int, v imgfeat(4));
INSERT INTO lsh_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(1, 3000) i;
CREATE INDEX lsh_many_l2 ON lsh_many USING lsh (v);
CREATE INDEX lsh_many_cos ON lsh_many USING lsh (v imgfeat_cosine_ops) WITH (bits = 32, buckets = 200);
CREATE INDEX lsh_many_ip ON lsh_many USING lsh (v imgfeat_ip_ops);
CREATE INDEX lsh_many_kd ON lsh_many USING kdtree (v);
CREATE INDEX lsh_many_ff ON lsh_many USING faissflat (v);
ANALYZE lsh_many;
SET imgsearch.method = 'lsh';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <=> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <#> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'kdtree';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- no kdtree index for inner product, and lsh is not the method: a sort
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <#> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'faissflat';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'argsort';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <#> '[1,0,0,1]' LIMIT 3$$);
-- even with sequential scans disabled, argsort never takes the index
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <=> '[1,0,0,1]' LIMIT 3$$);
-- without an ORDER BY on an opclass operator, the index is of no use
SET imgsearch.method = 'lsh';
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many WHERE id = 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_many ORDER BY v <-> '[1,0,0,1]' DESC LIMIT 3$$);
RESET enable_seqscan;
-- probe-everything: the lsh answers equal the sort's (3000 rows on a curve)
SET lsh.probes = 0;
SET lsh.candidates = 0;
SELECT array_agg(id) AS lsh_ids, array_agg(d) AS lsh_dists
FROM (SELECT id, v <-> '[1,0,0,1]' AS d FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 5) s \gset
SELECT array_agg(id) AS ip_ids, array_agg(d) AS ip_dists
FROM (SELECT id, v <#> '[1,0,0,1]' AS d FROM lsh_many ORDER BY v <#> '[1,0,0,1]' LIMIT 5) s \gset
RESET lsh.probes;
RESET lsh.candidates;
SET imgsearch.method = 'argsort';
SELECT pg_temp.same_ranking(:'lsh_ids', :'lsh_dists', array_agg(id), array_agg(d), false) AS same_as_sort
FROM (SELECT id, v <-> '[1,0,0,1]' AS d FROM lsh_many ORDER BY v <-> '[1,0,0,1]' LIMIT 5) s;
SELECT pg_temp.same_ranking(:'ip_ids', :'ip_dists', array_agg(id), array_agg(d), false) AS same_as_sort
FROM (SELECT id, v <#> '[1,0,0,1]' AS d FROM lsh_many ORDER BY v <#> '[1,0,0,1]' LIMIT 5) s;
RESET imgsearch.method;

-- reloptions: bits 0..4096 (0: chosen at build; cut to the vectors' dimension), buckets
-- 0..65536 (0: the square root of the rows; cut to the rows)
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bits = -1)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bits = 4097)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bits = 100000)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bits = -8)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (buckets = -1)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (buckets = 65537)$$);
-- (bucket_size is not an option of this method: buckets is)
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bucket_size = 0)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (bits = 'many')$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (lists = 10)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (leaf_size = 10)$$);
-- the bounds themselves are fine
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) WITH (buckets = 0)$$);
CREATE INDEX lsh_line_lo ON lsh_line USING lsh (v) WITH (bits = 1, buckets = 1);
CREATE INDEX lsh_line_hi ON lsh_line USING lsh (v) WITH (bits = 4096, buckets = 65536);
SELECT relname, reloptions FROM pg_class WHERE relname IN ('lsh_line_lo', 'lsh_line_hi') ORDER BY relname;
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
DROP INDEX lsh_line_l2;
DROP INDEX lsh_line_lo;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3$$);
SELECT id FROM lsh_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
RESET enable_seqscan;
RESET imgsearch.method;
SELECT pg_temp.err($$ALTER INDEX lsh_line_hi SET (buckets = -1)$$);
SELECT pg_temp.err($$ALTER INDEX lsh_line_hi SET (bits = 5000)$$);
DROP INDEX lsh_line_hi;

-- operator classes by name; names that do not exist, a column of another type
CREATE INDEX lsh_line_named ON lsh_line USING lsh (v imgfeat_l2_ops);
DROP INDEX lsh_line_named;
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v imgfeat_hamming_ops)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v float8_ops)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (id)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (id imgfeat_l2_ops)$$);
CREATE TABLE lsh_arr (id int, a real[]);
SELECT pg_temp.err($$CREATE INDEX ON lsh_arr USING lsh (a)$$);
-- an expression of type imgfeat is fine
CREATE INDEX lsh_arr_expr ON lsh_arr USING lsh ((a::imgfeat));
DROP TABLE lsh_arr;

-- dimension mismatches are clear errors
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SELECT pg_temp.err($$SELECT id FROM lsh_line ORDER BY v <-> '[1,2]' LIMIT 1$$);
SELECT pg_temp.err($$SELECT id FROM lsh_line ORDER BY v <=> '[1,2,3,4]' LIMIT 1$$);
SELECT pg_temp.err($$SELECT id FROM lsh_line ORDER BY v <#> '[1]' LIMIT 1$$);
SELECT pg_temp.err($$INSERT INTO lsh_line VALUES (11, '[1,2,3,4]')$$);
-- without a type modifier, the first vector fixes the index's dimension
CREATE TABLE lsh_untyped (id int, v imgfeat);
CREATE INDEX ON lsh_untyped USING lsh (v);
INSERT INTO lsh_untyped VALUES (1, '[1,1]'), (2, '[2,2]');
SELECT pg_temp.err($$INSERT INTO lsh_untyped VALUES (3, '[1,2,3]')$$);
SELECT pg_temp.err($$SELECT id FROM lsh_untyped ORDER BY v <-> '[1,2,3]' LIMIT 1$$);
-- (row 2 at 0, row 1 at sqrt(2))
SELECT id FROM lsh_untyped ORDER BY v <-> '[2,2]' LIMIT 1;
-- and built on rows: the insert path refuses it too
REINDEX INDEX lsh_untyped_v_idx;
SELECT pg_temp.err($$INSERT INTO lsh_untyped VALUES (3, '[1,2,3]')$$);
SELECT pg_temp.err($$SELECT id FROM lsh_untyped ORDER BY v <=> '[1]' LIMIT 1$$);
-- (row 1 at 0.28, row 2 at 1.13)
SELECT id FROM lsh_untyped ORDER BY v <-> '[1.2,1.2]' LIMIT 1;
SELECT count(*) FROM lsh_untyped;
-- mixed dimensions in the table at build time
CREATE TABLE lsh_mixed (id int, v imgfeat);
INSERT INTO lsh_mixed VALUES (1, '[1,1]'), (2, '[1,2,3]');
SELECT pg_temp.err($$CREATE INDEX ON lsh_mixed USING lsh (v)$$);
RESET enable_seqscan;
RESET imgsearch.method;

-- what the method does not take
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v, v)$$);
SELECT pg_temp.err($$CREATE UNIQUE INDEX ON lsh_line USING lsh (v)$$);
SELECT pg_temp.err($$CREATE INDEX ON lsh_line USING lsh (v) INCLUDE (id)$$);
SELECT pg_temp.err($$ALTER TABLE lsh_line ADD CONSTRAINT lsh_excl EXCLUDE USING lsh (v WITH <->)$$);
SELECT pg_temp.err($$CLUSTER lsh_line USING lsh_line_cos$$);

-- CREATE INDEX CONCURRENTLY, REINDEX, unlogged and temporary tables
CREATE INDEX CONCURRENTLY lsh_line_cic ON lsh_line USING lsh (v) WITH (bits = 8, buckets = 11);
REINDEX INDEX lsh_line_cic;
REINDEX INDEX CONCURRENTLY lsh_line_cic;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'lsh_line_cic'::regclass;
CREATE UNLOGGED TABLE lsh_unlogged AS SELECT * FROM lsh_line;
CREATE INDEX ON lsh_unlogged USING lsh (v);
CREATE TEMP TABLE lsh_temp AS SELECT * FROM lsh_line;
CREATE INDEX ON lsh_temp USING lsh (v imgfeat_ip_ops);
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SELECT id FROM lsh_line ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
SELECT * FROM pg_temp.plan($$SELECT id FROM lsh_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3$$);
SELECT id FROM lsh_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
SELECT id FROM lsh_temp ORDER BY v <#> '[0,1,0]' LIMIT 3;
RESET enable_seqscan;
RESET imgsearch.method;

-- the scan's debug line: probe-everything on a small index reads every bucket
-- and every entry, and computes one exact distance per entry (rows 3, 4, 2
-- at 0.2, 0.8, 1.2)
CREATE TABLE lsh_dbg (id int, v imgfeat(2));
INSERT INTO lsh_dbg SELECT i, ARRAY[i, 1]::imgfeat FROM generate_series(1, 40) i;
CREATE INDEX lsh_dbg_l2 ON lsh_dbg USING lsh (v) WITH (bits = 8, buckets = 4);
SET imgsearch.method = 'lsh';
SET enable_seqscan = off;
SET lsh.probes = 0;
SET lsh.candidates = 0;
SET client_min_messages = debug1;
SELECT id FROM lsh_dbg ORDER BY v <-> '[3.2,1]' LIMIT 2;
RESET client_min_messages;
RESET lsh.probes;
RESET lsh.candidates;
RESET enable_seqscan;
RESET imgsearch.method;

-- imgsearch_index_check on lsh indexes: the method, and every row once
SELECT method, entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_line_cic');
SELECT method, entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_line_cos');
SELECT method, entries, heap_rows FROM imgsearch_index_check('lsh_empty_l2');
SELECT method, entries, heap_rows FROM imgsearch_index_check('lsh_many_cos');
-- after inserts past the build, DELETE and VACUUM
INSERT INTO lsh_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(3001, 3500) i;
DELETE FROM lsh_many WHERE id % 5 = 0;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_many_l2');
VACUUM (INDEX_CLEANUP ON) lsh_many;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_many_l2');
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_many_ip');
SELECT reltuples FROM pg_class WHERE relname = 'lsh_many_l2';
-- a maintenance_work_mem larger than one allocation may take
SET maintenance_work_mem = '4GB';
DELETE FROM lsh_many WHERE id % 7 = 0;
VACUUM (INDEX_CLEANUP ON) lsh_many;
RESET maintenance_work_mem;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_many_l2');
-- and inserts into the freed slots
INSERT INTO lsh_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(3501, 3700) i;
SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('lsh_many_cos');

DROP TABLE lsh_empty, lsh_nulls, lsh_line, lsh_many, lsh_untyped, lsh_mixed, lsh_unlogged, lsh_temp, lsh_dbg;
