
-- ---------------------------------------------------------------------------
-- Images without the model: what an image is, and a thumbnail of it
-- (src/model/; the decoder and limits of vgg16_features, no imgsearch.model)
-- ---------------------------------------------------------------------------

CREATE FUNCTION imgsearch_image_info(img bytea, OUT format text, OUT width integer, OUT height integer)
	AS 'MODULE_PATHNAME', 'imgsearch_image_info'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgsearch_thumbnail(img bytea, side integer DEFAULT 256) RETURNS bytea
	AS 'MODULE_PATHNAME', 'imgsearch_thumbnail'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION imgsearch_image_info(bytea) IS
	'format (JPEG, PNG, WebP, BMP, TIFF) and size as shown upright (EXIF orientation applied), from the image header without decoding';
COMMENT ON FUNCTION imgsearch_thumbnail(bytea, integer) IS
	'JPEG (quality 85) of the image upright, its longer side at most side (16..2048) pixels, never enlarged';
