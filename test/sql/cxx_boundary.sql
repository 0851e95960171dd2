-- C++ exceptions surface as clean SQL errors; destructors have run (no live
-- objects left) and the session stays usable after each one.
SELECT imgsearch_cxx_selftest('ok');
SELECT imgsearch_cxx_live_objects();

SELECT imgsearch_cxx_selftest('runtime_error');
SELECT imgsearch_cxx_live_objects();
SELECT imgsearch_cxx_selftest('bad_alloc');
SELECT imgsearch_cxx_live_objects();
SELECT imgsearch_cxx_selftest('unknown');
SELECT imgsearch_cxx_live_objects();
SELECT imgsearch_cxx_selftest('imgs_error');
SELECT imgsearch_cxx_selftest('no_such_kind');
-- an interrupt seen by C++ with none pending in PostgreSQL any more
SELECT imgsearch_cxx_selftest('interrupt');
\set VERBOSITY sqlstate
SELECT imgsearch_cxx_selftest('interrupt');
\set VERBOSITY default
SELECT imgsearch_cxx_live_objects();

-- SQLSTATEs as the client sees them (57014, query_canceled, is deliberately
-- not catchable by WHEN OTHERS, so 'interrupt' is checked on its own above)
CREATE FUNCTION pg_temp.state(kind text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM imgsearch_cxx_selftest(kind);
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT kind, pg_temp.state(kind)
FROM unnest(ARRAY['ok', 'runtime_error', 'bad_alloc', 'unknown', 'imgs_error']) kind;

-- inside a transaction: the error aborts it, rollback recovers
BEGIN;
CREATE TEMP TABLE kept (x int);
SELECT imgsearch_cxx_selftest('runtime_error');
ROLLBACK;
SELECT to_regclass('kept') IS NULL AS rolled_back;
SELECT '[1,2,3]'::imgfeat <-> '[1,2,4]' AS still_usable;

-- not for ordinary users
CREATE ROLE cxx_plain_user;
SET ROLE cxx_plain_user;
SELECT imgsearch_cxx_selftest('ok');
RESET ROLE;
DROP ROLE cxx_plain_user;
