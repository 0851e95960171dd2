
-- The budget of method in force, as statements that set it (NULL for
-- faissflat, which has none). lsh's includes lsh.error_bound (0.4): with
-- the same probes and candidates, another error bound gives another recall.
-- CREATE OR REPLACE: this part is in the install script and in the 0.3 -> 0.4
-- upgrade.
CREATE OR REPLACE FUNCTION imgsearch_recall_setting(method name) RETURNS text
	LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE method
		WHEN 'kdtree' THEN format('SET kdtree.max_leaves = %s', current_setting('kdtree.max_leaves'))
		WHEN 'lsh' THEN format('SET lsh.probes = %s; SET lsh.candidates = %s; SET lsh.error_bound = %s',
		                       current_setting('lsh.probes'), current_setting('lsh.candidates'),
		                       current_setting('lsh.error_bound'))
	END
$$;
COMMENT ON FUNCTION imgsearch_recall_setting(name) IS 'internal to imgsearch_recall and imgsearch_tune';
