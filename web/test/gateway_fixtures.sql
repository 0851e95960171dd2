-- Fixture API for the gateway conformance suite (conformance.test.js): small
-- functions with each result shape and error the protocol has to carry.
-- Applied to a scratch database after ../db/roles.sql.
CREATE SCHEMA api;
CREATE SCHEMA private;
GRANT USAGE ON SCHEMA api TO web_anon;

CREATE FUNCTION api.add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';

CREATE FUNCTION api.items(n int, prefix text DEFAULT 'item')
RETURNS TABLE (id int, name text) LANGUAGE sql STABLE AS
$$ SELECT i, prefix || i FROM generate_series(1, n) i $$;

CREATE FUNCTION api.numbers(n int) RETURNS SETOF int LANGUAGE sql STABLE AS
$$ SELECT generate_series(1, n) $$;

CREATE TYPE api.pair AS (l int, r text);
CREATE FUNCTION api.pair(l int) RETURNS api.pair LANGUAGE sql STABLE AS
$$ SELECT l, 'r' || l $$;

CREATE FUNCTION api.echo(box int[] DEFAULT NULL, label text DEFAULT 'none', doc json DEFAULT NULL)
RETURNS json LANGUAGE sql STABLE AS
$$ SELECT json_build_object('box', box, 'label', label, 'doc', doc) $$;

-- Who runs the request, and how (SECURITY INVOKER on purpose).
CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE AS $$
	SELECT json_build_object('current_user', current_user, 'session_user', session_user,
		'statement_timeout', current_setting('statement_timeout'),
		'read_only', current_setting('transaction_read_only'),
		'search_path', current_setting('search_path'))
$$;
CREATE FUNCTION api.whoami_volatile() RETURNS json LANGUAGE sql VOLATILE AS
$$ SELECT json_build_object('read_only', current_setting('transaction_read_only')) $$;

-- Sets response headers as PostgREST reads them (response.headers).
CREATE FUNCTION api.with_headers(v text) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
	PERFORM set_config('response.headers',
		json_build_array(json_build_object('X-Fixture', v), json_build_object('Server-Timing', 'db;dur=1.5'))::text, true);
	RETURN 1;
END
$$;

-- Raises the given SQLSTATE with a message, detail and hint.
CREATE FUNCTION api.fail(code text, msg text DEFAULT 'failed on purpose') RETURNS int
LANGUAGE plpgsql STABLE AS $$
BEGIN
	RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, DETAIL = 'detail of ' || code, HINT = 'hint of ' || code;
END
$$;

-- Sleeps as its owner; web_anon's statement_timeout must stop it.
CREATE FUNCTION api.slow(seconds float8) RETURNS int LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog AS $$ SELECT pg_sleep(seconds); SELECT 1 $$;

-- In the schema but not executable by web_anon.
CREATE FUNCTION api.forbidden() RETURNS int LANGUAGE sql AS 'SELECT 1';
REVOKE ALL ON FUNCTION api.forbidden() FROM PUBLIC;

-- Outside the exposed schema.
CREATE FUNCTION private.hidden() RETURNS int LANGUAGE sql AS 'SELECT 42';
GRANT USAGE ON SCHEMA private TO web_anon;

-- Overloads that only names can tell apart, and two that nothing can.
CREATE FUNCTION api.over(x int) RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$;
CREATE FUNCTION api.over(x int, y text) RETURNS text LANGUAGE sql AS $$ SELECT 'xy' $$;
CREATE FUNCTION api.twin(a int, b int DEFAULT 0) RETURNS text LANGUAGE sql AS $$ SELECT 'ab' $$;
CREATE FUNCTION api.twin(a int, c text DEFAULT '') RETURNS text LANGUAGE sql AS $$ SELECT 'ac' $$;

DO $$ BEGIN
	EXECUTE format('ALTER ROLE web_anon IN DATABASE %I SET statement_timeout = %L', current_database(), '1s');
END $$;
