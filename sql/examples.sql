
-- ---------------------------------------------------------------------------
-- Several examples: more like these, less like those (0.3). The same text is in the install script and in the
-- 0.2 -> 0.3 upgrade script.
-- ---------------------------------------------------------------------------

-- The average example (Rocchio): one imgfeat, which every index serves as a plain query.
CREATE FUNCTION imgsearch_average_example(positives imgfeat[], negatives imgfeat[] DEFAULT '{}',
	negative_weight float8 DEFAULT 1) RETURNS imgfeat
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgsearch_average_example(imgfeat[], imgfeat[], float8) IS
	'mean(positives) - negative_weight * mean(negatives), not normalised: ORDER BY feat <-> imgsearch_average_example(...)';

-- imgexamples: positive and negative examples, for the best-score operators.
CREATE TYPE imgexamples;
CREATE FUNCTION imgexamples_in(cstring) RETURNS imgexamples
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgexamples_out(imgexamples) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgexamples_recv(internal) RETURNS imgexamples
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgexamples_send(imgexamples) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE TYPE imgexamples (
	INPUT          = imgexamples_in,
	OUTPUT         = imgexamples_out,
	RECEIVE        = imgexamples_recv,
	SEND           = imgexamples_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT      = int4,
	STORAGE        = extended
);
COMMENT ON TYPE imgexamples IS
	'several examples: positive and negative imgfeat vectors of one dimension; text form [1,2];[3,4] / [5,6]';

CREATE FUNCTION imgsearch_examples(positives imgfeat[], negatives imgfeat[] DEFAULT '{}')
	RETURNS imgexamples AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgsearch_examples(imgfeat[], imgfeat[]) IS
	'the examples for ORDER BY feat <-> imgsearch_examples(...) (best score; at most 64 examples)';

CREATE FUNCTION imgfeat_examples_l2_score(imgfeat, imgexamples) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION imgfeat_examples_cosine_score(imgfeat, imgexamples) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgfeat_examples_l2_score(imgfeat, imgexamples) IS
	'best score: the L2 distance to the nearest positive if nearer than every negative, else 2^290 / the distance to the nearest negative';
COMMENT ON FUNCTION imgfeat_examples_cosine_score(imgfeat, imgexamples) IS
	'best score: the cosine distance to the nearest positive if nearer than every negative, else 2^290 / the distance to the nearest negative';

CREATE OPERATOR <-> (LEFTARG = imgfeat, RIGHTARG = imgexamples, FUNCTION = imgfeat_examples_l2_score);
CREATE OPERATOR <=> (LEFTARG = imgfeat, RIGHTARG = imgexamples, FUNCTION = imgfeat_examples_cosine_score);
COMMENT ON OPERATOR <->(imgfeat, imgexamples) IS 'best score of several examples, L2';
COMMENT ON OPERATOR <=>(imgfeat, imgexamples) IS 'best score of several examples, cosine';

-- Served by one index scan that searches from every positive (strategies 6 and 7).
ALTER OPERATOR FAMILY imgfeat_l2_ops USING faissflat ADD OPERATOR 6 <-> (imgfeat, imgexamples) FOR ORDER BY float_ops;
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING faissflat ADD OPERATOR 7 <=> (imgfeat, imgexamples) FOR ORDER BY float_ops;
ALTER OPERATOR FAMILY imgfeat_l2_ops USING kdtree ADD OPERATOR 6 <-> (imgfeat, imgexamples) FOR ORDER BY float_ops;
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING kdtree ADD OPERATOR 7 <=> (imgfeat, imgexamples) FOR ORDER BY float_ops;
ALTER OPERATOR FAMILY imgfeat_l2_ops USING lsh ADD OPERATOR 6 <-> (imgfeat, imgexamples) FOR ORDER BY float_ops;
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING lsh ADD OPERATOR 7 <=> (imgfeat, imgexamples) FOR ORDER BY float_ops;
