
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
