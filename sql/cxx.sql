-- ---------------------------------------------------------------------------
-- C/C++ boundary self-test: throws each kind of C++ exception on demand, to
-- show it surfaces as a clean SQL error (superuser only).
-- ---------------------------------------------------------------------------

CREATE FUNCTION imgsearch_cxx_selftest(kind text) RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION imgsearch_cxx_live_objects() RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT;
REVOKE ALL ON FUNCTION imgsearch_cxx_selftest(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION imgsearch_cxx_live_objects() FROM PUBLIC;
