
-- ---------------------------------------------------------------------------
-- Ingest on shards (docs/sharding.md#loading): on a coordinator whose
-- partitioned table's leaves are postgres_fdw foreign tables, each shard
-- registers its own table (imgsearch_ingest_start there) and its ingest
-- workers fill its own rows; the coordinator extracts nothing. This is the
-- coordinator's view of that load: the shards' imgsearch_ingest_status rows
-- of the leaves' remote tables, added up.
-- Only catalogs and dynamic SQL here, as in shards.sql: the extension needs
-- no postgres_fdw.
-- ---------------------------------------------------------------------------

-- For each foreign leaf partition P of parent (on server S): foreign table
-- P_ingest_status in P's schema, on S, reading the shard's
-- imgsearch_ingest_status view (in the schema of this node's imgsearch), made
-- here when missing (or on another server: remade). All the leaves' are read
-- in one query, an Append of foreign scans (concurrent where the servers are
-- async_capable); each leaf's remote table's row (schema_name and table_name
-- of P, postgres_fdw's defaults: P's own names) is picked from its shard's
-- rows. pending, done, failed, images_per_second and stale are the sums
-- (stale NULL when a shard's is: its model unknown); eta is
-- recomputed from them; last_error is the latest of the shards' (by
-- last_error_at), preceded by its server's name. relid: parent.
-- A leaf whose remote table is not registered on its shard (or not visible to
-- the user mapping's role: row-level security) is an error (55000): its rows
-- would not be filled.
CREATE FUNCTION imgsearch_sharded_ingest_status(parent regclass,
	OUT relid regclass, OUT pending bigint, OUT done bigint, OUT failed bigint,
	OUT images_per_second double precision, OUT eta interval, OUT last_error text,
	OUT last_error_at timestamptz, OUT stale bigint)
RETURNS record
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	l record;
	r record;
	parts text := '';
	ft regclass;
	ft_server oid;
	ft_table text;
	seen integer[] := '{}';
	want text[] := '{}';
	servers text[] := '{}';
	missing text;
BEGIN
	IF parent IS NULL THEN
		RAISE EXCEPTION 'parent must not be null' USING ERRCODE = '22004';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = parent) IS DISTINCT FROM 'p' THEN
		RAISE EXCEPTION '"%" is not a partitioned table', parent USING ERRCODE = '42809',
			HINT = 'On a coordinator, name the table partitioned over the shards'' foreign tables.';
	END IF;
	FOR l IN
		SELECT t.relid AS leaf, c.relkind, n.nspname, c.relname, s.oid AS srvid, s.srvname,
		       h.proname AS handler, coalesce(f.ftoptions, '{}') AS ftoptions
		  FROM pg_partition_tree(parent) t
		  JOIN pg_class c ON c.oid = t.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  LEFT JOIN pg_foreign_table f ON f.ftrelid = c.oid
		  LEFT JOIN pg_foreign_server s ON s.oid = f.ftserver
		  LEFT JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
		  LEFT JOIN pg_proc h ON h.oid = w.fdwhandler
		 WHERE t.isleaf
		 ORDER BY c.relname
	LOOP
		IF l.relkind <> 'f' OR l.handler IS DISTINCT FROM 'postgres_fdw_handler' THEN
			RAISE EXCEPTION 'partition % of % is not a postgres_fdw foreign table', l.leaf, parent
				USING ERRCODE = '42809',
				HINT = 'Each shard''s own imgsearch_ingest_status has the status of a table on one server.';
		END IF;
		-- the leaf's remote table as the shard's regclass prints it (postgres_fdw's
		-- sessions run with search_path = pg_catalog: always schema-qualified)
		want := want || format('%I.%I',
			coalesce((SELECT substr(o, 13) FROM unnest(l.ftoptions) o WHERE o LIKE 'schema\_name=%'), l.nspname),
			coalesce((SELECT substr(o, 12) FROM unnest(l.ftoptions) o WHERE o LIKE 'table\_name=%'), l.relname));
		servers := servers || l.srvname::text;
		ft := to_regclass(format('%I.%I', l.nspname, l.relname || '_ingest_status'));
		IF ft IS NOT NULL THEN
			SELECT f.ftserver, (SELECT substr(o, 12) FROM unnest(f.ftoptions) o WHERE o LIKE 'table\_name=%')
			  INTO ft_server, ft_table
			  FROM pg_foreign_table f WHERE f.ftrelid = ft;
			IF ft_table IS DISTINCT FROM 'imgsearch_ingest_status' THEN
				RAISE EXCEPTION '% exists and is not a foreign table of imgsearch_ingest_status', ft
					USING ERRCODE = '42P07';
			END IF;
			IF ft_server <> l.srvid THEN
				EXECUTE format('DROP FOREIGN TABLE %s', ft);
				ft := NULL;
			END IF;
		END IF;
		IF ft IS NULL THEN
			EXECUTE format('CREATE FOREIGN TABLE %I.%I (relid text, pending bigint, done bigint, failed bigint, '
			               'images_per_second double precision, eta interval, last_error text, last_error_at timestamptz, '
			               'stale bigint) '
			               'SERVER %I OPTIONS (schema_name %L, table_name %L)',
			               l.nspname, l.relname || '_ingest_status', l.srvname,
			               '@extschema@', 'imgsearch_ingest_status');
			ft := format('%I.%I', l.nspname, l.relname || '_ingest_status')::regclass;
		END IF;
		-- no WHERE: the shard's view computes every registered table's row anyway,
		-- and a condition on relid (text here, regclass there) is not the shard's to compare
		parts := parts || CASE WHEN parts = '' THEN '' ELSE ' UNION ALL ' END
			|| format('SELECT %s AS i, %L::text AS server, s.* FROM %s s', cardinality(want), l.srvname, ft);
	END LOOP;
	IF parts = '' THEN
		RAISE EXCEPTION '% has no partitions', parent USING ERRCODE = '42P01';
	END IF;
	relid := parent;
	pending := 0;
	done := 0;
	failed := 0;
	images_per_second := 0;
	stale := 0;
	FOR r IN EXECUTE parts LOOP
		IF r.relid = want[r.i] AND NOT r.i = ANY (seen) THEN
			seen := seen || r.i;
			pending := pending + r.pending;
			done := done + r.done;
			failed := failed + r.failed;
			images_per_second := images_per_second + r.images_per_second;
			stale := stale + r.stale;
			IF r.last_error IS NOT NULL AND (last_error_at IS NULL OR r.last_error_at > last_error_at) THEN
				last_error := r.server || ': ' || r.last_error;
				last_error_at := r.last_error_at;
			END IF;
		END IF;
	END LOOP;
	SELECT string_agg(format('%s on server %s', want[i], servers[i]), ', ' ORDER BY i)
	  INTO missing
	  FROM generate_series(1, cardinality(want)) i
	 WHERE NOT i = ANY (seen);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'not registered for ingest on its shard: %', missing USING ERRCODE = '55000',
			HINT = 'Call imgsearch_ingest_start on each shard, as the role of the server''s user mapping.';
	END IF;
	eta := CASE WHEN pending + coalesce(stale, 0) = 0 THEN interval '0' WHEN images_per_second > 0
				THEN make_interval(secs => (pending + coalesce(stale, 0)) / images_per_second) END;
	RETURN;
END $$;

COMMENT ON FUNCTION imgsearch_sharded_ingest_status(regclass) IS
	'ingest progress of a coordinator''s table: its shards'' imgsearch_ingest_status rows, added up';
