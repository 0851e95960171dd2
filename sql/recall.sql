-- ---------------------------------------------------------------------------
-- imgsearch_recall and imgsearch_tune: recall@k of an imgsearch index against
-- the exact answer (a sequential scan and sort, imgsearch.method = 'argsort')
-- on a sample of the indexed table's own rows, with both latencies; and the
-- smallest budget of the index's method that meets a target recall.
-- The imgsearch_recall_* functions are their shared parts (not an API).
-- Every GUC they change is restored when they return (function SET clauses).
-- ---------------------------------------------------------------------------

-- Validates the index and the arguments, builds the query both runs execute
-- and draws the sample: up to `queries` random non-NULL vectors of the table
-- (random(): setseed() repeats a sample). The query takes $1 the query
-- vector, $2 k and $3 a distance, and returns how many of its k rows lie no
-- farther than $3 (the exact k-th distance; NULL for the exact run itself),
-- how many rows it returned and the farthest one's distance: the operator's
-- own values in both runs, so ties count and no epsilon is needed.
CREATE FUNCTION imgsearch_recall_prepare(index regclass, queries int, k int,
	OUT method name, OUT index_name name, OUT query text, OUT sample imgfeat[], OUT table_rows bigint)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, @extschema@, pg_temp
AS $$
DECLARE
	ix record;
	col name;
	op text;
	tbl text;
BEGIN
	IF index IS NULL OR queries IS NULL OR k IS NULL THEN
		RAISE EXCEPTION 'index, queries and k must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF queries NOT BETWEEN 1 AND 10000 THEN
		RAISE EXCEPTION 'queries must be between 1 and 10000, not %', queries USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF k NOT BETWEEN 1 AND 10000 THEN
		RAISE EXCEPTION 'k must be between 1 and 10000, not %', k USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT c.relkind, c.relname, am.amname, x.indrelid, x.indnatts, x.indkey[0] AS attnum,
	       x.indclass[0] AS opclass, x.indpred IS NOT NULL AS partial, x.indisvalid AND x.indisready AS valid
	  INTO ix
	  FROM pg_class c
	  LEFT JOIN pg_am am ON am.oid = c.relam
	  LEFT JOIN pg_index x ON x.indexrelid = c.oid
	 WHERE c.oid = index;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'relation with OID % does not exist', index::oid USING ERRCODE = 'undefined_table';
	END IF;
	IF ix.relkind = 'I' THEN
		RAISE EXCEPTION '"%" is a partitioned index', index USING ERRCODE = 'feature_not_supported',
			HINT = 'Measure the index of one partition.';
	END IF;
	IF ix.relkind <> 'i' THEN
		RAISE EXCEPTION '"%" is not an index', index USING ERRCODE = 'wrong_object_type';
	END IF;
	IF ix.amname NOT IN ('faissflat', 'kdtree', 'lsh') THEN
		RAISE EXCEPTION '"%" is a % index, not an imgsearch index', index, ix.amname USING ERRCODE = 'wrong_object_type',
			HINT = 'imgsearch_recall and imgsearch_tune measure faissflat, kdtree and lsh indexes.';
	END IF;
	IF ix.indnatts <> 1 THEN
		RAISE EXCEPTION '"%" has % columns; only an index on one column can be measured', index, ix.indnatts
			USING ERRCODE = 'feature_not_supported';
	END IF;
	IF ix.attnum = 0 THEN
		RAISE EXCEPTION '"%" is an expression index; only an index on a column can be measured', index
			USING ERRCODE = 'feature_not_supported';
	END IF;
	IF ix.partial THEN
		RAISE EXCEPTION '"%" is a partial index; only an index of every row can be measured', index
			USING ERRCODE = 'feature_not_supported';
	END IF;
	IF NOT ix.valid THEN
		RAISE EXCEPTION 'index "%" is not valid', index USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'REINDEX it (a failed CREATE INDEX CONCURRENTLY leaves an invalid index).';
	END IF;

	-- The opclass's ORDER BY operator (one per imgsearch opfamily; its
	-- strategy number names the metric), schema-qualified.
	SELECT format('OPERATOR(%I.%s)', n.nspname, o.oprname) INTO op
	  FROM pg_opclass oc
	  JOIN pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amoppurpose = 'o'
	  JOIN pg_operator o ON o.oid = ao.amopopr
	  JOIN pg_namespace n ON n.oid = o.oprnamespace
	 WHERE oc.oid = ix.opclass
	 ORDER BY ao.amopstrategy
	 LIMIT 1;
	IF op IS NULL THEN
		RAISE EXCEPTION 'the operator class of "%" has no ORDER BY operator', index USING ERRCODE = 'feature_not_supported';
	END IF;
	SELECT a.attname INTO col FROM pg_attribute a WHERE a.attrelid = ix.indrelid AND a.attnum = ix.attnum;
	tbl := ix.indrelid::regclass::text;

	method := ix.amname;
	index_name := ix.relname;
	query := format('SELECT (count(*) FILTER (WHERE s.d <= $3))::int, count(*)::int, max(s.d) '
	                'FROM (SELECT %1$I %2$s $1 AS d FROM %3$s WHERE %1$I IS NOT NULL ORDER BY %1$I %2$s $1 LIMIT $2) s',
	                col, op, tbl);

	EXECUTE format('SELECT array_agg(s.v) FROM (SELECT %1$I AS v FROM %2$s WHERE %1$I IS NOT NULL ORDER BY random() LIMIT $1) s',
	               col, tbl)
		INTO sample USING queries;
	IF sample IS NULL THEN
		RAISE EXCEPTION 'table % has no row with a non-NULL %, nothing to sample', tbl, quote_ident(col)
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	EXECUTE format('SELECT count(%I) FROM %s', col, tbl) INTO table_rows;
END
$$;

-- Runs the prepared query for every sample vector under imgsearch.method =
-- method ('argsort': the exact answer), timing each with clock_timestamp().
-- First checks with EXPLAIN that the plan is what is measured: an index scan
-- using index_name, or (argsort) not it. kth: the exact k-th distances.
CREATE FUNCTION imgsearch_recall_run(query text, method name, index_name name, sample imgfeat[],
	k int, kth float8[],
	OUT hits int[], OUT returned int[], OUT farthest float8[], OUT median_ms float8, OUT p95_ms float8)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, @extschema@, pg_temp
	SET imgsearch.method = 'auto'
	SET enable_seqscan = on
	SET jit = off               -- time the search, not the compilation of its plan
AS $$
DECLARE
	plan jsonb;
	used jsonb;
	ms float8[];
	t0 timestamptz;
	i int;
	h int;
	n int;
	d float8;
BEGIN
	PERFORM set_config('imgsearch.method', method, true);
	-- imgsearch.method = a method rules out the other index methods only; on
	-- a small table the planner may still prefer a sequential scan.
	IF method <> 'argsort' THEN
		PERFORM set_config('enable_seqscan', 'off', true);
	END IF;

	EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan USING sample[1], k, NULL::float8;
	used := jsonb_path_query_first(plan, '$.** ? (@."Index Name" == $n)', jsonb_build_object('n', index_name));
	IF method <> 'argsort' AND (used IS NULL OR used->>'Node Type' <> 'Index Scan') THEN
		RAISE EXCEPTION 'the planner does not use index "%" under imgsearch.method = %', index_name, method
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = format('It uses %s.', coalesce('index ' || quote_ident(jsonb_path_query_first(plan, '$.**."Index Name"')->>0),
			                                      'no index')),
			HINT = 'Another index of the same method on the same column may be preferred: drop it while measuring this one.';
	ELSIF method = 'argsort' AND used IS NOT NULL THEN
		RAISE EXCEPTION 'the exact answer would use index "%"', index_name USING ERRCODE = 'internal_error';
	END IF;

	FOR i IN 1 .. cardinality(sample) LOOP
		t0 := clock_timestamp();
		EXECUTE query INTO h, n, d USING sample[i], k, kth[i];
		ms[i] := extract(epoch FROM clock_timestamp() - t0) * 1000;
		hits[i] := h;
		returned[i] := n;
		farthest[i] := d;
	END LOOP;
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.95) WITHIN GROUP (ORDER BY x)
	  INTO median_ms, p95_ms
	  FROM unnest(ms) x;
END
$$;

COMMENT ON FUNCTION imgsearch_recall_prepare(regclass, int, int) IS 'internal to imgsearch_recall and imgsearch_tune';
COMMENT ON FUNCTION imgsearch_recall_run(text, name, name, imgfeat[], int, float8[]) IS 'internal to imgsearch_recall and imgsearch_tune';

-- recall@k of the index under the settings in force (kdtree.max_leaves,
-- lsh.probes, lsh.candidates), over `queries` rows of its table taken as
-- queries: the share of the exact k nearest (ties at the k-th distance
-- count) the index returns; and the median and 95th percentile latency of
-- the index's and the exact search (ms, database time).
CREATE FUNCTION imgsearch_recall(index regclass, queries int DEFAULT 100, k int DEFAULT 30)
	RETURNS TABLE (method name, setting text, sample_size int, recall float8,
	               index_median_ms float8, index_p95_ms float8, exact_median_ms float8, exact_p95_ms float8)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, @extschema@, pg_temp
AS $$
DECLARE
	p record;
	exact record;
	got record;
BEGIN
	p := imgsearch_recall_prepare(index, queries, k);
	exact := imgsearch_recall_run(p.query, 'argsort', p.index_name, p.sample, k, NULL);
	got := imgsearch_recall_run(p.query, p.method, p.index_name, p.sample, k, exact.farthest);
	RETURN QUERY SELECT p.method, imgsearch_recall_setting(p.method), cardinality(p.sample),
		(SELECT sum(h)::float8 FROM unnest(got.hits) h) / (SELECT sum(r) FROM unnest(exact.returned) r),
		got.median_ms, got.p95_ms, exact.median_ms, exact.p95_ms;
END
$$;

COMMENT ON FUNCTION imgsearch_recall(regclass, int, int) IS
	'recall@k and latency of an imgsearch index against the exact answer, on a sample of its table''s rows';

-- The smallest budget of the index's method whose recall@k meets
-- target_recall on one sample (exact answers computed once): kdtree.max_leaves
-- 1, 2, 4, ... (then 0, exact), lsh.probes and lsh.candidates from (1, 100)
-- up (then 0 and 0), the last step refined by bisection (lsh: the candidates
-- at the probes found). faissflat is exact: no budget, setting NULL.
CREATE FUNCTION imgsearch_tune(index regclass, target_recall float8 DEFAULT 0.95,
	queries int DEFAULT 100, k int DEFAULT 30)
	RETURNS TABLE (setting text, recall float8,
	               index_median_ms float8, index_p95_ms float8, exact_median_ms float8, exact_p95_ms float8)
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, @extschema@, pg_temp
	-- restored on return: the steps below set them
	SET kdtree.max_leaves = 0
	SET lsh.probes = 64
	SET lsh.candidates = 1500
AS $$
DECLARE
	p record;
	exact record;
	got record;                 -- the run of the best setting found so far
	trial record;
	rec float8;
	want float8;
	guc text;                   -- the GUC bisection refines
	step int := 1;
	lo int;                     -- a value below target (0: none known)
	hi int;                     -- a value meeting it
	mid int;
BEGIN
	IF target_recall IS NULL THEN
		RAISE EXCEPTION 'target_recall must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF NOT (target_recall > 0 AND target_recall <= 1) THEN
		RAISE EXCEPTION 'target_recall must be in (0, 1], not %', target_recall USING ERRCODE = 'invalid_parameter_value';
	END IF;
	p := imgsearch_recall_prepare(index, queries, k);
	exact := imgsearch_recall_run(p.query, 'argsort', p.index_name, p.sample, k, NULL);
	want := (SELECT sum(r) FROM unnest(exact.returned) r);

	-- The ladder: each step doubles the budget until one meets the target;
	-- past the table's size no budget limits anything, so exact comes next.
	LOOP
		IF p.method = 'faissflat' THEN
			guc := NULL;
		ELSIF p.method = 'kdtree' THEN
			guc := 'kdtree.max_leaves';
			PERFORM set_config(guc, CASE WHEN step < p.table_rows THEN step ELSE 0 END::text, true);
		ELSE
			guc := 'lsh.candidates';
			PERFORM set_config('lsh.probes', CASE WHEN step < p.table_rows AND step <= 65536 THEN step ELSE 0 END::text, true);
			PERFORM set_config(guc, CASE WHEN current_setting('lsh.probes') = '0' THEN 0
			                             WHEN step <= 64 THEN (ARRAY[100, 150, 300, 500, 750, 1000, 1500])[log(2, step)::int + 1]
			                             ELSE 1500::bigint * step / 64 END::text, true);
		END IF;
		got := imgsearch_recall_run(p.query, p.method, p.index_name, p.sample, k, exact.farthest);
		rec := (SELECT sum(h) FROM unnest(got.hits) h) / want;
		EXIT WHEN rec >= target_recall OR guc IS NULL OR current_setting(guc) = '0';
		step := step * 2;
	END LOOP;

	-- Bisection of guc between the last value below target and the one found
	-- (to a twentieth of it): the smallest that still meets the target.
	IF guc IS NOT NULL AND current_setting(guc) <> '0' THEN
		hi := current_setting(guc)::int;
		-- lsh: a round returns the nearest quarter of its candidates, so
		-- fewer than 4k take more rounds (wider, slower): not a saving.
		lo := CASE WHEN guc = 'kdtree.max_leaves' THEN hi / 2 ELSE least(hi, 4 * k - 1) END;
		WHILE hi - lo > greatest(1, hi / 20) LOOP
			mid := (lo + hi) / 2;
			PERFORM set_config(guc, mid::text, true);
			trial := imgsearch_recall_run(p.query, p.method, p.index_name, p.sample, k, exact.farthest);
			IF (SELECT sum(h) FROM unnest(trial.hits) h) / want >= target_recall THEN
				hi := mid;
				got := trial;
				rec := (SELECT sum(h) FROM unnest(trial.hits) h) / want;
			ELSE
				lo := mid;
			END IF;
		END LOOP;
		PERFORM set_config(guc, hi::text, true);
	END IF;

	RETURN QUERY SELECT imgsearch_recall_setting(p.method), rec,
		got.median_ms, got.p95_ms, exact.median_ms, exact.p95_ms;
END
$$;

COMMENT ON FUNCTION imgsearch_tune(regclass, float8, int, int) IS
	'the smallest budget (a SET to run) at which an imgsearch index meets target_recall@k on a sample of its table''s rows';
