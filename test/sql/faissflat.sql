-- faissflat: catalog, plans, the imgsearch.method switch, small answers that
-- can be checked by hand, NULLs, empty tables, errors, DDL variants.
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

-- the operator classes validate; one with a wrong strategy does not
SELECT opcname, opcdefault, amvalidate(c.oid)
FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod
WHERE amname = 'faissflat' ORDER BY opcname;
CREATE OPERATOR CLASS bad_ops FOR TYPE imgfeat USING faissflat AS
  OPERATOR 1 <=> (imgfeat, imgfeat) FOR ORDER BY float_ops;
SELECT amvalidate(oid) FROM pg_opclass WHERE opcname = 'bad_ops';
DROP OPERATOR FAMILY bad_ops USING faissflat;

-- an empty table: the scan returns nothing
CREATE TABLE ff_empty (id int, v imgfeat(3));
CREATE INDEX ON ff_empty USING faissflat (v);
SET imgsearch.method = 'faissflat';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_empty ORDER BY v <-> '[1,2,3]' LIMIT 3$$);
SELECT id FROM ff_empty ORDER BY v <-> '[1,2,3]' LIMIT 3;
RESET imgsearch.method;

-- points on a line, a NULL, and the zero vector: the answers can be read off
CREATE TABLE ff_line (id int, v imgfeat(3));
INSERT INTO ff_line SELECT i, ARRAY[i, 10 - i, 1]::imgfeat FROM generate_series(1, 9) i;
INSERT INTO ff_line VALUES (0, NULL), (10, '[0,0,0]');
CREATE INDEX ff_line_l2 ON ff_line USING faissflat (v);
CREATE INDEX ff_line_cos ON ff_line USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ff_line_ip ON ff_line USING faissflat (v imgfeat_ip_ops);
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_line ORDER BY v <-> '[3.2,7,1]'$$);
-- L2 from [3.2,7,1]: row 3 at 0.2, then 4, 2, 5, ...: every vector, not the NULL
SELECT id, round((v <-> '[3.2,7,1]')::numeric, 4) AS l2 FROM ff_line ORDER BY v <-> '[3.2,7,1]';
-- inner product with [1,0,0] is the first coordinate: 9 first, the zero vector last
-- (LIMIT 4: row 5, the next, at -5)
SELECT id, v <#> '[1,0,0]' AS neg_ip FROM ff_line ORDER BY v <#> '[1,0,0]' LIMIT 4;
-- cosine: [1,9,1] points most like [0,1,0]; the zero vector (NaN) comes last
SELECT id, round((v <=> '[0,1,0]')::numeric, 4) AS cosine FROM ff_line ORDER BY v <=> '[0,1,0]';
-- query vector on the left: the commutator serves too (rows 9, 8, 7 at 0,
-- sqrt(2), sqrt(8))
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_line ORDER BY '[9,1,1]' <-> v LIMIT 2$$);
SELECT id FROM ff_line ORDER BY '[9,1,1]' <-> v LIMIT 2;
-- a NULL query (not folded away as a constant): every distance is NULL; the
-- index returns its 10 vectors, not the row whose vector is NULL
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_line ORDER BY v <-> (SELECT NULL::imgfeat)$$);
SELECT count(*) FROM (SELECT id FROM ff_line ORDER BY v <-> (SELECT NULL::imgfeat)) s;
-- a flat scan (the inner product's: no codes) that returns every row reads
-- each index block once: its first pass kept them all, so it needs no second
-- (the statement also reads the metapage once more, in the planner's cost
-- estimate: one block more)
SELECT pg_stat_force_next_flush();
SELECT idx_blks_read + idx_blks_hit AS blocks_before FROM pg_statio_user_indexes
WHERE indexrelname = 'ff_line_ip' \gset
SELECT count(*) FROM (SELECT id FROM ff_line ORDER BY v <#> '[3.2,7,1]') s;
SELECT pg_stat_force_next_flush();
SELECT idx_blks_read + idx_blks_hit - :blocks_before - 1 AS blocks_read,
       pg_relation_size('ff_line_ip') / current_setting('block_size')::int AS index_blocks
FROM pg_statio_user_indexes WHERE indexrelname = 'ff_line_ip';
RESET enable_seqscan;

-- the method switch, on a table big enough for the index to pay: auto and
-- faissflat pick the index, argsort a sort, another method makes faissflat
-- prohibitive
CREATE TABLE ff_many (id int, v imgfeat(4));
INSERT INTO ff_many SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(3 * i)]::imgfeat
FROM generate_series(1, 3000) i;
CREATE INDEX ff_many_l2 ON ff_many USING faissflat (v);
CREATE INDEX ff_many_cos ON ff_many USING faissflat (v imgfeat_cosine_ops);
ANALYZE ff_many;
SET imgsearch.method = 'auto';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'faissflat';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <=> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'argsort';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
SET imgsearch.method = 'kdtree';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- even with sequential scans disabled, argsort never takes the index
SET imgsearch.method = 'argsort';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <-> '[1,0,0,1]' LIMIT 3$$);
-- without an ORDER BY on the opclass operator, the index is of no use
SET imgsearch.method = 'faissflat';
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many WHERE id = 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <#> '[1,0,0,1]' LIMIT 3$$);
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_many ORDER BY v <-> '[1,0,0,1]' DESC LIMIT 3$$);
RESET enable_seqscan;
RESET imgsearch.method;

-- dimension mismatches are clear errors
SET imgsearch.method = 'faissflat';
SELECT pg_temp.err($$SELECT id FROM ff_line ORDER BY v <-> '[1,2]' LIMIT 1$$);
SELECT pg_temp.err($$INSERT INTO ff_line VALUES (11, '[1,2,3,4]')$$);
-- without a type modifier, the first vector fixes the index's dimension
CREATE TABLE ff_untyped (id int, v imgfeat);
CREATE INDEX ON ff_untyped USING faissflat (v);
INSERT INTO ff_untyped VALUES (1, '[1,1]'), (2, '[2,2]');
SELECT pg_temp.err($$INSERT INTO ff_untyped VALUES (3, '[1,2,3]')$$);
SELECT pg_temp.err($$SELECT id FROM ff_untyped ORDER BY v <-> '[1,2,3]' LIMIT 1$$);
-- (row 2 at 0, row 1 at sqrt(2))
SELECT id FROM ff_untyped ORDER BY v <-> '[2,2]' LIMIT 1;
RESET imgsearch.method;

-- what the method does not take
SELECT pg_temp.err($$CREATE INDEX ON ff_line USING faissflat (v) WITH (lists = 10)$$);
SELECT pg_temp.err($$CREATE INDEX ON ff_line USING faissflat (v, v)$$);
SELECT pg_temp.err($$CREATE UNIQUE INDEX ON ff_line USING faissflat (v)$$);
SELECT pg_temp.err($$CREATE INDEX ON ff_line USING faissflat (id)$$);

-- CREATE INDEX CONCURRENTLY, REINDEX, unlogged and temporary tables
CREATE INDEX CONCURRENTLY ff_line_cic ON ff_line USING faissflat (v);
REINDEX INDEX ff_line_cic;
SELECT indisvalid FROM pg_index WHERE indexrelid = 'ff_line_cic'::regclass;
DROP INDEX ff_line_cic;
CREATE UNLOGGED TABLE ff_unlogged AS SELECT * FROM ff_line;
CREATE INDEX ON ff_unlogged USING faissflat (v);
CREATE TEMP TABLE ff_temp AS SELECT * FROM ff_line;
CREATE INDEX ON ff_temp USING faissflat (v);
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3$$);
SELECT id FROM ff_unlogged ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
SELECT id FROM ff_temp ORDER BY v <-> '[3.2,7,1]' LIMIT 3;
RESET enable_seqscan;
RESET imgsearch.method;

-- the widest vectors (16000-d, 62.5 kB: eight pages each, several WAL
-- records per insert) index and search like any other
CREATE TABLE ff_wide (id int, v imgfeat(16000));
SELECT setseed(0.9);
INSERT INTO ff_wide SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 16000) WHERE i > 0)::imgfeat
FROM generate_series(1, 30) i;
CREATE INDEX ff_wide_ip ON ff_wide USING faissflat (v imgfeat_ip_ops);
INSERT INTO ff_wide SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 16000) WHERE i > 0)::imgfeat
FROM generate_series(31, 45) i;
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT * FROM pg_temp.plan($$SELECT id FROM ff_wide ORDER BY v <#> (SELECT v FROM ff_wide WHERE id = 40)$$);
CREATE TEMP VIEW ff_wide_ranking AS
SELECT array_agg(id) AS ids, array_agg(d) AS dists
FROM (SELECT id, v <#> (SELECT v FROM ff_wide WHERE id = 40) AS d FROM ff_wide ORDER BY v <#> (SELECT v FROM ff_wide WHERE id = 40)) s;
CREATE TEMP TABLE ff_wide_index AS SELECT * FROM ff_wide_ranking;
SET imgsearch.method = 'argsort';
RESET enable_seqscan;
SELECT cardinality(i.ids), pg_temp.same_ranking(i.ids, i.dists, s.ids, s.dists, true) AS same_as_sort
FROM ff_wide_index i, ff_wide_ranking s;
RESET imgsearch.method;

-- VACUUM counts the vectors left: 6 (rows 5 to 10; row 0 is NULL, not indexed)
DELETE FROM ff_line WHERE id BETWEEN 1 AND 4;
VACUUM ff_line;
SELECT reltuples FROM pg_class WHERE relname = 'ff_line_l2';

DROP VIEW ff_wide_ranking;
DROP TABLE ff_empty, ff_line, ff_many, ff_untyped, ff_unlogged, ff_temp, ff_wide;
