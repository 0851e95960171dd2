-- vgg16_features agrees with torchvision's own pipeline (PIL decode, EXIF
-- transpose, crop, bilinear Resize, Normalize, the same model file run in
-- Python; test/model/fixtures.py wrote the features), for both layers; the
-- model file errors; imgsearch_model_info's sha256 (and imgsearch_model_sha256()) against Python's hashlib.
\getenv data IMGSEARCH_TEST_DATA
\set images :data/images/
\set reference :data/reference.tsv
\set models :data/models.tsv
\set pool :data/vgg16_pool.pt
\set fc7 :data/vgg16_fc7.pt
\set missing :data/no_such_model.pt
\set corrupt :data/bad/corrupt.pt
\set identity :data/bad/identity.pt
BEGIN;
SELECT plan(43);

CREATE TEMP TABLE ref (name text, layer text, box integer[], feat imgfeat);
COPY ref FROM :'reference';
CREATE TEMP TABLE model_sha (layer text, sha256 text);
COPY model_sha FROM :'models';
CREATE TEMP TABLE img AS
SELECT name, pg_read_binary_file(:'images' || name) AS b FROM pg_ls_dir(:'images') name;

-- Cosine and distance between our feature and the reference, in plain SQL.
CREATE FUNCTION pg_temp.compare(a imgfeat, b imgfeat, OUT cosine float8, OUT distance float8)
LANGUAGE sql AS $$
	SELECT sum(x * y) / sqrt(sum(x * x) * sum(y * y)), sqrt(sum((x - y) ^ 2))
	FROM unnest(a::real[], b::real[]) AS u(x, y)
$$;
CREATE FUNCTION pg_temp.node_lines(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	line text;
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
		RETURN NEXT line;
	END LOOP;
END $$;
CREATE FUNCTION pg_temp.extract(b bytea, box integer[]) RETURNS imgfeat LANGUAGE sql AS $$
	SELECT CASE WHEN box IS NULL THEN vgg16_features(b) ELSE vgg16_features(b, box) END
$$;

-- pool: 20 cases (17 images, 3 boxes), checked at the issue's bound
-- (cosine > 0.99) and at a bound that tells images apart: random-weight
-- features of different images are close (cosine up to 0.998), so each must
-- also lie within 0.001 of its own reference and nearer to it than to any other.
CREATE TEMP TABLE got AS
SELECT r.name, r.box, pg_temp.extract(i.b, r.box) AS feat FROM ref r JOIN img i USING (name) WHERE r.layer = 'pool';
CREATE TEMP TABLE agree AS
SELECT g.name, g.box, (pg_temp.compare(g.feat, r.feat)).*,
       (SELECT min((pg_temp.compare(g.feat, o.feat)).distance) FROM ref o
        WHERE o.layer = 'pool' AND (o.name, coalesce(o.box, '{}')) <> (g.name, coalesce(g.box, '{}'))) AS nearest_other
FROM got g JOIN ref r ON r.layer = 'pool' AND r.name = g.name AND r.box IS NOT DISTINCT FROM g.box;
SELECT is(count(*)::int, 20, 'pool: every reference case computed') FROM agree;
SELECT ok(cosine > 0.99 AND distance < 0.001 AND distance < nearest_other,
          format('pool %s%s agrees with torchvision (cosine %s, distance %s, nearest other %s)',
                 name, coalesce(' box ' || box::text, ''), round(cosine::numeric, 6),
                 round(distance::numeric, 6), round(nearest_other::numeric, 4)))
FROM agree ORDER BY name, box NULLS FIRST;

SELECT is((SELECT sha256 FROM imgsearch_model_info()), (SELECT sha256 FROM model_sha WHERE layer = 'pool'),
          'sha256 of the pool model matches hashlib');
SELECT is(imgsearch_model_sha256(), (SELECT sha256 FROM model_sha WHERE layer = 'pool'),
          'imgsearch_model_sha256() of the pool model matches hashlib');
SELECT is((SELECT layer || ' ' || dims FROM imgsearch_model_info()), 'pool 512', 'pool model info');

-- model file errors: each a clear error, the session still usable
SET imgsearch.model = :'missing';
SELECT throws_ok($$SELECT vgg16_features(b) FROM img WHERE name = 'small.png'$$, '58P01', NULL,
                 'a missing model file is an undefined_file error');
SELECT throws_ok('SELECT * FROM imgsearch_model_info()', '58P01', NULL, 'imgsearch_model_info reports it too');
SELECT throws_ok('SELECT imgsearch_model_sha256()', '58P01', NULL, 'imgsearch_model_sha256 reports it too');
SET imgsearch.model = :'corrupt';
SELECT throws_ok($$SELECT vgg16_features(b) FROM img WHERE name = 'small.png'$$, '22023', NULL,
                 'a file that is not TorchScript is refused');
SET imgsearch.model = :'identity';
SELECT throws_ok($$SELECT vgg16_features(b) FROM img WHERE name = 'small.png'$$, '22023', NULL,
                 'a TorchScript model without a [N,dims] output is refused');
SET imgsearch.model = '';
SELECT throws_ok($$SELECT vgg16_features(b) FROM img WHERE name = 'small.png'$$, '55000', NULL,
                 'an empty imgsearch.model is refused');
SELECT throws_ok('SELECT imgsearch_model_sha256()', '55000', NULL, 'imgsearch_model_sha256 too');
SELECT throws_ok($$SET imgsearch.model = 'relative.pt'$$, '22023', NULL, 'imgsearch.model must be absolute');
RESET imgsearch.model;
SELECT ok((SELECT vgg16_features(b) <-> feat < 1e-5 FROM img JOIN got USING (name) WHERE name = 'small.png' AND box IS NULL),
          'after the errors, the configured model runs again');

-- fc7 (4096-d, the paper's layer): 3 cases, and the model switch reloads
SET imgsearch.model = :'fc7';
CREATE TEMP TABLE got7 AS
SELECT r.name, r.box, pg_temp.extract(i.b, r.box) AS feat FROM ref r JOIN img i USING (name) WHERE r.layer = 'fc7';
SELECT is((SELECT layer || ' ' || dims FROM imgsearch_model_info()), 'fc7 4096', 'switching imgsearch.model loads fc7');
SELECT is((SELECT sha256 FROM imgsearch_model_info()), (SELECT sha256 FROM model_sha WHERE layer = 'fc7'),
          'sha256 of the fc7 model matches hashlib');
SELECT is(imgsearch_model_sha256(), (SELECT sha256 FROM model_sha WHERE layer = 'fc7'),
          'imgsearch_model_sha256() of the fc7 model matches hashlib');
SELECT ok(imgfeat_dims(g.feat) = 4096 AND c.cosine > 0.99 AND c.distance < 0.005,
          format('fc7 %s%s agrees with torchvision (cosine %s, distance %s)', g.name,
                 coalesce(' box ' || g.box::text, ''), round(c.cosine::numeric, 6), round(c.distance::numeric, 6)))
FROM got7 g JOIN ref r ON r.layer = 'fc7' AND r.name = g.name AND r.box IS NOT DISTINCT FROM g.box,
     LATERAL pg_temp.compare(g.feat, r.feat) c
ORDER BY g.name, g.box NULLS FIRST;
SELECT ok((SELECT max(u.f <-> g.feat) < 1e-5 FROM
             (SELECT vgg16_features(array_agg(b ORDER BY name)) fs, array_agg(name ORDER BY name) names
              FROM img WHERE name IN ('rgb.jpg', 'small.png')) s,
             unnest(s.names, s.fs) u(name, f) JOIN got7 g ON g.name = u.name AND g.box IS NULL),
          'fc7 batch equals single');
CREATE TEMP TABLE feats7 AS SELECT name, feat FROM got7 WHERE box IS NULL;
CREATE INDEX ON feats7 USING faissflat (feat);
SET LOCAL imgsearch.method = 'faissflat';
SET LOCAL enable_seqscan = off;
SELECT ok((SELECT string_agg(l, ' ') FROM pg_temp.node_lines(
             $$SELECT name FROM feats7 ORDER BY feat <-> vgg16_features('\x00'::bytea) LIMIT 1$$) l)
          ~ 'Index Scan using feats7_feat_idx', 'fc7: the faissflat index serves ORDER BY feat <-> vgg16_features(...)');
SELECT is((SELECT name FROM feats7 ORDER BY feat <-> vgg16_features((SELECT b FROM img WHERE name = 'small.png')) LIMIT 1),
          'small.png', 'fc7: the index scan finds the query image');
RESET enable_seqscan;
RESET imgsearch.method;
RESET imgsearch.model;
SELECT is((SELECT layer || ' ' || dims FROM imgsearch_model_info()), 'pool 512', 'RESET goes back to the pool model');

SELECT * FROM finish();
ROLLBACK;
