-- The model workers (imgsearch.model_workers, with imgsearch in
-- shared_preload_libraries): one row per worker. Not for PUBLIC: it shows
-- the model's path and the workers' memory.
CREATE FUNCTION imgsearch_model_workers(
	OUT worker integer, OUT pid integer, OUT state text, OUT served bigint, OUT failed bigint,
	OUT dropped bigint, OUT queued_interactive integer, OUT queued_background integer,
	OUT model text, OUT load_seconds double precision, OUT rss_mb double precision)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'imgsearch_model_workers'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;
REVOKE ALL ON FUNCTION imgsearch_model_workers() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION imgsearch_model_workers() TO pg_monitor;

COMMENT ON FUNCTION imgsearch_model_workers() IS
	'the model workers: per worker its process, idle or busy, requests answered, failed and dropped (caller gone), the queues, its model and resident memory';
