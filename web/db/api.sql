-- The HTTP API: functions in schema api, the only schema PostgREST exposes.
-- They run as imgsearch_api (SECURITY DEFINER, fixed search_path); web_anon
-- may execute them and reach nothing else, but for those that write
-- (add_image, image_status): imgsearch_writer's only (roles.sql). Needs roles.sql and schema.sql
-- first; safe to run again.
LOAD 'imgsearch';                       -- defines imgsearch.method for the SET clauses below

CREATE SCHEMA IF NOT EXISTS api;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO web_anon, imgsearch_writer, imgsearch_api;

-- Only the owner role reaches the data and the extension's objects.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA gallery FROM PUBLIC;
GRANT USAGE ON SCHEMA public, gallery TO imgsearch_api;
-- pg_catalog stays usable (json functions, operators); its sleeps do not.
REVOKE EXECUTE ON FUNCTION pg_sleep(float8), pg_sleep_for(interval),
	pg_sleep_until(timestamptz) FROM PUBLIC;
DO $$ BEGIN
	EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;

-- On a coordinator (docs/sharding.md)
-- gallery.images is partitioned and its leaf partitions are foreign tables
-- on shards: these. None on a single node.
CREATE OR REPLACE FUNCTION gallery.shard_leaves()
RETURNS TABLE (leaf regclass, nspname name, relname name, srvname name)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid::regclass, n.nspname, c.relname, s.srvname
	  FROM pg_partition_tree('gallery.images') t
	  JOIN pg_class c ON c.oid = t.relid
	  JOIN pg_namespace n ON n.oid = c.relnamespace
	  JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
	  JOIN pg_foreign_server s ON s.oid = ft.ftserver
	 WHERE t.isleaf
	 ORDER BY c.relname
$$;

-- A shard's indexes are its own: for each foreign leaf P, the foreign table
-- P_feat_methods reads the shard's gallery.feat_methods (schema.sql). Run
-- this file again after adding shards.
DO $$
DECLARE
	p record;
BEGIN
	FOR p IN SELECT * FROM gallery.shard_leaves() LOOP
		EXECUTE format('CREATE FOREIGN TABLE IF NOT EXISTS %I.%I (method text, index_name text)'
		               ' SERVER %I OPTIONS (schema_name %L, table_name %L)',
		               p.nspname, p.relname || '_feat_methods', p.srvname, 'gallery', 'feat_methods');
	END LOOP;
END $$;
GRANT SELECT ON ALL TABLES IN SCHEMA gallery TO imgsearch_api;
-- add_image's writes: new rows of gallery.images and their ids; nothing else.
GRANT INSERT ON gallery.images TO imgsearch_api;
GRANT USAGE, UPDATE ON SEQUENCE gallery.images_id_seq TO imgsearch_api;
-- api.search keeps uploads (for links), and prunes them.
GRANT INSERT, UPDATE, DELETE ON gallery.uploads TO imgsearch_api;

-- An image argument of the API: base64 (22023 if not), at most 8 MB (PT413,
-- HTTP 413). Shared by api.search and api.add_image.
CREATE OR REPLACE FUNCTION gallery.decode_image(image text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	img bytea;
BEGIN
	BEGIN
		img := decode(image, 'base64');
	EXCEPTION WHEN invalid_parameter_value THEN
		RAISE EXCEPTION 'image is not valid base64' USING ERRCODE = '22023';
	END;
	IF length(img) > 8 * 1024 * 1024 THEN
		RAISE EXCEPTION 'The image is too large: % MB; the limit is 8 MB.', round(length(img) / 1048576.0, 1)
			USING ERRCODE = 'PT413', HINT = 'Use a smaller image (the model sees 224 x 224 pixels).';
	END IF;
	RETURN img;
END $$;
REVOKE ALL ON FUNCTION gallery.decode_image(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gallery.decode_image(text) TO imgsearch_api;

-- Methods usable here: gallery.feat_methods (argsort, and each index method
-- with an index for <->). On a coordinator: those every shard has, and for
-- which imgsearch_shard_methods made the tables that run a shard's session
-- under that method (P_method, for each foreign leaf P); index_name is the
-- shards' index (the first by name).
CREATE OR REPLACE FUNCTION api.methods()
RETURNS TABLE (method text, index_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	shards text;
	n int;
BEGIN
	SELECT string_agg(format('SELECT method, index_name FROM %I.%I', l.nspname, l.relname || '_feat_methods'),
	                  ' UNION ALL '), count(*)
	  INTO shards, n
	  FROM gallery.shard_leaves() l;
	IF n = 0 THEN
		RETURN QUERY SELECT m.method, m.index_name FROM gallery.feat_methods m;
		RETURN;
	END IF;
	RETURN QUERY EXECUTE format($q$
		SELECT m.method, min(m.index_name)
		  FROM (%s) m
		 WHERE NOT EXISTS (SELECT FROM gallery.shard_leaves() l
		                    WHERE to_regclass(format('%%I.%%I', l.nspname, l.relname || '_' || m.method)) IS NULL)
		 GROUP BY m.method
		HAVING count(*) = $1
		 ORDER BY m.method <> 'argsort', m.method$q$, shards) USING n;
END
$$;

-- The scan of gallery.images in the plan of query (parameters $1 = q, $2 =
-- k), as the page shows it: "faissflat index scan", "sequential scan".
-- VOLATILE: plpgsql allows EXPLAIN only there (api.search is STABLE). Not in
-- schema api: HTTP cannot call it.
CREATE OR REPLACE FUNCTION gallery.search_scan(query text, q anyelement, k int)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	plan json;
	scan json;
BEGIN
	EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan USING q, k;
	scan := jsonb_path_query_first(plan::jsonb, 'strict $.**?(@."Relation Name" == "images")')::json;
	RETURN CASE
		WHEN scan->>'Node Type' IN ('Index Scan', 'Index Only Scan') THEN
			coalesce((SELECT am.amname::text FROM pg_class c JOIN pg_am am ON am.oid = c.relam
			           WHERE c.relname = scan->>'Index Name'
			             AND c.relnamespace = 'gallery'::regnamespace), scan->>'Index Name') || ' index scan'
		WHEN scan->>'Node Type' = 'Seq Scan' THEN 'sequential scan'
		ELSE lower(coalesce(scan->>'Node Type', 'unknown scan'))
	END;
END
$$;
ALTER FUNCTION gallery.search_scan(text, anyelement, int) OWNER TO imgsearch_api;
REVOKE ALL ON FUNCTION gallery.search_scan(text, anyelement, int) FROM PUBLIC;

-- Checks k and method as every search takes them: 22004 for null, 22023
-- for k outside 1..1000 or a method api.methods() does not offer.
CREATE OR REPLACE FUNCTION gallery.check_search(k int, method text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF k IS NULL OR method IS NULL THEN
		RAISE EXCEPTION 'k and method must not be null' USING ERRCODE = '22004';
	END IF;
	IF k NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'k must be between 1 and 1000, not %', k USING ERRCODE = '22023';
	END IF;
	IF method <> 'auto' AND method NOT IN (SELECT m.method FROM api.methods() m) THEN
		RAISE EXCEPTION 'unknown method "%"', method USING ERRCODE = '22023',
			HINT = 'Use auto or one of: ' || (SELECT string_agg(m.method, ', ') FROM api.methods() m) || '.';
	END IF;
END
$$;

-- A box argument: NULL or {x, y, width, height} (22023).
CREATE OR REPLACE FUNCTION gallery.check_box(box int[]) RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF box IS NOT NULL AND (array_length(box, 1) IS DISTINCT FROM 4 OR array_ndims(box) <> 1
	                        OR array_position(box, NULL) IS NOT NULL) THEN
		RAISE EXCEPTION 'box must be {x, y, width, height}' USING ERRCODE = '22023';
	END IF;
END
$$;

-- The feature of an image (bytes), or of the area box of it. Errors a
-- user can cause are 4xx: too many pixels 413 (PT413); a statement timeout
-- under load 503 (PT503) "busy, try again".
CREATE OR REPLACE FUNCTION gallery.features(img bytea, box int[]) RETURNS imgfeat
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
	RETURN CASE WHEN box IS NULL THEN vgg16_features(img) ELSE vgg16_features(img, box) END;
EXCEPTION
	WHEN program_limit_exceeded THEN        -- imgsearch.max_pixels, decode limits
		RAISE EXCEPTION 'The image has too many pixels for the server.' USING ERRCODE = 'PT413',
			DETAIL = regexp_replace(SQLERRM, 'exceeds imgsearch\.max_pixels \((\d+)\)', 'is over the limit of \1 pixels'),
			HINT = 'Use a smaller image (the model sees 224 x 224 pixels).';
	WHEN query_canceled THEN                -- the statement timeout, under load
		RAISE EXCEPTION 'The server is busy: the search did not finish in time. Try again.'
			USING ERRCODE = 'PT503', DETAIL = SQLERRM;
END
$$;

-- Appends a header to PostgREST's response.headers (a JSON array of
-- {name: value}) of this transaction.
CREATE OR REPLACE FUNCTION gallery.add_response_header(name text, value text) RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
	-- json, not jsonb: the headers already there keep their text
	SELECT set_config('response.headers', (
		SELECT json_agg(h.e ORDER BY h.n)::text
		  FROM (SELECT e, n FROM json_array_elements(coalesce(nullif(current_setting('response.headers', true), ''), '[]')::json)
		                         WITH ORDINALITY a(e, n)
		        UNION ALL
		        SELECT json_build_object(name, value), 2147483647) h), true);
$$;

-- The k rows of gallery.images nearest to q (an imgfeat, or imgexamples:
-- the score of several examples), under imgsearch.method = method: the
-- result of api.search, api.search_upload and api.similar. Sets the
-- response headers X-Search-Method, the scan the plan chose ("faissflat
-- index scan", "sequential scan"; on a coordinator "faissflat index scan on
-- 2 shards (sharded)"), and Server-Timing: model (model_ms, the caller's
-- extraction) and db (the query), in ms. A statement timeout is 503 (PT503).
-- Not in schema api: HTTP cannot call it.
CREATE OR REPLACE FUNCTION gallery.nearest(q anyelement, k int, method text, model_ms float8)
RETURNS TABLE (rank int, id bigint, name text, grp text, distance float8,
	width int, height int, thumb text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
SET imgsearch.method = 'auto'           -- restored when the function returns
SET enable_seqscan = on                 -- likewise
AS $$
#variable_conflict use_column
DECLARE
	t0 timestamptz;
	ran text;
	query constant text := $query$
	SELECT (row_number() OVER (ORDER BY r.distance, r.id))::int, r.id, r.name, r.grp,
	       r.distance, r.width, r.height, encode(r.thumb, 'base64')
	  FROM (SELECT i.id, i.name, i.grp, i.width, i.height, i.thumb,
	               (i.feat <-> $1)::float8 AS distance
	          FROM gallery.images i
	         WHERE i.feat IS NOT NULL
	         ORDER BY i.feat <-> $1
	         LIMIT $2) r
	 ORDER BY 1
	$query$;
	-- On a coordinator: the k nearest ids from imgsearch_sharded_search
	-- (ORDER BY and LIMIT sent to every shard, concurrently; $1 = q, $2 = k,
	-- $3 = method), then those rows' columns ($4 = the ids), fetched from
	-- the shards by id.
	sharded_ids constant text := $query$
	SELECT array_agg(s.id), array_agg(s.distance)
	  FROM imgsearch_sharded_search('gallery.images', $1, $2, '<->', $3) s
	$query$;
	sharded_rows constant text := $query$
	SELECT (row_number() OVER (ORDER BY u.distance, u.id))::int, u.id, i.name, i.grp,
	       u.distance, i.width, i.height, encode(i.thumb, 'base64')
	  FROM unnest($1::bigint[], $2::float8[]) u(id, distance)
	  JOIN (SELECT * FROM gallery.images WHERE id = ANY ($1)) i ON i.id = u.id
	 ORDER BY 1
	$query$;
	shards int := (SELECT count(*) FROM gallery.shard_leaves());
	ids bigint[];
	distances float8[];
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	-- imgsearch.method = an index method rules out the other index methods,
	-- not the sequential scan: on a small table the planner may still find
	-- scan + sort cheaper (on the 24-row test set at k = 24, for faissflat
	-- and kdtree alike). The page asked for that index (faissflat, kdtree,
	-- lsh: whichever methods() lists): use it.
	IF method NOT IN ('auto', 'argsort') THEN
		PERFORM set_config('enable_seqscan', 'off', true);
	END IF;
	t0 := clock_timestamp();
	BEGIN
		IF shards > 0 AND pg_typeof(q) = 'imgfeat'::regtype THEN
			-- Each shard's session runs under the method (its server's
			-- options), with the index methods() found there; under auto,
			-- each shard's planner chooses and the coordinator cannot see it.
			ran := CASE method WHEN 'auto' THEN 'auto (each shard''s planner)'
			                   WHEN 'argsort' THEN 'sequential scan'
			                   ELSE method || ' index scan' END
			       || format(' on %s shards (sharded)', shards);
			EXECUTE sharded_ids INTO ids, distances USING q, k, method;
			RETURN QUERY EXECUTE sharded_rows USING ids, distances;
		ELSE
			-- The plan the query below gets names the method that runs.
			ran := gallery.search_scan(query, q, k);
			-- EXECUTE plans the query on every call, under the method just set: a
			-- plan cached by plpgsql would keep the index choice of an earlier call.
			RETURN QUERY EXECUTE query USING q, k;
		END IF;
	EXCEPTION
		WHEN query_canceled THEN                -- the statement timeout, under load
			RAISE EXCEPTION 'The server is busy: the search did not finish in time. Try again.'
				USING ERRCODE = 'PT503', DETAIL = SQLERRM;
	END;
	PERFORM set_config('response.headers', json_build_array(
		json_build_object('X-Search-Method', ran),
		json_build_object('Server-Timing', format('model;dur=%s, db;dur=%s', round(model_ms::numeric, 1),
			round(extract(epoch FROM clock_timestamp() - t0) * 1000, 1))))::text, true);
END
$$;

-- Uploads (gallery.uploads) are kept web.upload_max_age (an interval,
-- default 24 hours) after the last search that sent them, at most
-- web.upload_max_count of them (default 500) and web.upload_max_mb MB in
-- all (default 512): settings of the database or role (ALTER DATABASE ...
-- SET web.upload_max_age = '2 hours').
CREATE OR REPLACE FUNCTION gallery.upload_limits(OUT max_age interval, OUT max_count int, OUT max_bytes bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(nullif(current_setting('web.upload_max_age', true), '')::interval, interval '24 hours'),
	       coalesce(nullif(current_setting('web.upload_max_count', true), '')::int, 500),
	       coalesce(nullif(current_setting('web.upload_max_mb', true), '')::bigint, 512) * 1024 * 1024
$$;

-- Keeps an uploaded image (its feature too, when it is the whole image's)
-- for a link to name it, and returns its sha256 (hex), or NULL in a
-- read-only transaction (a GET, a standby): nothing kept, no link. Prunes
-- past the limits; one session at a time (the others skip it: their rows
-- go at the next keep), so concurrent searches neither wait on each other
-- nor deadlock over the same old rows.
CREATE OR REPLACE FUNCTION gallery.keep_upload(img bytea, whole_feat imgfeat) RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	hash bytea := sha256(img);
	lim record := gallery.upload_limits();
BEGIN
	IF current_setting('transaction_read_only') = 'on' THEN
		RETURN NULL;
	END IF;
	INSERT INTO gallery.uploads AS u (sha256, img, feat, kept_at)
	VALUES (hash, img, whole_feat, now())
	ON CONFLICT (sha256) DO UPDATE SET kept_at = excluded.kept_at, feat = coalesce(excluded.feat, u.feat);
	IF pg_try_advisory_xact_lock(hashtext('gallery.uploads prune')) THEN
		DELETE FROM gallery.uploads u
		 USING (SELECT o.sha256, o.kept_at,
		               row_number() OVER w AS n, sum(length(o.img)) OVER w AS bytes
		          FROM gallery.uploads o
		        WINDOW w AS (ORDER BY o.kept_at DESC, o.sha256 = hash DESC, o.sha256)) o
		 WHERE u.sha256 = o.sha256 AND o.sha256 <> hash
		   AND (o.kept_at < now() - lim.max_age OR o.n > lim.max_count OR o.bytes > lim.max_bytes);
	END IF;
	RETURN encode(hash, 'hex');
END
$$;

-- A kept upload by its sha256 (64 hex digits; 22023 if not): the row, or
-- 410 (PT410) when it is not kept (expired, pruned, or never sent here).
CREATE OR REPLACE FUNCTION gallery.kept_upload(sha256 text) RETURNS gallery.uploads
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	u gallery.uploads;
BEGIN
	IF sha256 IS NULL THEN
		RAISE EXCEPTION 'sha256 is missing' USING ERRCODE = '22004',
			HINT = 'Send the hash a search of an uploaded image answered (X-Upload-Sha256).';
	END IF;
	IF sha256 !~ '^[0-9a-fA-F]{64}$' THEN
		RAISE EXCEPTION 'not a sha256 (64 hex digits): "%"', left(sha256, 80) USING ERRCODE = '22023';
	END IF;
	SELECT * INTO u FROM gallery.uploads k
	 WHERE k.sha256 = decode(lower(kept_upload.sha256), 'hex')
	   AND k.kept_at >= now() - (gallery.upload_limits()).max_age;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'The uploaded image % is no longer kept on the server.', left(lower(sha256), 12)
			USING ERRCODE = 'PT410',
			DETAIL = format('Uploads are kept for %s after their last search, and only the latest few.',
			                (gallery.upload_limits()).max_age),
			HINT = 'Upload the image again.';
	END IF;
	RETURN u;
END
$$;

-- The feature of a kept upload, or of the area box of it: the stored one
-- for the whole image, else extracted.
CREATE OR REPLACE FUNCTION gallery.upload_features(sha256 text, box int[]) RETURNS imgfeat
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	u gallery.uploads := gallery.kept_upload(sha256);
BEGIN
	IF box IS NULL AND u.feat IS NOT NULL THEN
		RETURN u.feat;
	END IF;
	RETURN gallery.features(u.img, box);
END
$$;

-- The k images nearest to the query image (base64), optionally to the area
-- box = {x, y, width, height} of it, under imgsearch.method = method.
-- Errors a user can cause are 4xx (PostgREST's PTnnn SQLSTATEs set the HTTP
-- status): a bad argument 400, an image too large or with too many pixels
-- 413; a statement timeout under load is 503 "busy, try again".
-- What ran goes back in response headers (gallery.nearest): X-Search-Method
-- and Server-Timing (model: the feature extraction; db: the query).
-- The image is kept for a while (gallery.keep_upload) and its hash answered
-- in X-Upload-Sha256: api.search_upload(sha256) searches with it again (a
-- link). VOLATILE for that: PostgREST runs it in a read-write transaction.
-- image has a default (NULL) so that a call without it reaches this
-- function and gets 400 (22004) saying what is missing, not PostgREST's 404
-- "function not found".
CREATE OR REPLACE FUNCTION api.search(image text DEFAULT NULL, k int DEFAULT 30,
	method text DEFAULT 'auto', box int[] DEFAULT NULL)
RETURNS TABLE (rank int, id bigint, name text, grp text, distance float8,
	width int, height int, thumb text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	img bytea;
	q imgfeat;
	t0 timestamptz;
	model_ms float8;
	hash text;
BEGIN
	IF image IS NULL THEN
		RAISE EXCEPTION 'image is missing' USING ERRCODE = '22004',
			HINT = 'Send the image as base64 in "image": {"image": "..."}.';
	END IF;
	PERFORM gallery.check_search(k, method);
	PERFORM gallery.check_box(box);
	img := gallery.decode_image(image);
	t0 := clock_timestamp();
	q := gallery.features(img, box);
	model_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
	RETURN QUERY SELECT * FROM gallery.nearest(q, k, method, model_ms);
	hash := gallery.keep_upload(img, CASE WHEN box IS NULL THEN q END);
	IF hash IS NOT NULL THEN
		PERFORM gallery.add_response_header('X-Upload-Sha256', hash);
	END IF;
END
$$;

-- The k images nearest to an uploaded image that api.search kept (by its
-- sha256, the X-Upload-Sha256 it answered), or to the area box of it: a
-- link to a search with an upload. 410 (PT410) once it is no longer kept.
-- The whole image's feature is stored (no extraction); an area's is
-- extracted again.
CREATE OR REPLACE FUNCTION api.search_upload(sha256 text DEFAULT NULL, k int DEFAULT 30,
	method text DEFAULT 'auto', box int[] DEFAULT NULL)
RETURNS TABLE (rank int, id bigint, name text, grp text, distance float8,
	width int, height int, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	q imgfeat;
	t0 timestamptz;
	model_ms float8;
BEGIN
	PERFORM gallery.check_search(k, method);
	PERFORM gallery.check_box(box);
	t0 := clock_timestamp();
	q := gallery.upload_features(sha256, box);
	model_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
	RETURN QUERY SELECT * FROM gallery.nearest(q, k, method, model_ms);
END
$$;

-- A kept upload itself (base64), for the page to show a link's query
-- image: {sha256, image, expires}. 410 (PT410) once it is no longer kept.
CREATE OR REPLACE FUNCTION api.upload_image(sha256 text DEFAULT NULL)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	u gallery.uploads := gallery.kept_upload(sha256);
BEGIN
	RETURN json_build_object('sha256', encode(u.sha256, 'hex'), 'image', encode(u.img, 'base64'),
		'expires', u.kept_at + (gallery.upload_limits()).max_age);
END
$$;

-- The features of kept uploads named as examples: each "SHA256" (the whole
-- image: its stored feature) or "SHA256:x,y,w,h" (an area of it: extracted,
-- Server-Timing's model); 22023 for another form, 410 (PT410) for one no
-- longer kept.
CREATE OR REPLACE FUNCTION gallery.upload_ref_features(refs text[]) RETURNS imgfeat[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	ref text;
	m text[];
	feats imgfeat[] := '{}';
BEGIN
	FOREACH ref IN ARRAY refs LOOP
		m := regexp_match(ref, '^([0-9a-fA-F]{64})(?::([0-9]{1,9}),([0-9]{1,9}),([0-9]{1,9}),([0-9]{1,9}))?$');
		IF m IS NULL THEN
			RAISE EXCEPTION 'an upload example is "SHA256" or "SHA256:x,y,w,h", not "%"', left(coalesce(ref, 'null'), 90)
				USING ERRCODE = '22023';
		END IF;
		feats := feats || gallery.upload_features(m[1], CASE WHEN m[2] IS NULL THEN NULL
			ELSE ARRAY[m[2], m[3], m[4], m[5]]::int[] END);
	END LOOP;
	RETURN feats;
END
$$;

-- Images like collection images, by their stored features (no extraction):
-- "search with this image" from a result or the gallery (one positive id),
-- and "more like these, less like those" (several positives, negatives):
-- the best score of imgsearch_examples (docs/methods.md, "Several
-- examples"), one index scan from every positive. distance is the score: a
-- row's distance to its nearest positive, or, for a row at least as near a
-- negative, a number past every distance (2^290 / its distance to the
-- nearest negative). The same columns and headers as api.search.
-- Kept uploads are examples too (positive_uploads, negative_uploads, at
-- most 8): gallery.upload_ref_features.
DROP FUNCTION IF EXISTS api.similar(bigint[], bigint[], int, text);
CREATE OR REPLACE FUNCTION api.similar(positives bigint[] DEFAULT '{}', negatives bigint[] DEFAULT '{}',
	k int DEFAULT 30, method text DEFAULT 'auto',
	positive_uploads text[] DEFAULT '{}', negative_uploads text[] DEFAULT '{}')
RETURNS TABLE (rank int, id bigint, name text, grp text, distance float8,
	width int, height int, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	ex imgexamples;
	missing bigint[];
	t0 timestamptz;
	model_ms float8;
	n int;
BEGIN
	IF positives IS NULL OR negatives IS NULL OR positive_uploads IS NULL OR negative_uploads IS NULL THEN
		RAISE EXCEPTION 'positives, negatives, positive_uploads and negative_uploads must not be null'
			USING ERRCODE = '22004';
	END IF;
	IF cardinality(positives) + cardinality(positive_uploads) = 0 THEN
		RAISE EXCEPTION 'positives is missing' USING ERRCODE = '22004',
			HINT = 'Send the ids of one or more collection images in "positives": {"positives": [12]}.';
	END IF;
	n := cardinality(positives) + cardinality(negatives) + cardinality(positive_uploads) + cardinality(negative_uploads);
	IF n > 64 THEN
		RAISE EXCEPTION 'at most 64 examples, not %', n USING ERRCODE = '22023';
	END IF;
	IF cardinality(positive_uploads) + cardinality(negative_uploads) > 8 THEN
		RAISE EXCEPTION 'at most 8 upload examples, not %', cardinality(positive_uploads) + cardinality(negative_uploads)
			USING ERRCODE = '22023';
	END IF;
	PERFORM gallery.check_search(k, method);
	SELECT array_agg(u.x ORDER BY u.x) INTO missing
	  FROM unnest(positives || negatives) u(x)
	 WHERE u.x IS NULL OR NOT EXISTS (SELECT FROM gallery.images i WHERE i.id = u.x AND i.feat IS NOT NULL);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'no searchable image with id %', array_to_string(missing, ', ', 'null') USING ERRCODE = '22023',
			HINT = 'Use the ids of images whose features are there (api.image_status says).';
	END IF;
	t0 := clock_timestamp();
	ex := imgsearch_examples(
		ARRAY(SELECT i.feat FROM unnest(positives) WITH ORDINALITY u(x, n) JOIN gallery.images i ON i.id = u.x ORDER BY u.n)
			|| gallery.upload_ref_features(positive_uploads),
		ARRAY(SELECT i.feat FROM unnest(negatives) WITH ORDINALITY u(x, n) JOIN gallery.images i ON i.id = u.x ORDER BY u.n)
			|| gallery.upload_ref_features(negative_uploads));
	model_ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
	RETURN QUERY SELECT * FROM gallery.nearest(ex, k, method, model_ms);
END
$$;

-- The collection, a page at a time, by id: the page's gallery. Without
-- thumbnails (api.thumbs fetches those of the cards in view); total is the
-- number of images. page from 1, page_size 1 to 100 (22023).
CREATE OR REPLACE FUNCTION api.gallery(page int DEFAULT 1, page_size int DEFAULT 24)
RETURNS TABLE (id bigint, name text, grp text, width int, height int, searchable boolean, total bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	IF page IS NULL OR page_size IS NULL THEN
		RAISE EXCEPTION 'page and page_size must not be null' USING ERRCODE = '22004';
	END IF;
	IF page < 1 OR page > 10000000 THEN
		RAISE EXCEPTION 'page must be 1 or more, not %', page USING ERRCODE = '22023';
	END IF;
	IF page_size NOT BETWEEN 1 AND 100 THEN
		RAISE EXCEPTION 'page_size must be between 1 and 100, not %', page_size USING ERRCODE = '22023';
	END IF;
	RETURN QUERY
	SELECT i.id, i.name, i.grp, i.width, i.height, i.feat IS NOT NULL, count(*) OVER ()
	  FROM gallery.images i
	 ORDER BY i.id
	OFFSET (page::bigint - 1) * page_size LIMIT page_size;
END
$$;

-- The thumbnails (base64 JPEG) of up to 100 collection images, by id (an
-- id that is none is left out): the gallery's cards as they come into view,
-- the chips of a link's examples.
CREATE OR REPLACE FUNCTION api.thumbs(ids bigint[] DEFAULT NULL)
RETURNS TABLE (id bigint, name text, grp text, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	IF ids IS NULL OR array_position(ids, NULL) IS NOT NULL THEN
		RAISE EXCEPTION 'ids must be an array of ids, none null' USING ERRCODE = '22004';
	END IF;
	IF cardinality(ids) > 100 THEN
		RAISE EXCEPTION 'at most 100 ids, not %', cardinality(ids) USING ERRCODE = '22023';
	END IF;
	RETURN QUERY
	SELECT i.id, i.name, i.grp, encode(i.thumb, 'base64')
	  FROM gallery.images i
	 WHERE i.id = ANY (ids)
	 ORDER BY i.id;
END
$$;

-- A few images to try on the empty page: the first searchable image of
-- each of the first n photographs (groups), n from 1 to 24 (22023).
CREATE OR REPLACE FUNCTION api.try_these(n int DEFAULT 6)
RETURNS TABLE (id bigint, name text, grp text, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	IF n IS NULL OR n NOT BETWEEN 1 AND 24 THEN
		RAISE EXCEPTION 'n must be between 1 and 24, not %', coalesce(n::text, 'null') USING ERRCODE = '22023';
	END IF;
	RETURN QUERY
	SELECT f.id, f.name, f.grp, encode(f.thumb, 'base64')
	  FROM (SELECT DISTINCT ON (i.grp) i.id, i.name, i.grp, i.thumb
	          FROM gallery.images i
	         WHERE i.feat IS NOT NULL
	         ORDER BY i.grp, i.id) f
	 ORDER BY f.grp
	 LIMIT n;
END
$$;

-- The helpers above run as imgsearch_api (inside its api functions) and
-- are nobody else's.
DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid FROM pg_proc p
	          WHERE p.pronamespace = 'gallery'::regnamespace
	            AND p.proname IN ('check_search', 'check_box', 'features', 'add_response_header', 'nearest',
	                              'upload_limits', 'keep_upload', 'kept_upload', 'upload_features',
	                              'upload_ref_features') LOOP
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO imgsearch_api', f);
	END LOOP;
END
$$;

-- One image of the collection, whole (base64): the page's larger view, and
-- "search with this image".
CREATE OR REPLACE FUNCTION api.image(id bigint)
RETURNS TABLE (name text, grp text, width int, height int, image text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT i.name, i.grp, i.width, i.height, encode(i.img, 'base64')
	  FROM gallery.images i
	 WHERE i.id = image.id
$$;

-- What the page shows about the collection and the model.
CREATE OR REPLACE FUNCTION api.stats()
RETURNS json
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
	SELECT json_build_object(
		'images', count(*),
		'with_features', count(feat),
		'groups', count(DISTINCT grp),
		'methods', (SELECT json_agg(m.method) FROM api.methods() m),
		-- the model file's name, not its path on the server
		'model', (SELECT json_build_object('file', regexp_replace(mi.path, '^.*/', ''),
			'layer', mi.layer, 'dims', mi.dims, 'weights', mi.weights, 'sha256', mi.sha256,
			'note', mi.note) FROM imgsearch_model_info() mi))
	  FROM gallery.images
$$;

-- The ingest error of an image of gallery.images, if any: (sqlstate,
-- message) from imgsearch_ingest_errors, whose rows only the table's owner
-- sees (row-level security). So this runs as the owner of this file's
-- objects (the table's), and does that one lookup; only imgsearch_api may
-- call it. None without ingest (imgsearch 0.1) or on a coordinator (the
-- errors are the shards').
CREATE OR REPLACE FUNCTION gallery.image_error(image_id bigint, OUT sqlstate text, OUT message text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
BEGIN
	IF to_regclass('public.imgsearch_ingest_errors') IS NULL THEN
		RETURN;
	END IF;
	EXECUTE 'SELECT e.sqlstate, e.message FROM public.imgsearch_ingest_errors e
	          WHERE e.relid = $1 AND e.key = $2::text'
		INTO sqlstate, message USING to_regclass('gallery.images'), image_id;
END
$$;
REVOKE ALL ON FUNCTION gallery.image_error(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gallery.image_error(bigint) TO imgsearch_api;

-- Adds an image (base64) to the collection and returns its new id: name
-- (default upload-ID, unique) and grp (default uploads) as the page shows
-- them; width, height and the thumbnail from the image; the feature NULL,
-- for the database's ingest workers to fill (on a coordinator, the shard's
-- that the row goes to). api.image_status(id) says when it is searchable.
-- The image is checked here, so that a bad one is refused at once: over
-- 8 MB or imgsearch.max_pixels 413 (PT413), not base64 400 (22023),
-- undecodable 400 (22P03), a name taken 409 (23505).
-- VOLATILE: PostgREST (and the gateway) run it in a read-write transaction.
-- image defaults to NULL only to answer its absence with 400, as search does.
CREATE OR REPLACE FUNCTION api.add_image(image text DEFAULT NULL, name text DEFAULT NULL, grp text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	img bytea;
	info record;
	small bytea;
	new_id bigint;
BEGIN
	IF image IS NULL THEN
		RAISE EXCEPTION 'image is missing' USING ERRCODE = '22004',
			HINT = 'Send the image as base64 in "image": {"image": "..."}.';
	END IF;
	IF name IS NOT NULL AND (length(name) NOT BETWEEN 1 AND 200 OR name ~ '[[:cntrl:]]') THEN
		RAISE EXCEPTION 'name must be 1 to 200 characters, none a control character' USING ERRCODE = '22023';
	END IF;
	IF grp IS NOT NULL AND (length(grp) NOT BETWEEN 1 AND 200 OR grp ~ '[[:cntrl:]]') THEN
		RAISE EXCEPTION 'grp must be 1 to 200 characters, none a control character' USING ERRCODE = '22023';
	END IF;
	img := gallery.decode_image(image);
	BEGIN
		info := imgsearch_image_info(img);       -- a bad image: 22P03 here, at once
		small := imgsearch_thumbnail(img, 256);  -- decoded under the model's limits
	EXCEPTION
		WHEN program_limit_exceeded THEN        -- imgsearch.max_pixels, decode limits
			RAISE EXCEPTION 'The image has too many pixels for the server.' USING ERRCODE = 'PT413',
				DETAIL = regexp_replace(SQLERRM, 'exceeds imgsearch\.max_pixels \((\d+)\)', 'is over the limit of \1 pixels'),
				HINT = 'Use a smaller image.';
	END;
	-- The loader's ids are positions in its manifest: an id taken moves the
	-- sequence past the largest id, and the next one is tried.
	FOR attempt IN 1..5 LOOP
		new_id := nextval('gallery.images_id_seq');
		BEGIN
			INSERT INTO gallery.images AS i (id, name, grp, width, height, img, thumb)
			VALUES (new_id, coalesce(add_image.name, 'upload-' || new_id), coalesce(add_image.grp, 'uploads'),
			        info.width, info.height, img, small);
			RETURN new_id;
		EXCEPTION WHEN unique_violation THEN
			IF EXISTS (SELECT 1 FROM gallery.images i WHERE i.id = new_id) THEN
				PERFORM setval('gallery.images_id_seq', greatest(new_id, (SELECT max(i.id) FROM gallery.images i)));
			ELSIF add_image.name IS NOT NULL THEN
				RAISE EXCEPTION 'an image named "%" exists already', add_image.name USING ERRCODE = '23505',
					HINT = 'Choose another name, or none (upload-ID).';
			END IF;                             -- else upload-ID was taken: the next id
		END;
	END LOOP;
	RAISE EXCEPTION 'could not find a free id for the image' USING ERRCODE = '55000',
		HINT = 'Try again.';
END
$$;

-- Where an image stands: {id, state, error}, state pending (no feature
-- yet), done (searchable), failed (the ingest worker could not make its
-- feature: error {sqlstate, message}) or missing (no such id).
CREATE OR REPLACE FUNCTION api.image_status(id bigint)
RETURNS json
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
DECLARE
	has_feat boolean;
	e record;
BEGIN
	IF id IS NULL THEN
		RAISE EXCEPTION 'id must not be null' USING ERRCODE = '22004';
	END IF;
	SELECT i.feat IS NOT NULL INTO has_feat FROM gallery.images i WHERE i.id = image_status.id;
	IF NOT FOUND THEN
		RETURN json_build_object('id', id, 'state', 'missing', 'error', NULL);
	END IF;
	IF has_feat THEN
		RETURN json_build_object('id', id, 'state', 'done', 'error', NULL);
	END IF;
	e := gallery.image_error(id);
	IF e.sqlstate IS NOT NULL THEN
		RETURN json_build_object('id', id, 'state', 'failed',
			'error', json_build_object('sqlstate', e.sqlstate, 'message', e.message));
	END IF;
	RETURN json_build_object('id', id, 'state', 'pending', 'error', NULL);
END
$$;

-- Whether the caller may add images (api.add_image): the page offers "Add
-- to the collection" only then. SECURITY INVOKER, so that it asks about the
-- role the request runs as (web_anon, or imgsearch_writer and its members),
-- not this function's owner.
CREATE OR REPLACE FUNCTION api.can_write()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT has_function_privilege('api.add_image(text, text, text)', 'EXECUTE')
$$;

-- The collection's duplicate groups: imgsearch_duplicates (docs/methods.md)
-- over gallery.images' kdtree index, where each of the n range searches
-- costs about a k-NN search (over faissflat or lsh each is a flat pass: n^2
-- distances, minutes on a large table; so only kdtree). The bounds:
-- max_distance from 0 to 0.5 (on the unit-length features, 0.5 is far past
-- any near-copy; a larger radius only makes each search return more), and
-- the caller's statement timeout (15 s for web_anon): a collection too large
-- for it gets 503 (PT503) saying so at once, as the timeout ends it. The
-- groups are ordered by size (largest first), then by their smallest id;
-- lim groups from number off + 1 (paging). One row per member, by id:
-- group_no, group_size, groups (how many in all) and images (in all the
-- groups) on every row; a thumbnail for each group's first 6 members, NULL
-- for the others (api.thumbs sends them when a group is expanded).
CREATE OR REPLACE FUNCTION api.duplicates(max_distance float8 DEFAULT NULL, lim int DEFAULT 50, off int DEFAULT 0)
RETURNS TABLE (group_no int, group_size int, groups int, images int, id bigint, name text, grp text, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	idx regclass;
BEGIN
	IF max_distance IS NULL THEN
		RAISE EXCEPTION 'max_distance is missing' USING ERRCODE = '22004',
			HINT = 'Send the largest distance between two images of a group: {"max_distance": 0.03}.';
	END IF;
	IF lim IS NULL OR off IS NULL THEN
		RAISE EXCEPTION 'lim and off must not be null' USING ERRCODE = '22004';
	END IF;
	IF NOT (max_distance BETWEEN 0 AND 0.5) THEN    -- NaN too: it sorts above every number
		RAISE EXCEPTION 'max_distance must be from 0 to 0.5, not %', max_distance USING ERRCODE = '22023';
	END IF;
	IF lim NOT BETWEEN 1 AND 200 OR off < 0 THEN
		RAISE EXCEPTION 'lim must be from 1 to 200 and off at least 0' USING ERRCODE = '22023';
	END IF;
	IF EXISTS (SELECT FROM gallery.shard_leaves()) THEN
		RAISE EXCEPTION 'duplicate groups are not available on a coordinator' USING ERRCODE = '0A000',
			HINT = 'Run imgsearch_duplicates on each shard (docs/sharding.md).';
	END IF;
	SELECT format('gallery.%I', m.index_name)::regclass INTO idx
	  FROM gallery.feat_methods m WHERE m.method = 'kdtree';
	IF idx IS NULL THEN
		RAISE EXCEPTION 'duplicate groups need a kdtree index on gallery.images' USING ERRCODE = '0A000',
			HINT = 'CREATE INDEX ON gallery.images USING kdtree (feat); over another index each row costs a pass over the whole table.';
	END IF;
	RETURN QUERY
	WITH m AS (
		SELECT d.group_id, i.id, i.name, i.grp, i.thumb
		  FROM imgsearch_duplicates(idx, max_distance) d
		  JOIN gallery.images i ON i.ctid = d.row_tid
	), g AS (
		SELECT m.group_id, count(*) AS n, min(m.id) AS first FROM m GROUP BY m.group_id
	), r AS (
		SELECT g.group_id, g.n, row_number() OVER (ORDER BY g.n DESC, g.first) AS no,
		       count(*) OVER () AS total, sum(g.n) OVER () AS imgs
		  FROM g
	), page AS (
		SELECT r.no, r.n, r.total, r.imgs, m.id, m.name, m.grp, m.thumb,
		       row_number() OVER (PARTITION BY r.no ORDER BY m.id) AS pos
		  FROM m JOIN r ON r.group_id = m.group_id
		 WHERE r.no > off AND r.no <= off::bigint + lim
	)
	SELECT p.no::int, p.n::int, p.total::int, p.imgs::int, p.id, p.name, p.grp,
	       CASE WHEN p.pos <= 6 THEN encode(p.thumb, 'base64') END
	  FROM page p
	 ORDER BY p.no, p.id;
EXCEPTION
	WHEN query_canceled THEN                -- the statement timeout
		RAISE EXCEPTION 'Finding the duplicate groups took too long for this collection.'
			USING ERRCODE = 'PT503', DETAIL = SQLERRM,
			HINT = 'Try a smaller distance, or run imgsearch_duplicates in SQL without a timeout.';
END
$$;

-- Every api function: owned by imgsearch_api, executed by imgsearch_writer;
-- by web_anon too, but for those that write (and image_status, which only
-- their callers need): HTTP stays read-only unless writing is granted
-- (GRANT imgsearch_writer TO web_anon, or a JWT for imgsearch_writer).
DO $$
DECLARE
	f regprocedure;
	writes boolean;
BEGIN
	FOR f, writes IN SELECT p.oid, p.proname IN ('add_image', 'image_status')
	                   FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace LOOP
		EXECUTE format('ALTER FUNCTION %s OWNER TO imgsearch_api', f);
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO imgsearch_writer', f);
		IF writes THEN
			EXECUTE format('REVOKE ALL ON FUNCTION %s FROM web_anon', f);
		ELSE
			EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO web_anon', f);
		END IF;
	END LOOP;
END
$$;
