-- Data of the demo and of the API tests: outside the api schema, so that
-- nothing here is reachable over HTTP. Safe to run again.
CREATE EXTENSION IF NOT EXISTS imgsearch;
CREATE SCHEMA IF NOT EXISTS gallery;

CREATE TABLE IF NOT EXISTS gallery.images (
	id     bigint PRIMARY KEY,          -- position in the dataset manifest
	name   text NOT NULL UNIQUE,        -- file name in the dataset
	grp    text NOT NULL,               -- source photograph: the ground-truth group
	width  int NOT NULL,
	height int NOT NULL,
	img    bytea NOT NULL,              -- the encoded image as stored in the dataset
	thumb  bytea NOT NULL,              -- small JPEG for result grids
	feat   imgfeat                      -- NULL until the loader extracted it
);

-- Ids of images added over HTTP (api.add_image). The loader's ids are
-- positions in its manifest: the sequence starts past them here, and
-- add_image moves it past any id it finds taken.
CREATE SEQUENCE IF NOT EXISTS gallery.images_id_seq AS bigint MINVALUE 0;
DO $$ BEGIN
	PERFORM setval('gallery.images_id_seq', greatest(
		(SELECT coalesce(max(id), -1) + 1 FROM gallery.images),
		(SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM gallery.images_id_seq)), false);
END $$;

-- The server's ingest workers fill gallery.images.feat as rows come, where
-- there are some (imgsearch 0.2, preloaded: its launcher runs): the table
-- is registered. On a coordinator, whose gallery.images is partitioned
-- over shards' tables, nothing here: each shard registers its own.
DO $$
DECLARE
	registered boolean;
BEGIN
	IF to_regproc('imgsearch_ingest_start') IS NULL
	   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'imgsearch ingest launcher')
	   OR (SELECT relkind FROM pg_class WHERE oid = 'gallery.images'::regclass) <> 'r'
	   OR NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = 'gallery.images'::regclass), 'USAGE') THEN
		RETURN;
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT 1 FROM imgsearch_ingest WHERE relid = $1)'
		INTO registered USING 'gallery.images'::regclass;
	IF NOT registered THEN
		PERFORM imgsearch_ingest_start('gallery.images', image => 'img', feature => 'feat');
	END IF;
END
$$;

-- Paris6k-style queries: a crop of a view, with the box of the object.
CREATE TABLE IF NOT EXISTS gallery.queries (
	name text PRIMARY KEY,
	grp  text NOT NULL,
	img  bytea NOT NULL,
	box  int[] NOT NULL                 -- x, y, width, height in img's pixels
);

-- What the loader needs to remember (e.g. which model made the features).
CREATE TABLE IF NOT EXISTS gallery.settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);

-- The search methods this database's gallery.images has indexes for (with
-- argsort, a sequential scan, always): the access method of each valid index
-- on its imgfeat column whose operator class serves ORDER BY <-> (what
-- api.search asks for). None is named here: faissflat, kdtree and lsh alike,
-- as soon as such an index exists; an index for <=> or <#> only is none.
-- api.methods() reads it here, and on a coordinator from every shard (their
-- indexes are theirs). to_regclass: no dependency on the table, which a
-- coordinator replaces by a partitioned one.
CREATE OR REPLACE VIEW gallery.feat_methods (method, index_name) AS
	SELECT 'argsort', NULL::text
	UNION ALL
	(SELECT am.amname::text, min(ic.relname)::text
	   FROM pg_index x
	   JOIN pg_class ic ON ic.oid = x.indexrelid
	   JOIN pg_am am ON am.oid = ic.relam
	   JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
	   JOIN pg_opclass oc ON oc.oid = x.indclass[0]
	  WHERE x.indrelid = to_regclass('gallery.images')
	    AND x.indisvalid AND x.indisready
	    AND a.atttypid = 'imgfeat'::regtype
	    AND EXISTS (SELECT 1 FROM pg_amop o
	                 WHERE o.amopfamily = oc.opcfamily AND o.amoppurpose = 'o'
	                   AND o.amopopr = '<->(imgfeat, imgfeat)'::regoperator)
	  GROUP BY am.amname
	  ORDER BY am.amname);

-- Uploaded query images, kept for a bounded time so that a link (the page's
-- URL) can name one by its hash: api.search keeps what it searched,
-- api.search_upload and api.similar's upload examples read it back. Bounded
-- by age, count and bytes (gallery.keep_upload prunes; a row past its age
-- is gone for the readers even before it is pruned). feat: the whole
-- image's feature, once a search without a box made it (no re-extraction
-- for it later).
CREATE TABLE IF NOT EXISTS gallery.uploads (
	sha256  bytea PRIMARY KEY,          -- sha256 of img
	img     bytea NOT NULL,             -- the bytes the search got (after base64)
	feat    imgfeat,
	kept_at timestamptz NOT NULL        -- the last search that sent it
);
CREATE INDEX IF NOT EXISTS uploads_kept_at ON gallery.uploads (kept_at);
