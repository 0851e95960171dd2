-- imgsearch_image_info and imgsearch_thumbnail: sizes against PIL's
-- (test/model/fixtures.py writes sizes.tsv), thumbnails' sizes against the
-- rule computed here, bad images with vgg16_features's SQLSTATEs, limits,
-- the side's range, labels.
\getenv data IMGSEARCH_TEST_DATA
\set images :data/images/
\set bad :data/bad/
\set bombs :data/bombs/
\set thumbs :data/thumbs/
\set sizes :data/sizes.tsv
CREATE FUNCTION pg_temp.err(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE FUNCTION pg_temp.state(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE TEMP TABLE img AS
SELECT name, pg_read_binary_file(:'images' || name) AS b FROM pg_ls_dir(:'images') name;
CREATE TEMP TABLE pil AS
SELECT f[1] AS name, upper(f[2]) AS format, f[3]::int AS width, f[4]::int AS height
FROM regexp_split_to_table(rtrim(pg_read_file(:'sizes'), E'\n'), E'\n') l, string_to_array(l, E'\t') f;
-- every good image: format and upright size as PIL reads them
SELECT count(*) AS images,
       count(*) FILTER (WHERE upper(i.format) = p.format AND i.width = p.width AND i.height = p.height) AS as_pil
FROM img JOIN pil p USING (name), imgsearch_image_info(b) i;
SELECT name, (imgsearch_image_info(b)).*, p.format AS pil_format, p.width AS pil_width, p.height AS pil_height
FROM img JOIN pil p USING (name) ORDER BY name;
-- thumbnails of every image: JPEG, the longer side min(256, its own), the
-- other in proportion (rounded), upright
SELECT count(*) AS thumbnails,
       count(*) FILTER (WHERE t.format = 'JPEG' AND t.width = e.w AND t.height = e.h) AS sized_as_expected
FROM img JOIN pil p USING (name),
     LATERAL (SELECT CASE WHEN greatest(p.width, p.height) <= 256 THEN p.width
                          ELSE round(p.width * 256.0 / greatest(p.width, p.height))::int END AS w,
                     CASE WHEN greatest(p.width, p.height) <= 256 THEN p.height
                          ELSE round(p.height * 256.0 / greatest(p.width, p.height))::int END AS h) e,
     imgsearch_image_info(imgsearch_thumbnail(b)) t;
-- a 1000x500 image, and the same stored 500x1000 with EXIF orientation 6
CREATE TEMP TABLE wide AS
SELECT name, pg_read_binary_file(:'thumbs' || name) AS b FROM pg_ls_dir(:'thumbs') name;
SELECT name, (imgsearch_image_info(b)).* FROM wide ORDER BY name;
SELECT name, (imgsearch_image_info(imgsearch_thumbnail(b))).*,
       (SELECT row(t.*)::text FROM imgsearch_image_info(imgsearch_thumbnail(b, 100)) t) AS thumb_100,
       (SELECT row(t.*)::text FROM imgsearch_image_info(imgsearch_thumbnail(b, 2048)) t) AS thumb_2048,
       (SELECT row(t.*)::text FROM imgsearch_image_info(imgsearch_thumbnail(b, 16)) t) AS thumb_16
FROM wide ORDER BY name;
-- the rotated one's thumbnail is upright: the same picture as the other's
SELECT vgg16_features(imgsearch_thumbnail(a.b)) <-> vgg16_features(imgsearch_thumbnail(r.b)) < 0.03 AS same_picture,
       vgg16_features(imgsearch_thumbnail(a.b)) <-> vgg16_features(imgsearch_thumbnail(r.b, 100)) > 0.0 AS smaller_differs
FROM wide a, wide r WHERE a.name = 'wide.png' AND r.name = 'wide6.jpg';
-- never enlarged; deterministic
SELECT (imgsearch_image_info(imgsearch_thumbnail(b, 2048))).* FROM img WHERE name = 'small.png';
SELECT imgsearch_thumbnail(b) = imgsearch_thumbnail(b) AS deterministic FROM img WHERE name = 'rgb.jpg';
-- side out of range; NULLs
SELECT pg_temp.err($$SELECT imgsearch_thumbnail(b, 15) FROM img WHERE name = 'small.png'$$);
SELECT pg_temp.err($$SELECT imgsearch_thumbnail(b, 2049) FROM img WHERE name = 'small.png'$$);
SELECT pg_temp.err($$SELECT imgsearch_thumbnail('\x00'::bytea, -1)$$);
SELECT imgsearch_thumbnail(NULL) IS NULL AS null_image, imgsearch_thumbnail('\x00'::bytea, NULL) IS NULL AS null_side,
       (imgsearch_image_info(NULL)).format IS NULL AS null_info;
-- bad images: errors, with the SQLSTATE vgg16_features raises for them (the
-- directory also holds broken models, .pt, and their sidecars, .json)
CREATE TEMP TABLE bad AS
SELECT name, pg_read_binary_file(:'bad' || name) AS b FROM pg_ls_dir(:'bad') name WHERE name NOT LIKE '%.pt' AND name NOT LIKE '%.json'
UNION ALL SELECT 'empty', ''::bytea;
SELECT name, pg_temp.err(format('SELECT imgsearch_image_info(%L::bytea)', b)) AS info,
       pg_temp.err(format('SELECT imgsearch_thumbnail(%L::bytea)', b)) AS thumbnail
FROM bad ORDER BY name;
SELECT count(*) AS bad_images,
       count(*) FILTER (WHERE pg_temp.state(format('SELECT imgsearch_thumbnail(%L::bytea)', b))
                            = pg_temp.state(format('SELECT vgg16_features(%L::bytea)', b))) AS thumbnail_as_vgg16,
       count(*) FILTER (WHERE pg_temp.state(format('SELECT imgsearch_image_info(%L::bytea)', b))
                            IN (pg_temp.state(format('SELECT vgg16_features(%L::bytea)', b)), 'no error')) AS info_as_vgg16
FROM bad;
-- decode bombs: refused as by vgg16_features (54000 before decoding; jpeg_base.jpg
-- and tiff_pages.tif are within the limits). png_elongated.png (1x900000) is
-- left out here: only the model's resize refuses it (too elongated), a
-- thumbnail of it costs what its pixels cost.
CREATE TEMP TABLE bombs AS
SELECT name, pg_read_binary_file(:'bombs' || name) AS b FROM pg_ls_dir(:'bombs') name
WHERE name <> 'png_elongated.png';
SELECT pg_temp.state(format('SELECT imgsearch_thumbnail(%L::bytea, 16)', pg_read_binary_file(:'bombs' || 'png_elongated.png'))) AS elongated_thumbnail,
       pg_temp.state(format('SELECT vgg16_features(%L::bytea)', pg_read_binary_file(:'bombs' || 'png_elongated.png'))) AS elongated_vgg16;
SELECT count(*) AS bombs,
       count(*) FILTER (WHERE pg_temp.state(format('SELECT imgsearch_thumbnail(%L::bytea)', b))
                            = pg_temp.state(format('SELECT vgg16_features(%L::bytea)', b))) AS thumbnail_as_vgg16
FROM bombs;
SELECT name, pg_temp.state(format('SELECT imgsearch_thumbnail(%L::bytea)', b)) AS thumbnail
FROM bombs ORDER BY name;
-- imgsearch.max_pixels bounds thumbnails (small.png is 120x90), not image_info
SET imgsearch.max_pixels = 10000;
SELECT pg_temp.err($$SELECT imgsearch_thumbnail(b) FROM img WHERE name = 'small.png'$$);
SELECT (imgsearch_image_info(b)).* FROM img WHERE name = 'small.png';
RESET imgsearch.max_pixels;
-- labels
SELECT p.oid::regprocedure, p.provolatile, p.proisstrict, p.proparallel
FROM pg_proc p WHERE p.proname IN ('imgsearch_image_info', 'imgsearch_thumbnail') ORDER BY p.proname;
