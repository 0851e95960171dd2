
-- ---------------------------------------------------------------------------
-- Duplicate groups: connected components of the within-distance graph (0.3). The same text is in the install script and in the
-- 0.2 -> 0.3 upgrade script.
-- ---------------------------------------------------------------------------

-- The rows of the index's table in groups of near-duplicates: the connected
-- components of the graph joining two rows whose distance (the index's
-- metric: an L2 or cosine operator class) is at most max_distance, built
-- from one range search through the index per row. Only groups of two rows
-- or more are returned, one row per member; join back on ctid:
--   SELECT d.group_id, t.* FROM imgsearch_duplicates('photos_feat_idx', 0.1) d
--   JOIN photos t ON t.ctid = d.row_tid;
-- Needs SELECT on the table; NOTICEs report progress every few seconds.
CREATE FUNCTION imgsearch_duplicates(index regclass, max_distance double precision)
	RETURNS TABLE (group_id bigint, row_tid tid)
	AS 'MODULE_PATHNAME', 'imgsearch_duplicates' LANGUAGE C STRICT VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION imgsearch_duplicates(regclass, double precision) IS
	'groups of rows within max_distance of each other (connected components), by range searches through an imgsearch index';
