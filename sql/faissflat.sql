-- ---------------------------------------------------------------------------
-- faissflat: exact nearest-neighbour index. Serves ORDER BY col <op> query
-- (with or without LIMIT) by streaming every vector through SIMD kernels.
-- Each operator class has one ORDER BY operator; its strategy number names
-- the metric (1 L2, 2 cosine, 3 inner product), the same in every imgsearch
-- index method.
-- ---------------------------------------------------------------------------

CREATE FUNCTION faissflat_handler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C PARALLEL SAFE;

CREATE ACCESS METHOD faissflat TYPE INDEX HANDLER faissflat_handler;
COMMENT ON ACCESS METHOD faissflat IS 'exact nearest-neighbour search over every vector';

CREATE OPERATOR CLASS imgfeat_l2_ops DEFAULT FOR TYPE imgfeat USING faissflat AS
	OPERATOR 1 <-> (imgfeat, imgfeat) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS imgfeat_cosine_ops FOR TYPE imgfeat USING faissflat AS
	OPERATOR 2 <=> (imgfeat, imgfeat) FOR ORDER BY float_ops;
CREATE OPERATOR CLASS imgfeat_ip_ops FOR TYPE imgfeat USING faissflat AS
	OPERATOR 3 <#> (imgfeat, imgfeat) FOR ORDER BY float_ops;

-- A test hook for the shared re-rank call (src/index/vector_store.h,
-- imgs_store_keys): the heap TID and key of each listed slot of a faissflat
-- index, as a method that names slots re-ranks them. Superuser only.
CREATE FUNCTION faissflat_store_keys(index regclass, slots int8[], query imgfeat,
	OUT slot int8, OUT live bool, OUT heap_tid tid, OUT key float8)
	RETURNS SETOF record AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION faissflat_store_keys(regclass, int8[], imgfeat) FROM PUBLIC;

-- A test hook for the shared block allocator (src/index/index_meta.h): takes
-- pages blocks as a method with pages of its own would, so that the vector
-- store's next group starts after them. Superuser only.
CREATE FUNCTION faissflat_test_reserve(index regclass, pages int4) RETURNS int8
	AS 'MODULE_PATHNAME' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION faissflat_test_reserve(regclass, int4) FROM PUBLIC;
