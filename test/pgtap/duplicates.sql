-- imgsearch_duplicates(index, max_distance): the groups it returns equal the
-- connected components (of two rows or more) of the "distance <= max_distance"
-- graph computed in SQL: a self-join with the plain operator (<-> or <=>)
-- and label propagation until nothing changes. For each method (faissflat,
-- kdtree, lsh) x {L2, cosine}, on a small table with exact duplicates, NULL
-- vectors, a zero vector (cosine distance NaN: joined to nothing) and
-- deleted rows not yet vacuumed (invisible: in no group, and no bridge).
-- Then radius 0 (exact duplicates only) and bad arguments.
SET client_min_messages = warning;
SET statement_timeout = '60s';
SELECT plan(3 * 2 * 2 + 3 + 9);

SELECT setseed(0.125);
-- about 1 neighbour per row at the L2 radius below: many small groups, some chains
CREATE TABLE dp (id int, v imgfeat(3));
INSERT INTO dp SELECT i, ARRAY[random(), random(), random()]::real[]::imgfeat FROM generate_series(1, 400) i;
INSERT INTO dp SELECT id + 1000, v FROM dp WHERE id <= 10;
INSERT INTO dp VALUES (-1, NULL), (-2, NULL), (-3, '[0,0,0]');
CREATE INDEX dp_ff_l2 ON dp USING faissflat (v);
CREATE INDEX dp_ff_cos ON dp USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX dp_kd_l2 ON dp USING kdtree (v) WITH (dims = 3, leaf_size = 8);
CREATE INDEX dp_kd_cos ON dp USING kdtree (v imgfeat_cosine_ops) WITH (dims = 3, leaf_size = 8);
CREATE INDEX dp_lsh_l2 ON dp USING lsh (v);
CREATE INDEX dp_lsh_cos ON dp USING lsh (v imgfeat_cosine_ops);
CREATE INDEX dp_ip ON dp USING faissflat (v imgfeat_ip_ops);
CREATE INDEX dp_btree ON dp (id);
-- deleted after the build: still in the indexes, invisible
DELETE FROM dp WHERE id IN (50, 150, 250, 350);

-- The components by SQL, as text: each group's sorted ids, groups sorted.
CREATE FUNCTION pg_temp.sql_groups(op text, r float8) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	CREATE TEMP TABLE dp_label AS SELECT id, id AS label FROM dp WHERE v IS NOT NULL;
	EXECUTE format('CREATE TEMP TABLE dp_edge AS SELECT a.id AS a, b.id AS b FROM dp a JOIN dp b
	                ON a.id <> b.id AND (a.v %s b.v) <= %s', op, r);
	LOOP
		UPDATE dp_label l SET label = s.m
		FROM (SELECT e.a, min(n.label) AS m FROM dp_edge e JOIN dp_label n ON n.id = e.b GROUP BY e.a) s
		WHERE l.id = s.a AND s.m < l.label;
		EXIT WHEN NOT FOUND;
	END LOOP;
	SELECT string_agg(g, ' ' ORDER BY g) INTO result
	FROM (SELECT array_agg(id ORDER BY id)::text AS g FROM dp_label GROUP BY label HAVING count(*) >= 2) s;
	DROP TABLE dp_label, dp_edge;
	RETURN result;
END $$;

-- The groups imgsearch_duplicates returns, in the same form.
CREATE FUNCTION pg_temp.index_groups(idx regclass, r float8) RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(g, ' ' ORDER BY g)
	FROM (SELECT array_agg(t.id ORDER BY t.id)::text AS g
	      FROM imgsearch_duplicates(idx, r) d JOIN dp t ON t.ctid = d.row_tid
	      GROUP BY d.group_id) s $$;

CREATE TABLE dp_case (op text, r float8, sql_groups text);
INSERT INTO dp_case SELECT '<->', 0.06, pg_temp.sql_groups('<->', 0.06);
INSERT INTO dp_case SELECT '<=>', 0.0008, pg_temp.sql_groups('<=>', 0.0008);

SELECT ok((SELECT bool_and(length(sql_groups) - length(replace(sql_groups, ' ', '')) >= 20
                           AND sql_groups ~ '\{\d+,\d+,\d+')
           FROM dp_case), 'the cases have 20 groups or more, some of three rows or more');

SELECT is(pg_temp.index_groups(i.idx, c.r), c.sql_groups,
          format('%s at %s: the components of the self-join', i.idx, c.r))
FROM (VALUES ('dp_ff_l2'::regclass, '<->'), ('dp_ff_cos', '<=>'), ('dp_kd_l2', '<->'),
             ('dp_kd_cos', '<=>'), ('dp_lsh_l2', '<->'), ('dp_lsh_cos', '<=>')) i(idx, op)
JOIN dp_case c USING (op)
ORDER BY i.idx::text;

-- each row once, groups numbered 1..n, every group of two rows or more
SELECT is((SELECT format('%s %s %s %s', count(*) = count(DISTINCT row_tid), min(group_id), max(group_id),
                         count(DISTINCT group_id))
           FROM imgsearch_duplicates(i.idx, 0.06) d),
          (SELECT format('t 1 %s %s', n, n)
           FROM (SELECT count(*) AS n FROM (SELECT group_id FROM imgsearch_duplicates(i.idx, 0.06)
                                            GROUP BY group_id HAVING count(*) >= 2) g) s),
          format('%s: each row once, groups 1..n of two rows or more', i.idx))
FROM (VALUES ('dp_ff_l2'::regclass), ('dp_kd_l2'), ('dp_lsh_l2'),
             ('dp_ff_cos'), ('dp_kd_cos'), ('dp_lsh_cos')) i(idx);

SELECT is(pg_temp.index_groups('dp_kd_l2', 0),
          (SELECT string_agg(format('{%s,%s}', id, id + 1000), ' ' ORDER BY format('{%s,%s}', id, id + 1000))
           FROM generate_series(1, 10) id),
          'radius 0: the exact duplicates, in pairs');
VACUUM dp;
SELECT is(pg_temp.index_groups('dp_lsh_cos', 0.0008), (SELECT sql_groups FROM dp_case WHERE op = '<=>'),
          'the same after VACUUM');

-- Bad arguments.
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp_kd_l2', -1)$$, '22023', NULL, 'a negative distance');
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp_kd_l2', 'NaN')$$, '22023', NULL, 'a NaN distance');
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp_btree', 1)$$, '42809', NULL, 'a btree index');
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp', 1)$$, '42809', NULL, 'a table');
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp_ip', 1)$$, '0A000', NULL,
                 'an inner-product index: no range search');
SELECT is((SELECT count(*) FROM imgsearch_duplicates(NULL, 1)), 0::bigint, 'a NULL index: no rows');
-- cancel: a statement timeout stops it (20,000 range searches over 20,000
-- random rows, which no code prunes, take seconds; 4,000 rows on a line took
-- 140-240 ms, too near the timeout once faissflat's staged pass ran them)
CREATE TABLE dp_big AS
SELECT i AS id, (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i > 0)::imgfeat AS v
FROM generate_series(1, 20000) i;
CREATE INDEX dp_big_ff ON dp_big USING faissflat (v);
-- (throws_ok's WHEN OTHERS does not catch a cancel; query_canceled does)
CREATE FUNCTION pg_temp.cancelled() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM count(*) FROM imgsearch_duplicates('dp_big_ff', 1);
	RETURN 'not cancelled';
EXCEPTION WHEN query_canceled THEN
	RETURN SQLSTATE;
END $$;
SET statement_timeout = '200ms';
SELECT is(pg_temp.cancelled(), '57014', 'a statement timeout cancels it');
SET statement_timeout = '60s';
-- SELECT on the table is needed
CREATE ROLE imgsearch_dp_reader;
GRANT USAGE ON SCHEMA public TO imgsearch_dp_reader;
SET ROLE imgsearch_dp_reader;
SELECT throws_ok($$SELECT * FROM imgsearch_duplicates('dp_kd_l2', 1)$$, '42501', NULL,
                 'without SELECT on the table: refused');
RESET ROLE;
GRANT SELECT ON dp TO imgsearch_dp_reader;
SET ROLE imgsearch_dp_reader;
SELECT is((SELECT count(*) FROM imgsearch_duplicates('dp_kd_l2', 0)), 20::bigint, 'with SELECT: the groups');
RESET ROLE;
REVOKE ALL ON dp FROM imgsearch_dp_reader;
REVOKE ALL ON SCHEMA public FROM imgsearch_dp_reader;
DROP ROLE imgsearch_dp_reader;

SELECT * FROM finish();
