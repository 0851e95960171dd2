-- The HTTP API: functions in schema api, the only schema PostgREST exposes.
-- They run as imgsearch_api (SECURITY DEFINER, fixed search_path); web_anon
-- may execute them and reach nothing else. Needs roles.sql and schema.sql
-- first; safe to run again.
LOAD 'imgsearch';                       -- defines imgsearch.method for the SET clauses below

CREATE SCHEMA IF NOT EXISTS api;
REVOKE ALL ON SCHEMA api FROM PUBLIC;
GRANT USAGE ON SCHEMA api TO web_anon, imgsearch_api;

-- Only the owner role reaches the data and the extension's objects.
REVOKE ALL ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON SCHEMA gallery FROM PUBLIC;
GRANT USAGE ON SCHEMA public, gallery TO imgsearch_api;
GRANT SELECT ON ALL TABLES IN SCHEMA gallery TO imgsearch_api;
-- pg_catalog stays usable (json functions, operators); its sleeps do not.
REVOKE EXECUTE ON FUNCTION pg_sleep(float8), pg_sleep_for(interval),
	pg_sleep_until(timestamptz) FROM PUBLIC;
DO $$ BEGIN
	EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
END $$;

-- Methods usable here: argsort (sequential scan + sort) always, and the
-- access method of each valid index on gallery.images' imgfeat column whose
-- operator class serves ORDER BY <-> (what search() asks for). Methods come
-- from the catalog, none is named here: faissflat, kdtree and lsh alike, as
-- soon as such an index exists. An index for <=> or <#> only is none.
CREATE OR REPLACE FUNCTION api.methods()
RETURNS TABLE (method text, index_name text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT 'argsort', NULL::text
	UNION ALL
	(SELECT am.amname::text, min(ic.relname)::text
	   FROM pg_index x
	   JOIN pg_class ic ON ic.oid = x.indexrelid
	   JOIN pg_am am ON am.oid = ic.relam
	   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
	   JOIN pg_opclass oc ON oc.oid = x.indclass[0]
	  WHERE x.indrelid = 'gallery.images'::regclass
	    AND x.indisvalid AND x.indisready
	    AND a.atttypid = 'public.imgfeat'::regtype
	    AND EXISTS (SELECT 1 FROM pg_amop o
	                 WHERE o.amopfamily = oc.opcfamily AND o.amoppurpose = 'o'
	                   AND o.amopopr = 'public.<->(public.imgfeat, public.imgfeat)'::regoperator)
	  GROUP BY am.amname
	  ORDER BY am.amname)
$$;

-- The scan of gallery.images in the plan of query (parameters $1 = q, $2 =
-- k), as the page shows it: "faissflat index scan", "sequential scan".
-- VOLATILE: plpgsql allows EXPLAIN only there (api.search is STABLE). Not in
-- schema api: HTTP cannot call it.
CREATE OR REPLACE FUNCTION gallery.search_scan(query text, q imgfeat, k int)
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
ALTER FUNCTION gallery.search_scan(text, imgfeat, int) OWNER TO imgsearch_api;
REVOKE ALL ON FUNCTION gallery.search_scan(text, imgfeat, int) FROM PUBLIC;

-- The k images nearest to the query image (base64), optionally to the area
-- box = {x, y, width, height} of it, under imgsearch.method = method.
-- Errors a user can cause are 4xx (PostgREST's PTnnn SQLSTATEs set the HTTP
-- status): a bad argument 400, an image too large or with too many pixels
-- 413; a statement timeout under load is 503 "busy, try again".
-- What ran goes back in response headers (PostgREST's response.headers):
-- X-Search-Method, the scan the plan chose ("faissflat index scan",
-- "sequential scan"), and Server-Timing: model (the feature extraction)
-- and db (the query), in ms.
CREATE OR REPLACE FUNCTION api.search(image text, k int DEFAULT 30,
	method text DEFAULT 'auto', box int[] DEFAULT NULL)
RETURNS TABLE (rank int, id bigint, name text, grp text, distance float8,
	width int, height int, thumb text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET imgsearch.method = 'auto'           -- restored when the function returns
SET enable_seqscan = on                 -- likewise
AS $$
#variable_conflict use_column
DECLARE
	img bytea;
	q imgfeat;
	t0 timestamptz;
	t1 timestamptz;
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
BEGIN
	IF image IS NULL OR k IS NULL OR method IS NULL THEN
		RAISE EXCEPTION 'image, k and method must not be null' USING ERRCODE = '22004';
	END IF;
	IF k NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'k must be between 1 and 1000, not %', k USING ERRCODE = '22023';
	END IF;
	IF method <> 'auto' AND method NOT IN (SELECT m.method FROM api.methods() m) THEN
		RAISE EXCEPTION 'unknown method "%"', method USING ERRCODE = '22023',
			HINT = 'Use auto or one of: ' || (SELECT string_agg(m.method, ', ') FROM api.methods() m) || '.';
	END IF;
	IF box IS NOT NULL AND (array_length(box, 1) IS DISTINCT FROM 4 OR array_ndims(box) <> 1) THEN
		RAISE EXCEPTION 'box must be {x, y, width, height}' USING ERRCODE = '22023';
	END IF;
	BEGIN
		img := decode(image, 'base64');
	EXCEPTION WHEN invalid_parameter_value THEN
		RAISE EXCEPTION 'image is not valid base64' USING ERRCODE = '22023';
	END;
	IF length(img) > 8 * 1024 * 1024 THEN
		RAISE EXCEPTION 'The image is too large: % MB; the limit is 8 MB.', round(length(img) / 1048576.0, 1)
			USING ERRCODE = 'PT413', HINT = 'Use a smaller image (the model sees 224 x 224 pixels).';
	END IF;

	PERFORM set_config('imgsearch.method', method, true);
	-- imgsearch.method = an index method rules out the other index methods,
	-- not the sequential scan: on a small table the planner may still find
	-- scan + sort cheaper (on the 24-row test set at k = 24, for faissflat
	-- and kdtree alike). The page asked for that index (faissflat, kdtree,
	-- lsh: whichever methods() lists): use it.
	IF method NOT IN ('auto', 'argsort') THEN
		PERFORM set_config('enable_seqscan', 'off', true);
	END IF;

	BEGIN
		t0 := clock_timestamp();
		q := CASE WHEN box IS NULL THEN vgg16_features(img) ELSE vgg16_features(img, box) END;
		t1 := clock_timestamp();
		-- The plan the query below gets names the method that runs.
		ran := gallery.search_scan(query, q, k);
		-- EXECUTE plans the query on every call, under the method just set: a
		-- plan cached by plpgsql would keep the index choice of an earlier call.
		RETURN QUERY EXECUTE query USING q, k;
	EXCEPTION
		WHEN program_limit_exceeded THEN        -- imgsearch.max_pixels, decode limits
			RAISE EXCEPTION 'The image has too many pixels for the server.' USING ERRCODE = 'PT413',
				DETAIL = regexp_replace(SQLERRM, 'exceeds imgsearch\.max_pixels \((\d+)\)', 'is over the limit of \1 pixels'),
				HINT = 'Use a smaller image (the model sees 224 x 224 pixels).';
		WHEN query_canceled THEN                -- the statement timeout, under load
			RAISE EXCEPTION 'The server is busy: the search did not finish in time. Try again.'
				USING ERRCODE = 'PT503', DETAIL = SQLERRM;
	END;
	PERFORM set_config('response.headers', json_build_array(
		json_build_object('X-Search-Method', ran),
		json_build_object('Server-Timing', format('model;dur=%s, db;dur=%s',
			round(extract(epoch FROM t1 - t0) * 1000, 1),
			round(extract(epoch FROM clock_timestamp() - t1) * 1000, 1))))::text, true);
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

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN SELECT p.oid FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace LOOP
		EXECUTE format('ALTER FUNCTION %s OWNER TO imgsearch_api', f);
		EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
		EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO web_anon', f);
	END LOOP;
END
$$;
