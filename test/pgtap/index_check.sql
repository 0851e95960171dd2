-- imgsearch_index_check passes on healthy indexes at every stage of their
-- life (build, inserts, DELETE, HOT and non-HOT UPDATE, VACUUM, inserts into
-- freed slots; NULLs, an empty table, 4096 dimensions, every opclass, partial,
-- expression, unlogged, temporary and concurrently built indexes) and counts
-- what it saw; it refuses what is not an imgsearch index, NULL, and callers
-- that do not own the table. Detection of corruption: test/t/014_index_check_corruption.pl.
SET client_min_messages = warning;
SET statement_timeout = '120s';
SELECT plan(41);

CREATE FUNCTION pg_temp.rand_vec(dim int) RETURNS imgfeat LANGUAGE sql VOLATILE AS
  'SELECT array_agg(random()::real)::imgfeat FROM generate_series(1, dim)';
-- entries, free slots, rows, dead entries as "e/f/r/d"
CREATE FUNCTION pg_temp.counts(idx regclass) RETURNS text LANGUAGE sql AS $$
  SELECT format('%s/%s/%s/%s', entries, free_slots, heap_rows, dead_entries)
  FROM imgsearch_index_check(idx) $$;

SELECT setseed(0.42);
CREATE TABLE ic_t (id serial, v imgfeat(16), note text) WITH (fillfactor = 80);
INSERT INTO ic_t (v) SELECT pg_temp.rand_vec(16) FROM generate_series(1, 2000);
INSERT INTO ic_t (v) VALUES (NULL), (NULL), (NULL);
CREATE INDEX ic_l2 ON ic_t USING faissflat (v);
CREATE INDEX ic_cos ON ic_t USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ic_ip ON ic_t USING faissflat (v imgfeat_ip_ops);

SELECT is((SELECT method || '/' || pages FROM imgsearch_index_check('ic_l2')),
          'faissflat/' || pg_relation_size('ic_l2') / current_setting('block_size')::int,
          'the method and the pages of the index');
SELECT is(pg_temp.counts('ic_l2'), '2000/0/2000/0', 'after the build: every row, NULLs left out');
SELECT is(pg_temp.counts('ic_cos'), '2000/0/2000/0', 'cosine opclass after the build');
SELECT is(pg_temp.counts('ic_ip'), '2000/0/2000/0', 'inner product opclass after the build');

INSERT INTO ic_t (v) SELECT pg_temp.rand_vec(16) FROM generate_series(1, 500);
INSERT INTO ic_t (v) VALUES (NULL);
SELECT is(pg_temp.counts('ic_l2'), '2500/0/2500/0', 'after inserts');

DELETE FROM ic_t WHERE id % 7 = 0;
SELECT is(pg_temp.counts('ic_l2'),
          format('2500/0/%s/%s', (SELECT count(v) FROM ic_t), 2500 - (SELECT count(v) FROM ic_t)),
          'after DELETE: entries of deleted rows are allowed until VACUUM');

UPDATE ic_t SET note = 'hot' WHERE id % 5 = 0;
UPDATE ic_t SET v = pg_temp.rand_vec(16) WHERE id % 11 = 0;
UPDATE ic_t SET v = NULL WHERE id % 13 = 0;
UPDATE ic_t SET v = pg_temp.rand_vec(16) WHERE id = 2004;
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_l2')), (SELECT count(v) FROM ic_t),
          'after HOT and non-HOT updates, to and from NULL: every row once');
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_cos')), (SELECT count(v) FROM ic_t),
          'the cosine index too');

VACUUM (INDEX_CLEANUP ON) ic_t;  -- never skip the indexes (few dead pages would)
SELECT is((SELECT dead_entries FROM imgsearch_index_check('ic_l2')), 0::bigint,
          'after VACUUM: no dead entries');
SELECT ok((SELECT free_slots > 0 FROM imgsearch_index_check('ic_l2')), 'VACUUM freed slots');

INSERT INTO ic_t (v) SELECT pg_temp.rand_vec(16) FROM generate_series(1, 100);
SELECT is((SELECT heap_rows || '/' || dead_entries FROM imgsearch_index_check('ic_l2')),
          (SELECT count(v) || '/0' FROM ic_t), 'after inserts into freed slots');
VACUUM FULL ic_t;
SELECT is((SELECT heap_rows || '/' || free_slots FROM imgsearch_index_check('ic_l2')),
          (SELECT count(v) || '/0' FROM ic_t), 'after VACUUM FULL (a rebuild)');
REINDEX INDEX ic_cos;
SELECT is(pg_temp.counts('ic_cos'), (SELECT count(v) || '/0/' || count(v) || '/0' FROM ic_t), 'after REINDEX');

-- in a transaction that already has a snapshot, and in REPEATABLE READ
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT ok(count(*) > 0, 'a REPEATABLE READ transaction takes its snapshot') FROM ic_t;
SELECT lives_ok($$SELECT imgsearch_index_check('ic_l2')$$, 'in a REPEATABLE READ transaction');
COMMIT;

-- empty table: a metapage only, no dimension yet
CREATE TABLE ic_empty (v imgfeat);
CREATE INDEX ic_empty_i ON ic_empty USING faissflat (v);
SELECT is((SELECT pages || '/' || pg_temp.counts('ic_empty_i') FROM imgsearch_index_check('ic_empty_i')),
          '1/0/0/0/0', 'an empty index');
INSERT INTO ic_empty VALUES (NULL), (NULL);
SELECT is(pg_temp.counts('ic_empty_i'), '0/0/0/0', 'a table of NULLs');
INSERT INTO ic_empty VALUES ('[1,2,3]');
SELECT is(pg_temp.counts('ic_empty_i'), '1/0/1/0', 'the first vector fixes the dimension');
DELETE FROM ic_empty;
VACUUM (INDEX_CLEANUP ON) ic_empty;
SELECT is(pg_temp.counts('ic_empty_i'), '0/1/0/0', 'emptied by VACUUM');

-- 4096 dimensions: a vector spans pages
CREATE TABLE ic_big (id int, v imgfeat(4096));
INSERT INTO ic_big SELECT i, pg_temp.rand_vec(4096) FROM generate_series(1, 300) i;
CREATE INDEX ic_big_l2 ON ic_big USING faissflat (v);
SELECT is(pg_temp.counts('ic_big_l2'), '300/0/300/0', '4096-d after the build');
INSERT INTO ic_big SELECT i, pg_temp.rand_vec(4096) FROM generate_series(301, 700) i;
DELETE FROM ic_big WHERE id % 3 = 0;
SELECT is(pg_temp.counts('ic_big_l2'), '700/0/467/233', '4096-d after inserts past a group and DELETE');
VACUUM (INDEX_CLEANUP ON) ic_big;
INSERT INTO ic_big SELECT i, pg_temp.rand_vec(4096) FROM generate_series(701, 800) i;
SELECT is(pg_temp.counts('ic_big_l2'), '567/133/567/0', '4096-d after VACUUM and inserts into freed slots');

-- partial, expression, unlogged, temporary, concurrently built
CREATE INDEX ic_part ON ic_t USING faissflat (v) WHERE id % 2 = 0;
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_part')),
          (SELECT count(v) FROM ic_t WHERE id % 2 = 0), 'a partial index holds the rows of its predicate');
INSERT INTO ic_t (v) SELECT pg_temp.rand_vec(16) FROM generate_series(1, 10);
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_part')),
          (SELECT count(v) FROM ic_t WHERE id % 2 = 0), 'and after inserts');
CREATE INDEX ic_expr ON ic_t USING faissflat ((v::real[]::imgfeat(16)));
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_expr')), (SELECT count(v) FROM ic_t),
          'an expression index');
CREATE UNLOGGED TABLE ic_unlogged (v imgfeat(4));
INSERT INTO ic_unlogged SELECT pg_temp.rand_vec(4) FROM generate_series(1, 50);
CREATE INDEX ic_unlogged_i ON ic_unlogged USING faissflat (v);
SELECT is(pg_temp.counts('ic_unlogged_i'), '50/0/50/0', 'an unlogged index');
CREATE TEMP TABLE ic_temp (v imgfeat(4));
INSERT INTO ic_temp SELECT pg_temp.rand_vec(4) FROM generate_series(1, 50);
CREATE INDEX ic_temp_i ON ic_temp USING faissflat (v);
SELECT is(pg_temp.counts('ic_temp_i'), '50/0/50/0', 'a temporary index');
CREATE INDEX CONCURRENTLY ic_conc ON ic_t USING faissflat (v);
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_conc')), (SELECT count(v) FROM ic_t),
          'an index built concurrently');

-- what it refuses
SELECT throws_ok($$SELECT imgsearch_index_check(NULL)$$, '22004',
                 'imgsearch_index_check needs an index, not NULL', 'NULL');
SELECT throws_ok($$SELECT imgsearch_index_check('ic_t')$$, '42809',
                 '"ic_t" is not an index', 'a table');
CREATE INDEX ic_btree ON ic_t (id);
SELECT throws_ok($$SELECT imgsearch_index_check('ic_btree')$$, '0A000',
                 'index "ic_btree" is not an imgsearch index', 'an index of another method');
SELECT throws_ok($$SELECT imgsearch_index_check(0)$$, '42P01', NULL, 'an OID that is no relation');
CREATE SEQUENCE ic_seq;
SELECT throws_ok($$SELECT imgsearch_index_check('ic_seq')$$, '42809', NULL, 'a sequence');
CREATE TABLE ic_parted (id int, v imgfeat(4)) PARTITION BY RANGE (id);
CREATE TABLE ic_parted_1 PARTITION OF ic_parted FOR VALUES FROM (0) TO (100);
CREATE INDEX ic_parted_i ON ONLY ic_parted USING btree (id);
SELECT throws_ok($$SELECT imgsearch_index_check('ic_parted_i')$$, '42809',
                 '"ic_parted_i" is a partitioned index', 'a partitioned index');
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ic_conc'::regclass;
SELECT throws_ok($$SELECT imgsearch_index_check('ic_conc')$$, '0A000',
                 'cannot check index "ic_conc"', 'an invalid index');
DROP INDEX ic_conc;
SELECT ok(has_function_privilege('public', 'imgsearch_index_check(regclass)', 'EXECUTE'),
          'anyone may call it: it checks ownership');

-- only the table's owner (or a superuser) may check its indexes
DROP ROLE IF EXISTS ic_owner;
DROP ROLE IF EXISTS ic_stranger;
CREATE ROLE ic_owner;
CREATE ROLE ic_stranger;
CREATE TABLE ic_owned (v imgfeat(4));
INSERT INTO ic_owned SELECT pg_temp.rand_vec(4) FROM generate_series(1, 20);
CREATE INDEX ic_owned_i ON ic_owned USING faissflat (v);
ALTER TABLE ic_owned OWNER TO ic_owner;
SET ROLE ic_owner;
SELECT is((SELECT heap_rows FROM imgsearch_index_check('ic_owned_i')), 20::bigint,
          'the owner of the table may check its index');
RESET ROLE;
SET ROLE ic_stranger;
SELECT throws_ok($$SELECT imgsearch_index_check('ic_owned_i')$$, '42501',
                 'must be owner of table ic_owned', 'anyone else may not');
SELECT throws_ok($$SELECT imgsearch_index_check('ic_l2')$$, '42501', NULL, 'not even on other tables');
RESET ROLE;

CREATE FUNCTION pg_temp.locks_during() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	modes text;
BEGIN
	PERFORM imgsearch_index_check('ic_l2');
	SELECT string_agg(c.relname || ':' || l.mode, ',' ORDER BY c.relname)
	INTO modes FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
	WHERE l.pid = pg_backend_pid() AND c.relname IN ('ic_t', 'ic_l2');
	RETURN modes;
END $$;
SELECT is(pg_temp.locks_during(), NULL, 'it releases its locks when it returns');

SELECT is((SELECT count(*)::int FROM (SELECT imgsearch_index_check(c.oid) FROM pg_class c
                                      JOIN pg_am a ON a.oid = c.relam
                                      WHERE a.amname = 'faissflat' AND c.relname LIKE 'ic\_%'
                                        AND c.relpersistence <> 't') s), 9,
          'a catalog query checks every index of the method');

SELECT * FROM finish();

DROP TABLE ic_t, ic_empty, ic_big, ic_unlogged, ic_parted, ic_owned;
DROP SEQUENCE ic_seq;
DROP ROLE ic_owner;
DROP ROLE ic_stranger;
