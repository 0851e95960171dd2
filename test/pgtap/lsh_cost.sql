-- lsh's price for a bounded round comes from its build's sample searches
-- (LshMeta.sample_*, lsh_handler.c): LIMIT 30 for 16 midpoints of pairs of
-- the build's sample, at the session's settings, record the buckets probed
-- and the exact keys computed. Without them (an index built with
-- lsh.error_bound = 0, or before they were) the estimate counts a constant
-- 1,500 keys and twice the probes (64 of 140 buckets here). Seeded 64-d sets
-- of 20,000 rows with the same index options:
-- - a decaying spectrum (easy: the neighbours crowd into the nearest
--   buckets): the sample searches probe 35 buckets and compute 290 keys (the
--   build's DEBUG1 line), so the sampled index is priced below the constants;
-- - 400 wide clusters (hard: a midpoint lies between clusters): 126 buckets
--   and 1,814 keys, priced above them.
-- Checked, for L2 (and cosine on the easy set):
-- - the sampled price is below (easy) or above (hard) the constants' price
--   of the same index rebuilt without the sample;
-- - the hard set is priced above the easy one;
-- - the fixed count (lsh.error_bound = 0 at query time) is priced the same
--   with and without the sample: the sample prices only the bounded round;
-- - the sample searches are not scans of the index (idx_scan stays 0).
SET client_min_messages = warning;
SET jit = off;
SET statement_timeout = '120s';
\ir helpers/topk.psql

SELECT plan(8);

SELECT setseed(0.4375);
CREATE TABLE lc_easy (id int PRIMARY KEY, v imgfeat);
INSERT INTO lc_easy SELECT id, v FROM pg_temp.spectrum_feats(64, 20001);
CREATE TABLE lc_hard (id int PRIMARY KEY, v imgfeat);
INSERT INTO lc_hard SELECT id, v FROM pg_temp.cluster_feats(64, 20001, 400, 0.5, 1.6, 7, 3);
-- row 20001 of each is the query, not in the table
CREATE TABLE lc_q (tbl text PRIMARY KEY, q imgfeat);
INSERT INTO lc_q SELECT 'lc_easy', v FROM lc_easy WHERE id = 20001;
INSERT INTO lc_q SELECT 'lc_hard', v FROM lc_hard WHERE id = 20001;
DELETE FROM lc_easy WHERE id = 20001;
DELETE FROM lc_hard WHERE id = 20001;
ANALYZE lc_easy, lc_hard;

-- The planner's total cost of tbl's LIMIT 30 by op, forced to lsh, at the
-- session's lsh settings.
CREATE FUNCTION pg_temp.lsh_cost(tbl text, op text DEFAULT '<->') RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	PERFORM set_config('imgsearch.method', 'lsh', true);
	EXECUTE format('EXPLAIN (FORMAT JSON) SELECT id FROM %I ORDER BY v %s (SELECT q FROM lc_q WHERE tbl = %L) LIMIT 30',
				   tbl, op, tbl) INTO plan;
	PERFORM set_config('imgsearch.method', 'auto', true);
	IF plan::text !~ 'lsh' THEN
		RAISE EXCEPTION 'not an lsh scan: %', plan;
	END IF;
	RETURN (plan -> 0 -> 'Plan' ->> 'Total Cost')::float8;
END $$;

-- Builds (or rebuilds) tbl's lsh index for opclass with or without the sample searches.
CREATE FUNCTION pg_temp.build(tbl text, opclass text, sampled boolean) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM set_config('lsh.error_bound', CASE WHEN sampled THEN '2.5' ELSE '0' END, true);
	EXECUTE format('DROP INDEX IF EXISTS %I', tbl || '_lsh');
	EXECUTE format('CREATE INDEX %I ON %I USING lsh (v %s) WITH (buckets = 140)', tbl || '_lsh', tbl, opclass);
	PERFORM set_config('lsh.error_bound', '2.5', true);
END $$;

CREATE TABLE lc_cost (tbl text, opclass text, sampled boolean, bounded float8, fixed float8);
CREATE FUNCTION pg_temp.measure(tbl text, opclass text, op text, sampled boolean) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	fixed float8;
	bounded float8;
BEGIN
	PERFORM pg_temp.build(tbl, opclass, sampled);
	PERFORM set_config('lsh.error_bound', '0', true);
	fixed := pg_temp.lsh_cost(tbl, op);
	PERFORM set_config('lsh.error_bound', '2.5', true);
	bounded := pg_temp.lsh_cost(tbl, op);
	INSERT INTO lc_cost VALUES (tbl, opclass, sampled, bounded, fixed);
END $$;

-- The sample searches are not scans of the index: in the building
-- transaction, the index has no scan pending for the statistics.
BEGIN;
CREATE INDEX lc_easy_count ON lc_easy USING lsh (v) WITH (buckets = 140);
SELECT is(pg_stat_get_xact_numscans('lc_easy_count'::regclass), 0::bigint,
          'the build''s sample searches do not count as scans of the index');
ROLLBACK;

SELECT pg_temp.measure(t, 'imgfeat_l2_ops', '<->', s)
FROM (VALUES ('lc_easy'), ('lc_hard')) tt(t), (VALUES (true), (false)) ss(s);
SELECT pg_temp.measure('lc_easy', 'imgfeat_cosine_ops', '<=>', s) FROM (VALUES (true), (false)) ss(s);

SELECT cmp_ok(a.bounded, CASE a.tbl WHEN 'lc_easy' THEN '<' ELSE '>' END, b.bounded,
              format('%s, %s: the sampled index prices a bounded LIMIT 30 %s the constants', a.tbl, a.opclass,
                     CASE a.tbl WHEN 'lc_easy' THEN 'below' ELSE 'above' END))
FROM lc_cost a JOIN lc_cost b USING (tbl, opclass)
WHERE a.sampled AND NOT b.sampled ORDER BY a.tbl, a.opclass;
SELECT is(a.fixed, b.fixed,
          format('%s, %s: the fixed count is priced the same with and without the sample', a.tbl, a.opclass))
FROM lc_cost a JOIN lc_cost b USING (tbl, opclass)
WHERE a.sampled AND NOT b.sampled ORDER BY a.tbl, a.opclass;
SELECT cmp_ok(e.bounded, '<', h.bounded, 'the hard set is priced above the easy one, as its sample searches did more')
FROM lc_cost e, lc_cost h
WHERE e.tbl = 'lc_easy' AND h.tbl = 'lc_hard' AND e.sampled AND h.sampled
  AND e.opclass = 'imgfeat_l2_ops' AND h.opclass = 'imgfeat_l2_ops';

SELECT * FROM finish();
