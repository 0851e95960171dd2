-- vgg16_features: every supported format, box, batch = single, NULLs, bad
-- input, settings, privileges, once-per-scan evaluation, cancellation, and
-- torch staying out of backends that do not extract features.
-- imgsearch.model is the seeded random-weight pool model test/check.sh
-- exports; agreement with torchvision is tested in pgtap/vgg16_reference.
\getenv data IMGSEARCH_TEST_DATA
\set images :data/images/
\set bad :data/bad/
-- a fresh backend that uses imgsearch maps neither torch nor OpenCV
SELECT '[1,2]'::imgfeat <-> '[4,6]' AS imgfeat_works;
SELECT pg_read_file('/proc/self/maps') ~ 'libtorch|libopencv|imgsearch_model' AS torch_mapped;
CREATE TEMP TABLE img AS
SELECT name, pg_read_binary_file(:'images' || name) AS b FROM pg_ls_dir(:'images') name;
CREATE TEMP TABLE bad AS
SELECT name, pg_read_binary_file(:'bad' || name) AS b FROM pg_ls_dir(:'bad') name WHERE name NOT LIKE '%.pt';
-- every format decodes; unit length, computed here in SQL
CREATE TEMP TABLE single AS SELECT name, vgg16_features(b) AS f FROM img;
SELECT name, imgfeat_dims(f) AS dims,
       (SELECT round(sqrt(sum(x * x))::numeric, 5) FROM unnest(f::real[]) x) AS norm
FROM single ORDER BY name;
-- torch is mapped where the model runs: in this backend only without model
-- workers (test/check.sh runs one: imgsearch.model_workers)
SELECT (pg_read_file('/proc/self/maps') ~ 'libtorch_cpu' AND
        pg_read_file('/proc/self/maps') ~ 'imgsearch_model')
       = NOT EXISTS (SELECT 1 FROM imgsearch_model_workers()) AS torch_mapped_where_the_model_runs;
-- torch's threads block PostgreSQL's signals (SIGINT, SIGQUIT, SIGUSR1,
-- SIGALRM, SIGTERM: mask 0x6206): only the backend's own thread takes them
SELECT coalesce(bool_and((('x' || blocked)::bit(64) & x'0000000000006206') = x'0000000000006206'), true)
       AS other_threads_block_signals
FROM (SELECT substring(pg_read_file('/proc/self/task/' || t || '/status') FROM 'SigBlk:\s+(\S+)') AS blocked
      FROM pg_ls_dir('/proc/self/task') t WHERE t::int <> pg_backend_pid()) s;
-- the batched form gives the single-image features, in order
WITH batch AS (
	SELECT vgg16_features(array_agg(b ORDER BY name)) AS fs, array_agg(name ORDER BY name) AS names FROM img
)
SELECT count(*) AS images, max(s.f <-> u.f) < 1e-5 AS batch_equals_single
FROM batch, unnest(batch.names, batch.fs) AS u(name, f) JOIN single s USING (name);
-- NULLs stay NULL, the shape is kept, empty stays empty
SELECT array_dims(fs) AS dims, fs[2] IS NULL AS second_is_null, fs[1] <-> fs[3] < 1e-5 AS same
FROM (SELECT vgg16_features(ARRAY[b, NULL, b]) AS fs FROM img WHERE name = 'small.png') s;
SELECT array_dims(vgg16_features(ARRAY[[b, b], [b, b]])) FROM img WHERE name = 'small.png';
SELECT vgg16_features('{}'::bytea[]) AS empty, vgg16_features(NULL::bytea) IS NULL AS null_image,
       vgg16_features('\xff'::bytea, NULL) IS NULL AS null_box;
-- box = {x, y, width, height}, clipped to the image (rgb.jpg is 640x480)
SELECT vgg16_features(b, '{0,0,640,480}') <-> s.f < 1e-5 AS whole_box,
       vgg16_features(b, '{-10,-10,10000,10000}') <-> s.f < 1e-5 AS larger_box_clipped,
       vgg16_features(b, '{-50,-20,200,150}') <-> vgg16_features(b, '{0,0,150,130}') < 1e-5 AS partly_outside_clipped,
       vgg16_features(b, '{100,50,300,200}') <-> s.f > 0.01 AS crop_differs
FROM img JOIN single s USING (name) WHERE name = 'rgb.jpg';
-- EXIF orientation: rotated6.jpg is stored 400x300 and shown upright 300x400
SELECT vgg16_features(b, '{350,0,10,10}') FROM img WHERE name = 'rotated6.jpg';
-- bad images: each a clear error
SELECT vgg16_features(''::bytea);
SELECT vgg16_features(b) FROM bad WHERE name = 'text.txt';
SELECT vgg16_features(b) FROM bad WHERE name = 'truncated.jpg';
SELECT vgg16_features(b) FROM bad WHERE name = 'truncated500.jpg';
SELECT vgg16_features(b) FROM bad WHERE name = 'truncated.png';
SELECT vgg16_features(b) FROM bad WHERE name = 'truncated.webp';
SELECT vgg16_features(b) FROM bad WHERE name = 'huge.png';
SELECT vgg16_features(ARRAY[i.b, bad.b]) FROM img i, bad WHERE i.name = 'small.png' AND bad.name = 'text.txt';
-- the 30000x30000 PNG is refused from its header: fast, and without
-- raising the backend's peak memory (2.7 GB if it were decoded)
CREATE FUNCTION pg_temp.peak_kb() RETURNS bigint LANGUAGE sql
AS $$ SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s+(\d+)')::bigint $$;
DO $$
DECLARE
	t0 timestamptz := clock_timestamp();
	peak bigint := pg_temp.peak_kb();
BEGIN
	PERFORM vgg16_features(b) FROM bad WHERE name = 'huge.png';
EXCEPTION WHEN program_limit_exceeded THEN
	RAISE NOTICE 'refused in under 1 s: %, peak memory grew under 50 MB: %',
		clock_timestamp() - t0 < '1 s', pg_temp.peak_kb() - peak < 50000;
END $$;
SET imgsearch.max_pixels = 300000;
SELECT vgg16_features(b) FROM img WHERE name = 'rgb.jpg';
SELECT imgfeat_dims(vgg16_features(b)) FROM img WHERE name = 'small.png';
RESET imgsearch.max_pixels;
-- decoding memory, computed from the container before decoding (the bombs
-- are in t/020_decode_bombs): rgb.jpg, 640x480, needs about 6 MB
SET imgsearch.max_decode_memory = '1MB';
SELECT vgg16_features(b) FROM img WHERE name = 'rgb.jpg';
RESET imgsearch.max_decode_memory;
-- bad boxes
SELECT vgg16_features(b, '{0,0,0,10}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{0,0,10,-1}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{640,0,10,10}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{-20,-20,20,20}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{1,2,3}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{{1,2},{3,4}}') FROM img WHERE name = 'rgb.jpg';
SELECT vgg16_features(b, '{1,2,NULL,4}') FROM img WHERE name = 'rgb.jpg';
-- the session is still usable
SELECT vgg16_features(b) <-> f < 1e-5 AS still_works FROM img JOIN single USING (name) WHERE name = 'gray.png';
-- STABLE (depends on imgsearch.model), PARALLEL RESTRICTED (a worker would
-- load the model again); the extractors are STRICT
SELECT oid::regprocedure AS function, provolatile, proparallel, proisstrict FROM pg_proc
WHERE proname IN ('vgg16_features', 'imgsearch_model_info') ORDER BY oid::regprocedure::text;
-- settings
SELECT name, context, vartype, min_val, max_val FROM pg_settings
WHERE name IN ('imgsearch.model', 'imgsearch.threads', 'imgsearch.max_pixels', 'imgsearch.max_decode_memory')
ORDER BY name;
SELECT current_setting('imgsearch.max_pixels') AS max_pixels,
       current_setting('imgsearch.threads')::int >= 1 AS threads_set;
SET imgsearch.model = 'models/relative.pt';
SET imgsearch.threads = 1;
SELECT vgg16_features(b) <-> f < 1e-5 AS one_thread_same FROM img JOIN single USING (name) WHERE name = 'small.png';
RESET imgsearch.threads;
-- the model: what it is, and that random weights have no semantic quality
SELECT layer, dims, weights, length(sha256) AS sha256_chars, note,
       path = current_setting('imgsearch.model') AS path_is_setting, load_seconds > 0 AS loaded
FROM imgsearch_model_info();
-- the file is hashed once per load, not on every call (bytes this backend reads)
SELECT substring(pg_read_file('/proc/self/io') FROM 'rchar: (\d+)')::bigint AS read_before \gset
SELECT length(sha256) AS sha256_chars FROM imgsearch_model_info();
SELECT substring(pg_read_file('/proc/self/io') FROM 'rchar: (\d+)')::bigint - :read_before
       < (pg_stat_file(current_setting('imgsearch.model'))).size AS not_hashed_again;
-- a constant query image is embedded once per scan, not once per row; the
-- last call's result is kept, so the planner's estimates (which evaluate
-- STABLE functions of constants) and repeated queries do not rerun the model
CREATE TEMP TABLE feats AS SELECT name, f AS feat FROM single;
-- (the rankings printed below have no ties to order: from rgb.jpg and
-- small.png the first three distances, from exact.png the first two, lie
-- more than 1e-3 apart, far above the model's run-to-run differences)
SELECT q.name AS query, bool_and(g.gap > 1e-3) AS apart
FROM single q, LATERAL (SELECT lead(d) OVER (ORDER BY d) - d AS gap
                        FROM (SELECT f <-> q.f AS d FROM single ORDER BY d
                              LIMIT CASE q.name WHEN 'exact.png' THEN 2 ELSE 3 END) s) g
WHERE q.name IN ('rgb.jpg', 'small.png', 'exact.png') GROUP BY q.name ORDER BY q.name;
SELECT b AS q FROM img WHERE name = 'rgb.jpg' \gset
SELECT b AS q2 FROM img WHERE name = 'small.png' \gset
SELECT backend_images AS before FROM imgsearch_model_info() \gset
SELECT name FROM feats ORDER BY feat <-> vgg16_features(:'q'::bytea) LIMIT 2;
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
SELECT name FROM feats ORDER BY feat <-> vgg16_features(:'q'::bytea) LIMIT 2;
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
PREPARE nearest(bytea) AS SELECT name FROM feats ORDER BY feat <-> vgg16_features($1) LIMIT 2;
EXECUTE nearest(:'q2');
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
SELECT count(*) AS features FROM unnest(vgg16_features(ARRAY[:'q'::bytea, :'q2'::bytea]));
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
SELECT count(vgg16_features(b)) AS per_row FROM img WHERE name LIKE 'rotated%';
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
-- an index scan (faissflat) serves ORDER BY feat <-> vgg16_features(...)
-- and computes the query feature once
-- EXPLAIN's node lines, without the (long) ORDER BY expressions
CREATE FUNCTION pg_temp.node_lines(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		IF line !~ 'Order By:' THEN
			RETURN NEXT line;
		END IF;
	END LOOP;
END $$;
CREATE INDEX feats_ff ON feats USING faissflat (feat);
SET imgsearch.method = 'faissflat';
SET enable_seqscan = off;
SELECT b AS q3 FROM img WHERE name = 'exact.png' \gset
SELECT line FROM pg_temp.node_lines(format(
	'SELECT name FROM feats ORDER BY feat <-> vgg16_features(%L::bytea) LIMIT 1', :'q3')) line;
SELECT name FROM feats ORDER BY feat <-> vgg16_features(:'q3'::bytea) LIMIT 1;
SELECT backend_images - :before AS images_run FROM imgsearch_model_info();
RESET enable_seqscan;
RESET imgsearch.method;
-- statement_timeout stops a batch between images (one image per forward pass;
-- latency is measured in t/020_decode_bombs)
SELECT backend_images AS before FROM imgsearch_model_info() \gset
SET statement_timeout = '300ms';
SELECT vgg16_features(array_agg(b ORDER BY name DESC)) FROM img;
RESET statement_timeout;
SELECT backend_images - :before <= 4 AS stopped_early FROM imgsearch_model_info();
-- plpgsql keeps an expression's state for the transaction while its
-- variables change: each call still gets the feature of its own arguments
CREATE FUNCTION pg_temp.loop_features() RETURNS TABLE (name text, f imgfeat, boxed imgfeat)
LANGUAGE plpgsql AS $$
DECLARE
	r record;
	box int[];
BEGIN
	FOR r IN SELECT i.name, i.b FROM img i WHERE i.name IN ('gray.png', 'rgb.jpg', 'small.png') ORDER BY i.name LOOP
		name := r.name;
		f := vgg16_features(r.b);
		box := ARRAY[0, 0, 8, 8];
		boxed := vgg16_features(r.b, box);
		RETURN NEXT;
	END LOOP;
END $$;
SELECT l.name, l.f <-> s.f < 1e-5 AS own_feature,
       l.boxed <-> vgg16_features(i.b, '{0,0,8,8}') < 1e-5 AS own_box_feature
FROM pg_temp.loop_features() l JOIN single s USING (name) JOIN img i USING (name) ORDER BY l.name;
-- an ordinary user may extract features but not choose the model or raise
-- the pixel or memory limits; a value set before the module loads is dropped
CREATE ROLE regress_vgg16_user LOGIN;
GRANT SELECT ON img TO regress_vgg16_user;
SET ROLE regress_vgg16_user;
SET imgsearch.model = '/tmp/other.pt';
SET imgsearch.max_pixels = 100000000;
SET imgsearch.max_decode_memory = '1GB';
SET imgsearch.threads = 1;
SELECT imgfeat_dims(vgg16_features(b)) FROM img WHERE name = 'small.png';
RESET ROLE;
REVOKE SELECT ON img FROM regress_vgg16_user;
-- a fresh session: with imgsearch in shared_preload_libraries (test/check.sh)
-- the setting is known from the start and the SET is refused at once;
-- without, it is a placeholder refused when the library loads
\c - regress_vgg16_user
SET imgsearch.model = '/tmp/other.pt';
SELECT imgfeat_dims('[1]');
SELECT current_setting('imgsearch.model') = '/tmp/other.pt' AS placeholder_kept;
\c - postgres
DROP ROLE regress_vgg16_user;
