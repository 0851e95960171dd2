
-- ---------------------------------------------------------------------------
-- Sharded search (0.3: a filter). The same text is in the install script and
-- in the 0.2 -> 0.3 upgrade script, which replaces 0.2's functions.
-- ---------------------------------------------------------------------------
DO $$
BEGIN
	-- 0.2's, without the filter (an install has none: no "does not exist" notices)
	IF to_regprocedure('imgsearch_sharded_search(regclass, imgfeat, integer, text, text, name, name)') IS NOT NULL THEN
		DROP FUNCTION imgsearch_sharded_search(regclass, imgfeat, integer, text, text, name, name);
		DROP FUNCTION imgsearch_sharded_query(regclass, text, text, name, name);
	END IF;
END
$$;

-- The query imgsearch_sharded_search runs ($1: the query vector, $2: k),
-- for EXPLAIN: PREPARE s(imgfeat, int) AS <this>; EXPLAIN VERBOSE EXECUTE s(q, k).
-- Each leaf partition is queried on its own with ORDER BY and LIMIT k (and
-- the filter, if any), which postgres_fdw sends to the shard, in one Append, which runs the foreign
-- scans of async_capable servers concurrently; the N * k rows are merged
-- here. (A partitioned table's own plan, Merge Append, keeps LIMIT on the
-- coordinator and reads the shards one after another.) Under a method other
-- than auto, a foreign leaf P is read through P_method (imgsearch_shard_methods).
CREATE FUNCTION imgsearch_sharded_query(parent regclass, op text DEFAULT '<->',
	method text DEFAULT NULL, id_column name DEFAULT 'id', feat_column name DEFAULT 'feat',
	filter text DEFAULT NULL)
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
	IF filter IS NOT NULL AND btrim(filter) = '' THEN
		RAISE EXCEPTION 'filter must be a boolean expression, not empty' USING ERRCODE = '22023';
	END IF;
	SELECT string_agg(format('(SELECT %1$I::bigint AS id, (%2$I OPERATOR(@extschema@.%3$s) $1)::float8 AS distance'
	                         ' FROM %4$s WHERE %2$I IS NOT NULL%5$s ORDER BY %2$I OPERATOR(@extschema@.%3$s) $1 LIMIT $2)',
	                         id_column, feat_column, op, l.rel::text, ' AND (' || filter || ')'),
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

COMMENT ON FUNCTION imgsearch_sharded_query(regclass, text, text, name, name, text) IS
	'the query imgsearch_sharded_search runs ($1 = q, $2 = k), for EXPLAIN';

-- The k rows of parent nearest to q by op (<->, <=> or <#>), with their
-- distances, under method (default: imgsearch.method), by
-- imgsearch_sharded_query. The distances are the operator's values, computed
-- as on one node (from the k vectors each shard returns). filter: a boolean
-- SQL expression over parent's columns (e.g. 'category = 3'), applied on
-- every shard before its LIMIT, so a filtered search returns what one node
-- holding every row returns for WHERE filter ORDER BY ... LIMIT k. It is run
-- as written, with the caller's privileges, under search_path pg_catalog
-- (schema-qualify your own functions); postgres_fdw sends it, and with it
-- LIMIT, to the shards where it is shippable (built-in operators and
-- functions, or those of an extension named in the server's extensions).
CREATE FUNCTION imgsearch_sharded_search(parent regclass, q imgfeat, k integer,
	op text DEFAULT '<->', method text DEFAULT NULL,
	id_column name DEFAULT 'id', feat_column name DEFAULT 'feat', filter text DEFAULT NULL)
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
	RETURN QUERY EXECUTE @extschema@.imgsearch_sharded_query(parent, op, method, id_column, feat_column, filter)
		USING q, k;
END
$$;

COMMENT ON FUNCTION imgsearch_sharded_search(regclass, imgfeat, integer, text, text, name, name, text) IS
	'the k rows of parent nearest to q (that pass filter): ORDER BY, filter and LIMIT sent to every partition, shards queried concurrently, merged by distance';
