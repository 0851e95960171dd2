-- Roles of the HTTP API (cluster-wide, so written to run again safely).
--   authenticator  the login PostgREST (or the gateway) connects as; NOINHERIT,
--                  so it holds no privilege until it switches to web_anon
--   web_anon       anonymous requests: may execute the api functions, nothing else
--   imgsearch_api  owns the api functions (SECURITY DEFINER) and may read the
--                  data; not a superuser, cannot log in
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'web_anon') THEN
		CREATE ROLE web_anon NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticator') THEN
		CREATE ROLE authenticator LOGIN NOINHERIT;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_api') THEN
		CREATE ROLE imgsearch_api NOLOGIN;
	END IF;
END
$$;

ALTER ROLE authenticator LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE web_anon NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE imgsearch_api NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
GRANT web_anon TO authenticator;

-- PostgREST applies the impersonated role's settings in each request's
-- transaction; the login's own setting bounds direct SQL sessions too.
ALTER ROLE web_anon SET statement_timeout = '15s';
ALTER ROLE authenticator SET statement_timeout = '15s';
