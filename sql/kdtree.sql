-- ---------------------------------------------------------------------------
-- kdtree: exact nearest-neighbour index by best-first search over a k-d tree
-- on a PCA projection of the vectors (src/kdtree/kdtree.h). Rows come in the
-- exact order and with the exact distances of a sequential scan; the GUC
-- kdtree.max_leaves trades exactness for speed. Opclasses for L2 and cosine
-- distance; none for inner product, whose order no projection bounds.
-- ---------------------------------------------------------------------------

CREATE FUNCTION kdtree_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C PARALLEL SAFE;

CREATE ACCESS METHOD kdtree TYPE INDEX HANDLER kdtree_handler;
COMMENT ON ACCESS METHOD kdtree IS 'exact nearest-neighbour search over a k-d tree on a PCA projection';

CREATE OPERATOR CLASS imgfeat_l2_ops DEFAULT FOR TYPE imgfeat USING kdtree AS
	OPERATOR 1 <-> (imgfeat, imgfeat) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS imgfeat_cosine_ops FOR TYPE imgfeat USING kdtree AS
	OPERATOR 2 <=> (imgfeat, imgfeat) FOR ORDER BY float_ops;
