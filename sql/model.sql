-- ---------------------------------------------------------------------------
-- vgg16_features: image bytes to a VGG16 feature, in the model workers or the backend
-- (src/model/; the model file is imgsearch.model)
-- ---------------------------------------------------------------------------

-- STABLE: the result depends on imgsearch.model, so the planner may use it
-- as an index scan's ORDER BY key (computed once per scan). PARALLEL
-- RESTRICTED: a parallel worker would load the model again (about 1 s and
-- 200 MB each) to compete for the cores torch already uses in the leader.
CREATE FUNCTION vgg16_features(img bytea) RETURNS imgfeat
	AS 'MODULE_PATHNAME', 'vgg16_features'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION vgg16_features(img bytea, box integer[]) RETURNS imgfeat
	AS 'MODULE_PATHNAME', 'vgg16_features_box'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
CREATE FUNCTION vgg16_features(imgs bytea[]) RETURNS imgfeat[]
	AS 'MODULE_PATHNAME', 'vgg16_features_batch'
	LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;

COMMENT ON FUNCTION vgg16_features(bytea) IS
	'L2-normalised VGG16 feature of an image (JPEG, PNG, WebP, BMP, TIFF) with the model imgsearch.model';
COMMENT ON FUNCTION vgg16_features(bytea, integer[]) IS
	'vgg16_features of the region box = {x, y, width, height} (pixels, clipped to the image)';
COMMENT ON FUNCTION vgg16_features(bytea[]) IS
	'vgg16_features of each image, several per forward pass; NULL gives NULL';

CREATE FUNCTION imgsearch_model_info(
	OUT path text, OUT layer text, OUT dims integer, OUT weights text, OUT sha256 text,
	OUT note text, OUT load_seconds double precision, OUT backend_images bigint)
	AS 'MODULE_PATHNAME', 'imgsearch_model_info'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION imgsearch_model_info() IS
	'the model imgsearch.model names (loading it): layer, dims, weights, sha256 of the file; note warns when the weights are random';

