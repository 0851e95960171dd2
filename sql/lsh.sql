-- ---------------------------------------------------------------------------
-- lsh: approximate nearest-neighbour index by locality-sensitive hashing
-- (src/lsh/lsh.h): each vector hashes to the bucket of its nearest k-means
-- centroid and to a sign sketch of its residual; a scan probes the nearest
-- buckets (lsh.probes), ranks their entries by the sketches' estimate, and
-- re-ranks the best (lsh.candidates) by exact distance. Rows come in
-- non-decreasing exact distance, with the operator's value; lsh.probes = 0
-- and lsh.candidates = 0 make it exact. Opclasses for L2, cosine and inner
-- product.
-- ---------------------------------------------------------------------------

CREATE FUNCTION lsh_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C PARALLEL SAFE;

CREATE ACCESS METHOD lsh TYPE INDEX HANDLER lsh_handler;
COMMENT ON ACCESS METHOD lsh IS 'approximate nearest-neighbour search by hashing into buckets, re-ranked exactly';

CREATE OPERATOR CLASS imgfeat_l2_ops DEFAULT FOR TYPE imgfeat USING lsh AS
	OPERATOR 1 <-> (imgfeat, imgfeat) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS imgfeat_cosine_ops FOR TYPE imgfeat USING lsh AS
	OPERATOR 2 <=> (imgfeat, imgfeat) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS imgfeat_ip_ops FOR TYPE imgfeat USING lsh AS
	OPERATOR 3 <#> (imgfeat, imgfeat) FOR ORDER BY float_ops;
