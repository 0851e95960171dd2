-- ---------------------------------------------------------------------------
-- imgfeat: an image feature vector (float4[dim], 1 <= dim <= 16000)
-- ---------------------------------------------------------------------------

CREATE TYPE imgfeat;

CREATE FUNCTION imgfeat_in(cstring, oid, integer) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_out(imgfeat) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_recv(internal, oid, integer) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_send(imgfeat) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Floats do not compress: keep values out of line, uncompressed.
CREATE TYPE imgfeat (
	INPUT          = imgfeat_in,
	OUTPUT         = imgfeat_out,
	TYPMOD_IN      = imgfeat_typmod_in,
	TYPMOD_OUT     = imgfeat_typmod_out,
	RECEIVE        = imgfeat_recv,
	SEND           = imgfeat_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT      = int4,
	STORAGE        = external
);

COMMENT ON TYPE imgfeat IS 'image feature vector: float4[dim], 1 <= dim <= 16000; text form [1,2,3]';

-- ---------------------------------------------------------------------------
-- Casts
-- ---------------------------------------------------------------------------

CREATE FUNCTION imgfeat(imgfeat, integer, boolean) RETURNS imgfeat
	AS 'MODULE_PATHNAME', 'imgfeat_coerce' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_from_array(real[], integer, boolean) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_from_array(double precision[], integer, boolean) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_from_array(numeric[], integer, boolean) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_from_array(integer[], integer, boolean) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_to_float4_array(imgfeat, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (imgfeat AS imgfeat) WITH FUNCTION imgfeat(imgfeat, integer, boolean) AS IMPLICIT;
CREATE CAST (real[] AS imgfeat) WITH FUNCTION imgfeat_from_array(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS imgfeat) WITH FUNCTION imgfeat_from_array(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS imgfeat) WITH FUNCTION imgfeat_from_array(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (integer[] AS imgfeat) WITH FUNCTION imgfeat_from_array(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (imgfeat AS real[]) WITH FUNCTION imgfeat_to_float4_array(imgfeat, integer, boolean) AS ASSIGNMENT;

-- ---------------------------------------------------------------------------
-- Distances and vector functions
-- ---------------------------------------------------------------------------

CREATE FUNCTION l2_distance(imgfeat, imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_squared_distance(imgfeat, imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(imgfeat, imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(imgfeat, imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION negative_inner_product(imgfeat, imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_dims(imgfeat) RETURNS integer
	AS 'MODULE_PATHNAME', 'imgfeat_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_norm(imgfeat) RETURNS double precision
	AS 'MODULE_PATHNAME', 'imgfeat_l2_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(imgfeat) RETURNS imgfeat
	AS 'MODULE_PATHNAME', 'imgfeat_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR <-> (
	LEFTARG = imgfeat, RIGHTARG = imgfeat, FUNCTION = l2_distance, COMMUTATOR = '<->'
);
CREATE OPERATOR <=> (
	LEFTARG = imgfeat, RIGHTARG = imgfeat, FUNCTION = cosine_distance, COMMUTATOR = '<=>'
);
CREATE OPERATOR <#> (
	LEFTARG = imgfeat, RIGHTARG = imgfeat, FUNCTION = negative_inner_product, COMMUTATOR = '<#>'
);

COMMENT ON OPERATOR <->(imgfeat, imgfeat) IS 'Euclidean (L2) distance';
COMMENT ON OPERATOR <=>(imgfeat, imgfeat) IS 'cosine distance: 1 - cosine similarity';
COMMENT ON OPERATOR <#>(imgfeat, imgfeat) IS 'negative inner product';

-- ---------------------------------------------------------------------------
-- avg(imgfeat)
-- ---------------------------------------------------------------------------

CREATE FUNCTION imgfeat_avg_accum(double precision[], imgfeat) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_avg_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_avg_final(double precision[]) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE avg(imgfeat) (
	SFUNC       = imgfeat_avg_accum,
	STYPE       = double precision[],
	FINALFUNC   = imgfeat_avg_final,
	COMBINEFUNC = imgfeat_avg_combine,
	INITCOND    = '{0}',
	PARALLEL    = SAFE
);

-- The support functions take any array. Only the aggregate needs them, and it
-- runs them with its owner's rights; they validate their state all the same.
REVOKE EXECUTE ON FUNCTION imgfeat_avg_accum(double precision[], imgfeat),
	imgfeat_avg_combine(double precision[], double precision[]),
	imgfeat_avg_final(double precision[]) FROM PUBLIC;
