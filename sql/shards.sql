
-- Scale-out over postgres_fdw (docs/sharding.md): a coordinator's
-- partitioned table whose partitions are foreign tables on shard servers,
-- each a plain PostgreSQL with imgsearch.
-- Only catalogs and dynamic SQL here: the extension needs no postgres_fdw.

-- postgres_fdw ships no settings of the coordinator's session, so
-- imgsearch.method reaches a shard only through its connection's options. For
-- each foreign leaf partition P (server S) of parent and each method M, this
-- makes server S_M (S's options, plus options '-c imgsearch.method=M', and
-- enable_seqscan=off for index methods, as api.search does), S's user
-- mappings for it, and foreign table P_M in P's schema for the same remote
-- table. imgsearch_sharded_search uses P_M under method M. Run it again after
-- adding partitions or changing servers: it remakes them all.
CREATE FUNCTION imgsearch_shard_methods(parent regclass,
	methods text[] DEFAULT ARRAY['argsort', 'faissflat', 'kdtree', 'lsh'])
RETURNS SETOF regclass
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p record;
	um record;
	m text;
	srv text;
	cols text;
	srv_opts text;
	ft_opts text;
	method_opts text;
BEGIN
	FOREACH m IN ARRAY methods LOOP
		IF m IS NULL OR m NOT IN ('argsort', 'faissflat', 'kdtree', 'lsh') THEN
			RAISE EXCEPTION 'unknown method "%"', m USING ERRCODE = '22023',
				HINT = 'Use argsort, faissflat, kdtree or lsh.';
		END IF;
	END LOOP;
	FOR p IN
		SELECT c.oid::regclass AS part, n.nspname, c.relname, s.oid AS srvid, s.srvname,
		       w.fdwname, coalesce(s.srvoptions, '{}') AS srvoptions,
		       coalesce(ft.ftoptions, '{}') AS ftoptions
		  FROM pg_partition_tree(parent) t
		  JOIN pg_class c ON c.oid = t.relid
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		  JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
		  JOIN pg_foreign_server s ON s.oid = ft.ftserver
		  JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
		 WHERE t.isleaf
		 ORDER BY c.relname
	LOOP
		SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
		  INTO cols
		  FROM pg_attribute WHERE attrelid = p.part AND attnum > 0 AND NOT attisdropped;
		-- the remote table as the partition names it (postgres_fdw's defaults: its own names)
		SELECT string_agg(format('%I %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
		  INTO ft_opts
		  FROM unnest(p.ftoptions
		              || CASE WHEN NOT EXISTS (SELECT FROM unnest(p.ftoptions) o WHERE o LIKE 'schema\_name=%')
		                      THEN ARRAY['schema_name=' || p.nspname] ELSE '{}' END
		              || CASE WHEN NOT EXISTS (SELECT FROM unnest(p.ftoptions) o WHERE o LIKE 'table\_name=%')
		                      THEN ARRAY['table_name=' || p.relname] ELSE '{}' END) o;
		FOREACH m IN ARRAY methods LOOP
			srv := p.srvname || '_' || m;
			method_opts := '-c imgsearch.method=' || m
				|| CASE WHEN m <> 'argsort' THEN ' -c enable_seqscan=off' ELSE '' END;
			SELECT string_agg(format('%I %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
			  INTO srv_opts
			  FROM (SELECT o FROM unnest(p.srvoptions) o WHERE o NOT LIKE 'options=%'
			        UNION ALL
			        SELECT 'options=' || concat_ws(' ',
			               (SELECT substr(o, 9) FROM unnest(p.srvoptions) o WHERE o LIKE 'options=%'),
			               method_opts)) x;
			EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', srv);
			EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER %I OPTIONS (%s)', srv, p.fdwname, srv_opts);
			FOR um IN
				SELECT CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who,
				       (SELECT string_agg(format('%I %L', split_part(o, '=', 1), substr(o, strpos(o, '=') + 1)), ', ')
				          FROM unnest(u.umoptions) o) AS opts
				  FROM pg_user_mapping u LEFT JOIN pg_roles r ON r.oid = u.umuser
				 WHERE u.umserver = p.srvid
			LOOP
				EXECUTE format('CREATE USER MAPPING FOR %s SERVER %I', um.who, srv)
					|| CASE WHEN um.opts IS NULL THEN '' ELSE format(' OPTIONS (%s)', um.opts) END;
			END LOOP;
			EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (%s)',
				p.nspname, p.relname || '_' || m, cols, srv, ft_opts);
			RETURN NEXT format('%I.%I', p.nspname, p.relname || '_' || m)::regclass;
		END LOOP;
	END LOOP;
END
$$;

COMMENT ON FUNCTION imgsearch_shard_methods(regclass, text[]) IS
	'for each foreign partition P of parent and method M: a server and foreign table P_M whose sessions run under imgsearch.method = M';

-- The query imgsearch_sharded_search runs ($1: the query vector, $2: k),
-- for EXPLAIN: PREPARE s(imgfeat, int) AS <this>; EXPLAIN VERBOSE EXECUTE s(q, k).
-- Each leaf partition is queried on its own with ORDER BY and LIMIT k, which
-- postgres_fdw sends to the shard, in one Append, which runs the foreign
-- scans of async_capable servers concurrently; the N * k rows are merged
-- here. (A partitioned table's own plan, Merge Append, keeps LIMIT on the
-- coordinator and reads the shards one after another.) Under a method other
-- than auto, a foreign leaf P is read through P_method (imgsearch_shard_methods).
CREATE FUNCTION imgsearch_sharded_query(parent regclass, op text DEFAULT '<->',
	method text DEFAULT NULL, id_column name DEFAULT 'id', feat_column name DEFAULT 'feat')
RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	m text := coalesce(method, current_setting('imgsearch.method', true), 'auto');
	parts text;
	missing text;
BEGIN
	IF parent IS NULL OR op IS NULL OR id_column IS NULL OR feat_column IS NULL THEN
		RAISE EXCEPTION 'parent, op, id_column and feat_column must not be null' USING ERRCODE = '22004';
	END IF;
	IF op NOT IN ('<->', '<=>', '<#>') THEN
		RAISE EXCEPTION 'unknown operator "%"', op USING ERRCODE = '22023', HINT = 'Use <->, <=> or <#>.';
	END IF;
	IF m NOT IN ('auto', 'argsort', 'faissflat', 'kdtree', 'lsh') THEN
		RAISE EXCEPTION 'unknown method "%"', m USING ERRCODE = '22023',
			HINT = 'Use auto, argsort, faissflat, kdtree or lsh.';
	END IF;
	SELECT string_agg(format('(SELECT %1$I::bigint AS id, (%2$I OPERATOR(@extschema@.%3$s) $1)::float8 AS distance'
	                         ' FROM %4$s WHERE %2$I IS NOT NULL ORDER BY %2$I OPERATOR(@extschema@.%3$s) $1 LIMIT $2)',
	                         id_column, feat_column, op, l.rel::text),
	                  ' UNION ALL ' ORDER BY l.leaf::text),
	       string_agg(l.want, ', ' ORDER BY l.want) FILTER (WHERE l.rel IS NULL)
	  INTO parts, missing
	  FROM (SELECT t.relid AS leaf, w.want,
	               CASE WHEN w.want IS NULL THEN t.relid ELSE to_regclass(w.want) END AS rel
	          FROM pg_partition_tree(parent) t
	          JOIN pg_class c ON c.oid = t.relid
	          CROSS JOIN LATERAL (SELECT CASE WHEN m <> 'auto' AND c.relkind = 'f'
	                                          THEN format('%I.%I', c.relnamespace::regnamespace, c.relname || '_' || m)
	                                     END AS want) w
	         WHERE t.isleaf) l;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'no foreign table % for method %', missing, m USING ERRCODE = '42P01',
			HINT = format('SELECT imgsearch_shard_methods(%L) makes them.', parent::text);
	END IF;
	IF parts IS NULL THEN
		RAISE EXCEPTION '% has no partitions', parent USING ERRCODE = '42P01';
	END IF;
	-- A materialized CTE: its plan is the cheapest, an Append (asynchronous),
	-- not the Merge Append of the ordered branches that the outer ORDER BY
	-- would choose, which reads them one after another.
	RETURN format('WITH s AS MATERIALIZED (%s) SELECT id, distance FROM s ORDER BY distance, id LIMIT $2', parts);
END
$$;

COMMENT ON FUNCTION imgsearch_sharded_query(regclass, text, text, name, name) IS
	'the query imgsearch_sharded_search runs ($1 = q, $2 = k), for EXPLAIN';

-- The k rows of parent nearest to q by op (<->, <=> or <#>), with their
-- distances, under method (default: imgsearch.method), by
-- imgsearch_sharded_query. The distances are the operator's values, computed
-- as on one node (from the k vectors each shard returns).
CREATE FUNCTION imgsearch_sharded_search(parent regclass, q imgfeat, k integer,
	op text DEFAULT '<->', method text DEFAULT NULL,
	id_column name DEFAULT 'id', feat_column name DEFAULT 'feat')
RETURNS TABLE (id bigint, distance double precision)
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF q IS NULL OR k IS NULL THEN
		RAISE EXCEPTION 'q and k must not be null' USING ERRCODE = '22004';
	END IF;
	IF k < 1 THEN
		RAISE EXCEPTION 'k must be at least 1, not %', k USING ERRCODE = '22023';
	END IF;
	RETURN QUERY EXECUTE @extschema@.imgsearch_sharded_query(parent, op, method, id_column, feat_column) USING q, k;
END
$$;

COMMENT ON FUNCTION imgsearch_sharded_search(regclass, imgfeat, integer, text, text, name, name) IS
	'the k rows of parent nearest to q: ORDER BY and LIMIT sent to every partition, shards queried concurrently, merged by distance';
