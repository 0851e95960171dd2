-- ---------------------------------------------------------------------------
-- imgsearch_index_check: verifies an index of an imgsearch method against its
-- table (like amcheck's bt_index_check with heapallindexed): page and store
-- invariants, every row in the index exactly once with its vector equal to
-- the bit, every entry leading to a row. Raises XX002 (index_corrupted) at
-- the first problem; otherwise returns what it counted. Only the table's
-- owner or a superuser may run it (it holds off VACUUM while it runs).
-- ---------------------------------------------------------------------------

CREATE FUNCTION imgsearch_index_check(index regclass,
	OUT method text,        -- the index's access method
	OUT pages bigint,       -- pages of the index
	OUT entries bigint,     -- live entries (slots) in the index
	OUT free_slots bigint,  -- slots freed by VACUUM, for inserts to reuse
	OUT heap_rows bigint,   -- rows the check's snapshot sees, each found in the index
	OUT dead_entries bigint) -- entries of rows it does not see (dead, not yet vacuumed; or newer)
	RETURNS record
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION imgsearch_index_check(regclass) IS
	'verifies an imgsearch index against its table; raises XX002 at the first problem';
