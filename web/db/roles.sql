-- Roles of the HTTP API (cluster-wide, so written to run again safely).
--   authenticator  the login PostgREST (or the gateway) connects as; NOINHERIT,
--                  so it holds no privilege until it switches to web_anon
--   web_anon       anonymous requests: may execute the api functions, nothing else
--   imgsearch_api  owns the api functions (SECURITY DEFINER) and may read the
--                  data (and add images, for add_image); not a superuser,
--                  cannot log in
--   imgsearch_writer  may execute the api functions that write (add_image,
--                  image_status) besides; granted to authenticator, so that
--                  PostgREST switches to it for a JWT whose role claim names
--                  it. web_anon is not a member: grant it (GRANT
--                  imgsearch_writer TO web_anon) only on a trusted network
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
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'imgsearch_writer') THEN
		CREATE ROLE imgsearch_writer NOLOGIN;
	END IF;
END
$$;

ALTER ROLE authenticator LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE web_anon NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE imgsearch_api NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE imgsearch_writer NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
GRANT web_anon TO authenticator;
GRANT imgsearch_writer TO authenticator;

-- PostgREST applies the impersonated role's settings in each request's
-- transaction; the login's own setting bounds direct SQL sessions too.
ALTER ROLE web_anon SET statement_timeout = '15s';
ALTER ROLE authenticator SET statement_timeout = '15s';
ALTER ROLE imgsearch_writer SET statement_timeout = '15s';
