
-- ---------------------------------------------------------------------------
-- Ingest (docs/ingest.md): features as a property of a table. A registered
-- table's missing features are filled by the ingest worker of its database
-- (src/model/ingest_worker.c), in batches of one transaction each, through
-- the model workers at background priority.
-- ---------------------------------------------------------------------------

-- One row per registered table. Row-level security: a role sees and
-- changes the registrations of the tables it owns (or is a member of the
-- owner of); the ingest worker, a superuser, sees them all.
CREATE TABLE imgsearch_ingest (
	relid regclass PRIMARY KEY,
	image_column name NOT NULL,
	feature_column name NOT NULL,
	key_column name NOT NULL,
	box_column name,
	model_column name,			-- text: each feature's model (sha256), NULL if not recorded
	batch_size integer NOT NULL DEFAULT 4 CHECK (batch_size BETWEEN 1 AND 1000),
	registered_at timestamptz NOT NULL DEFAULT now()
);
-- Rows whose image could not be turned into a feature: their SQLSTATE and
-- message. They are not tried again until the image changes.
CREATE TABLE imgsearch_ingest_errors (
	relid regclass NOT NULL REFERENCES imgsearch_ingest ON DELETE CASCADE,
	key text NOT NULL,
	sqlstate text NOT NULL,
	message text NOT NULL,
	failed_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (relid, key)
);
-- Features written per batch, for the rate (rows older than an hour go).
CREATE TABLE imgsearch_ingest_log (
	relid regclass NOT NULL REFERENCES imgsearch_ingest ON DELETE CASCADE,
	done_at timestamptz NOT NULL DEFAULT now(),
	images integer NOT NULL,
	pid integer DEFAULT pg_backend_pid()	-- the worker (or session) that did them
);
CREATE INDEX ON imgsearch_ingest_log (relid, done_at);
SELECT pg_catalog.pg_extension_config_dump('imgsearch_ingest', '');
SELECT pg_catalog.pg_extension_config_dump('imgsearch_ingest_errors', '');

CREATE FUNCTION imgsearch_ingest_owns(rel regclass) RETURNS boolean
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$ SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = rel $$;

ALTER TABLE imgsearch_ingest ENABLE ROW LEVEL SECURITY;
ALTER TABLE imgsearch_ingest_errors ENABLE ROW LEVEL SECURITY;
ALTER TABLE imgsearch_ingest_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner ON imgsearch_ingest USING (imgsearch_ingest_owns(relid));
CREATE POLICY owner ON imgsearch_ingest_errors USING (imgsearch_ingest_owns(relid));
CREATE POLICY owner ON imgsearch_ingest_log USING (imgsearch_ingest_owns(relid));
GRANT SELECT, INSERT, UPDATE, DELETE ON imgsearch_ingest, imgsearch_ingest_errors, imgsearch_ingest_log TO PUBLIC;

-- The sha256 (hex) of the model file imgsearch.model names, as
-- imgsearch_model_info() reports it, without loading the model or asking a
-- model worker (a stat per call; the file is hashed again only when it is
-- another file). What the ingest records in a registration's model column,
-- and what a search compares that column with (docs/ingest.md).
CREATE FUNCTION imgsearch_model_sha256() RETURNS text
	AS 'MODULE_PATHNAME', 'imgsearch_model_sha256'
	LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION imgsearch_model_sha256() IS
	'sha256 of the model file imgsearch.model names (the sha256 of imgsearch_model_info(), without loading the model)';

-- The image (or box) column changed: the feature is stale (NULL until the
-- worker computes it again), so is its model, and an earlier failure is
-- forgotten. TG_ARGV: feature column, key column[, model column]. The key
-- is spelled key::text, as imgsearch_ingest_batch names rows (to_jsonb
-- spells some types otherwise: a timestamp's T).
CREATE FUNCTION imgsearch_ingest_image_changed() RETURNS trigger
	LANGUAGE plpgsql
	SET search_path = pg_catalog, pg_temp
	AS $$
DECLARE
	k text;
BEGIN
	NEW := jsonb_populate_record(NEW, CASE WHEN TG_NARGS > 2
		THEN jsonb_build_object(TG_ARGV[0], NULL, TG_ARGV[2], NULL) ELSE jsonb_build_object(TG_ARGV[0], NULL) END);
	EXECUTE format('SELECT ($1).%I::text', TG_ARGV[1]) INTO k USING NEW;
	DELETE FROM @extschema@.imgsearch_ingest_errors
	 WHERE relid = TG_RELID::regclass AND key = k;
	RETURN NEW;
END $$;

-- Registers tbl: from now on its rows whose feature is NULL get
-- vgg16_features(image[, box]) by the ingest worker. key: a unique column
-- (the primary key by default) that names rows in imgsearch_ingest_errors.
-- model: a text column that gets the sha256 of the model of each feature;
-- rows whose model is not the current one are then computed again.
CREATE FUNCTION imgsearch_ingest_start(tbl regclass, image name, feature name,
	box name DEFAULT NULL, key name DEFAULT NULL, batch_size integer DEFAULT 4,
	model name DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k name := key;
	col_type text;
BEGIN
	IF NOT @extschema@.imgsearch_ingest_owns(tbl) THEN
		RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501';
	END IF;
	IF (SELECT relkind FROM pg_class WHERE oid = tbl) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', tbl USING ERRCODE = '42809';
	END IF;
	-- a coordinator's table: the shards extract (each its own rows), never the coordinator
	IF EXISTS (SELECT 1 FROM pg_partition_tree(tbl) t JOIN pg_class c ON c.oid = t.relid WHERE c.relkind = 'f') THEN
		RAISE EXCEPTION '"%" has foreign partitions', tbl USING ERRCODE = '42809',
			HINT = 'Register the table on each shard; imgsearch_sharded_ingest_status adds up their progress here.';
	END IF;
	SELECT format_type(atttypid, NULL) INTO col_type FROM pg_attribute
	 WHERE attrelid = tbl AND attname = image AND attnum > 0 AND NOT attisdropped;
	IF col_type IS DISTINCT FROM 'bytea' THEN
		RAISE EXCEPTION 'image column "%" of % must be bytea (it is %)', image, tbl, coalesce(col_type, 'missing')
			USING ERRCODE = '42804';
	END IF;
	SELECT format_type(atttypid, NULL) INTO col_type FROM pg_attribute
	 WHERE attrelid = tbl AND attname = feature AND attnum > 0 AND NOT attisdropped;
	IF col_type IS DISTINCT FROM format_type('@extschema@.imgfeat'::regtype, NULL) THEN
		RAISE EXCEPTION 'feature column "%" of % must be imgfeat (it is %)', feature, tbl, coalesce(col_type, 'missing')
			USING ERRCODE = '42804';
	END IF;
	IF box IS NOT NULL THEN
		SELECT format_type(atttypid, NULL) INTO col_type FROM pg_attribute
		 WHERE attrelid = tbl AND attname = box AND attnum > 0 AND NOT attisdropped;
		IF col_type IS DISTINCT FROM 'integer[]' THEN
			RAISE EXCEPTION 'box column "%" of % must be integer[] (it is %)', box, tbl, coalesce(col_type, 'missing')
				USING ERRCODE = '42804';
		END IF;
	END IF;
	IF model IS NOT NULL THEN
		SELECT format_type(atttypid, NULL) INTO col_type FROM pg_attribute
		 WHERE attrelid = tbl AND attname = model AND attnum > 0 AND NOT attisdropped;
		IF col_type IS NULL THEN
			RAISE EXCEPTION 'model column "%" of % does not exist', model, tbl USING ERRCODE = '42703';
		ELSIF col_type <> 'text' THEN
			RAISE EXCEPTION 'model column "%" of % must be text (it is %)', model, tbl, col_type
				USING ERRCODE = '42804';
		END IF;
	END IF;
	IF k IS NULL THEN
		SELECT a.attname INTO k FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		 WHERE i.indrelid = tbl AND i.indisprimary AND i.indnkeyatts = 1;
		IF k IS NULL THEN
			RAISE EXCEPTION '% has no one-column primary key', tbl USING ERRCODE = '42P10',
				HINT = 'Name a unique column: imgsearch_ingest_start(..., key => ''id'').';
		END IF;
	END IF;
	IF model IN (image, feature, k, box) THEN
		RAISE EXCEPTION 'model column "%" of % is also its image, feature, key or box column', model, tbl
			USING ERRCODE = '22023';
	END IF;
	INSERT INTO @extschema@.imgsearch_ingest (relid, image_column, feature_column, key_column, box_column, model_column, batch_size)
	VALUES (tbl, image, feature, k, box, model, batch_size)
	ON CONFLICT (relid) DO UPDATE SET image_column = EXCLUDED.image_column, feature_column = EXCLUDED.feature_column,
		key_column = EXCLUDED.key_column, box_column = EXCLUDED.box_column, model_column = EXCLUDED.model_column,
		batch_size = EXCLUDED.batch_size;
	EXECUTE format('DROP TRIGGER IF EXISTS imgsearch_ingest_image_changed ON %s', tbl);
	-- UPDATE OF both columns: an UPDATE of the box alone makes the feature stale too
	EXECUTE format('CREATE TRIGGER imgsearch_ingest_image_changed BEFORE UPDATE OF %1$I%6$s ON %2$s FOR EACH ROW '
				   'WHEN (OLD.%1$I IS DISTINCT FROM NEW.%1$I%3$s) '
				   'EXECUTE FUNCTION @extschema@.imgsearch_ingest_image_changed(%4$L, %5$L%7$s)',
				   image, tbl, CASE WHEN box IS NULL THEN '' ELSE format(' OR OLD.%1$I IS DISTINCT FROM NEW.%1$I', box) END,
				   feature, k, CASE WHEN box IS NULL THEN '' ELSE format(', %I', box) END,
				   CASE WHEN model IS NULL THEN '' ELSE format(', %L', model) END);
	PERFORM @extschema@.imgsearch_ingest_wake();
END $$;

CREATE FUNCTION imgsearch_ingest_stop(tbl regclass) RETURNS boolean
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT @extschema@.imgsearch_ingest_owns(tbl) THEN
		RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501';
	END IF;
	EXECUTE format('DROP TRIGGER IF EXISTS imgsearch_ingest_image_changed ON %s', tbl);
	DELETE FROM @extschema@.imgsearch_ingest WHERE relid = tbl;
	RETURN FOUND;
END $$;

-- One batch of tbl, as its owner (the ingest worker runs it, and so may
-- anyone who owns the table): up to n rows that need a feature and have not
-- failed, locked with SKIP LOCKED (several workers or sessions may share a
-- table), each given its feature or its error. The rows: first those whose
-- feature is NULL, then, where the registration has a model column, those
-- whose feature came from another model than the current one (stale: the old
-- feature stays until the new one replaces it), each kind in key order.
-- Returns each row's key, with the SQLSTATE and message where it failed.
-- Errors that are not the row's (the model unset or missing, a worker gone,
-- a cancel, out of memory) end the batch instead: the rows stay pending.
-- With a model column, the model's sha256 is read once before the rows (the
-- stale rows are those whose model differs from it, and it is what they
-- get) and once after them: a model file replaced meanwhile ends the batch
-- (55000), which is then done again.
CREATE FUNCTION imgsearch_ingest_batch(tbl regclass, n integer,
	OUT key text, OUT error_state text, OUT error_message text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reg @extschema@.imgsearch_ingest;
	r record;
	sha text;					-- the current model's sha256, with a model column
	todo integer := greatest(n, 1);
	kinds integer := 1;			-- 1: feature NULL; 2: stale
BEGIN
	SELECT * INTO reg FROM @extschema@.imgsearch_ingest i WHERE i.relid = tbl;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	-- once per batch. imgsearch.model unset: nothing is stale (nothing can be
	-- computed; rows whose feature is NULL raise 55000 below, as without a model column)
	IF reg.model_column IS NOT NULL AND coalesce(current_setting('imgsearch.model', true), '') <> '' THEN
		sha := @extschema@.imgsearch_model_sha256();
		kinds := 2;
	END IF;
	FOR kind IN 1..kinds LOOP
		EXIT WHEN todo = 0;
		FOR r IN EXECUTE format(
			'SELECT x.tableoid AS rel, x.ctid AS row_id, x.%1$I::text AS k, x.%2$I AS img, %3$s AS box FROM %4$s x '
			'WHERE %5$s AND NOT EXISTS (SELECT 1 FROM @extschema@.imgsearch_ingest_errors e '
			'WHERE e.relid = %6$L::regclass AND e.key = x.%1$I::text) '
			'ORDER BY x.%1$I LIMIT %7$s FOR UPDATE OF x SKIP LOCKED',
			reg.key_column, reg.image_column,
			CASE WHEN reg.box_column IS NULL THEN 'NULL::integer[]' ELSE format('x.%I', reg.box_column) END,
			tbl,
			CASE kind WHEN 1 THEN format('x.%I IS NULL', reg.feature_column)
				ELSE format('x.%I IS NOT NULL AND x.%I IS DISTINCT FROM $1', reg.feature_column, reg.model_column) END,
			tbl::oid, todo)
			USING sha
		LOOP
			todo := todo - 1;
			key := r.k;
			error_state := NULL;
			error_message := NULL;
			BEGIN
				IF r.img IS NULL THEN
					RAISE EXCEPTION 'image is NULL' USING ERRCODE = '22004';
				END IF;
				-- tableoid too: in a partitioned table a ctid names a row of each partition
				EXECUTE format('UPDATE %s SET %I = CASE WHEN $2 IS NULL THEN @extschema@.vgg16_features($1) '
							   'ELSE @extschema@.vgg16_features($1, $2) END%s WHERE tableoid = $5 AND ctid = $3',
							   tbl, reg.feature_column,
							   CASE WHEN reg.model_column IS NULL THEN '' ELSE format(', %I = $4', reg.model_column) END)
					USING r.img, r.box, r.row_id, sha, r.rel;
			EXCEPTION WHEN OTHERS THEN
				-- not the row's fault: the batch ends, its rows stay pending
				IF left(SQLSTATE, 2) IN ('08', '53', '55', '57', '58', 'XX') THEN
					RAISE;
				END IF;
				error_state := SQLSTATE;
				error_message := SQLERRM;
			END;
			RETURN NEXT;
		END LOOP;
	END LOOP;
	-- the features are of the model whose sha256 they got, unless its file changed meanwhile
	IF sha IS NOT NULL AND todo < greatest(n, 1) AND @extschema@.imgsearch_model_sha256() <> sha THEN
		RAISE EXCEPTION 'the model changed during the batch'
			USING ERRCODE = '55000',
				DETAIL = format('The model file %s had sha256 %s before the batch and %s after it.',
								current_setting('imgsearch.model'), sha, @extschema@.imgsearch_model_sha256()),
				HINT = 'The batch is rolled back; its rows are done again with the new model.';
	END IF;
END $$;

-- Wakes the ingest worker of this database (starting it if need be).
CREATE FUNCTION imgsearch_ingest_wake() RETURNS void
	AS 'MODULE_PATHNAME', 'imgsearch_ingest_wake'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Progress per registered table. pending: rows without a feature (not
-- failed); done: rows with one (stale ones included); last_error_at: when
-- last_error happened (imgsearch_sharded_ingest_status picks the latest of
-- the shards' by it); stale: rows with a feature whose model column is not
-- the current model's sha256 (0 without a model column, NULL where the model
-- is unset or unreadable); eta: for the pending and the stale rows. Columns
-- are only ever appended.
CREATE FUNCTION imgsearch_ingest_status(
	OUT relid regclass, OUT pending bigint, OUT done bigint, OUT failed bigint,
	OUT images_per_second double precision, OUT eta interval, OUT last_error text,
	OUT last_error_at timestamptz, OUT stale bigint)
RETURNS SETOF record
LANGUAGE plpgsql STABLE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	reg @extschema@.imgsearch_ingest;
	total bigint;
	sha text;
	sha_known boolean := false;
BEGIN
	FOR reg IN SELECT * FROM @extschema@.imgsearch_ingest ORDER BY 1 LOOP
		relid := reg.relid;
		IF reg.model_column IS NOT NULL AND NOT sha_known THEN
			-- once, for the tables that record their model
			sha_known := true;
			BEGIN
				sha := @extschema@.imgsearch_model_sha256();
			EXCEPTION WHEN OTHERS THEN
				sha := NULL;
			END;
		END IF;
		-- failed: rows without a feature that have an error (an error of a row
		-- since deleted, or given a feature by hand, does not count)
		EXECUTE format('SELECT count(*), count(x.%1$I), count(*) FILTER (WHERE x.%1$I IS NULL AND e.key IS NOT NULL), '
					   '(array_agg(e.sqlstate || '': '' || e.message ORDER BY e.failed_at DESC) '
					   'FILTER (WHERE x.%1$I IS NULL AND e.key IS NOT NULL))[1], '
					   'max(e.failed_at) FILTER (WHERE x.%1$I IS NULL AND e.key IS NOT NULL), %5$s '
					   'FROM %2$s x LEFT JOIN @extschema@.imgsearch_ingest_errors e '
					   'ON e.relid = %3$L::regclass AND e.key = x.%4$I::text',
					   reg.feature_column, reg.relid, reg.relid::oid, reg.key_column,
					   CASE WHEN reg.model_column IS NULL THEN '0::bigint'
						   ELSE format('CASE WHEN $1 IS NOT NULL THEN count(*) FILTER (WHERE x.%I IS NOT NULL '
									   'AND x.%I IS DISTINCT FROM $1) END', reg.feature_column, reg.model_column) END)
			INTO total, done, failed, last_error, last_error_at, stale
			USING sha;
		pending := total - done - failed;
		SELECT coalesce(sum(l.images), 0) / 60.0 INTO images_per_second
		  FROM @extschema@.imgsearch_ingest_log l
		 WHERE l.relid = reg.relid AND l.done_at > now() - interval '1 minute';
		eta := CASE WHEN pending + coalesce(stale, 0) = 0 THEN interval '0' WHEN images_per_second > 0
					THEN make_interval(secs => (pending + coalesce(stale, 0)) / images_per_second) END;
		RETURN NEXT;
	END LOOP;
END $$;
CREATE VIEW imgsearch_ingest_status AS SELECT * FROM imgsearch_ingest_status();
GRANT SELECT ON imgsearch_ingest_status TO PUBLIC;

-- Dropping a registered table, or its image, feature, key, box or model
-- column, unregisters it (a log line says so).
-- SECURITY DEFINER: the table is gone, so row-level security (which asks
-- pg_class who owns it) would hide its registration from its owner.
CREATE FUNCTION imgsearch_ingest_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o record;
	reg @extschema@.imgsearch_ingest;
BEGIN
	FOR o IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE object_type IN ('table', 'table column') LOOP
		FOR reg IN SELECT * FROM @extschema@.imgsearch_ingest i WHERE i.relid::oid = o.objid LOOP
			IF o.object_type = 'table' OR o.address_names[3] IN
				(reg.image_column, reg.feature_column, reg.key_column, reg.box_column, reg.model_column) THEN
				DELETE FROM @extschema@.imgsearch_ingest i WHERE i.relid::oid = o.objid;
				-- a column: the table stays, its trigger goes (unless a CASCADE took it)
				IF o.object_type = 'table column' AND EXISTS (SELECT 1 FROM pg_trigger t
					WHERE t.tgrelid = o.objid AND t.tgname = 'imgsearch_ingest_image_changed') THEN
					EXECUTE format('DROP TRIGGER imgsearch_ingest_image_changed ON %s', o.objid::regclass);
				END IF;
				RAISE LOG 'imgsearch: % dropped, its ingest registration removed', o.object_identity;
			END IF;
		END LOOP;
	END LOOP;
END $$;
CREATE EVENT TRIGGER imgsearch_ingest_dropped ON sql_drop EXECUTE FUNCTION imgsearch_ingest_dropped();
