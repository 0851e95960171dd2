
-- ---------------------------------------------------------------------------
-- Range search: every row within a distance of a query, through the index (0.3). The same text is in the install script and in the
-- 0.2 -> 0.3 upgrade script.
-- ---------------------------------------------------------------------------

-- The query of a range search: a centre and a radius. `feat <<->> s` is
-- `feat <-> s.center <= s.radius` and `feat <<=>> s` is
-- `feat <=> s.center <= s.radius`: closed balls, so radius 0 finds exact
-- duplicates. Make one with imgsearch_sphere(center, radius), which checks
-- the radius; the operators and the index scans check it too (a ROW(...) cast
-- bypasses the constructor).
CREATE TYPE imgsearch_sphere AS (center imgfeat, radius double precision);
COMMENT ON TYPE imgsearch_sphere IS 'query of a range search: every row within radius of center';

CREATE FUNCTION imgsearch_sphere(center imgfeat, radius double precision) RETURNS imgsearch_sphere
	AS 'MODULE_PATHNAME', 'imgsearch_sphere_make' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgsearch_sphere(imgfeat, double precision) IS
	'the sphere of a range search; the radius must be finite and not negative (22023)';

CREATE FUNCTION imgfeat_within_l2(imgfeat, imgsearch_sphere) RETURNS boolean
	AS 'MODULE_PATHNAME', 'imgfeat_within_l2' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgfeat_within_l2(imgfeat, imgsearch_sphere) IS
	'whether the Euclidean distance (<->) to the sphere''s center is at most its radius';
CREATE FUNCTION imgfeat_within_cosine(imgfeat, imgsearch_sphere) RETURNS boolean
	AS 'MODULE_PATHNAME', 'imgfeat_within_cosine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION imgfeat_within_cosine(imgfeat, imgsearch_sphere) IS
	'whether the cosine distance (<=>) to the sphere''s center is at most its radius';

-- contsel: a fixed selectivity of 0.1%, so that the planner takes an index
-- for a range search; it cannot tell a radius that covers the table.
CREATE OPERATOR <<->> (
	LEFTARG = imgfeat, RIGHTARG = imgsearch_sphere, FUNCTION = imgfeat_within_l2,
	RESTRICT = contsel, JOIN = contjoinsel
);
CREATE OPERATOR <<=>> (
	LEFTARG = imgfeat, RIGHTARG = imgsearch_sphere, FUNCTION = imgfeat_within_cosine,
	RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<->>(imgfeat, imgsearch_sphere) IS 'within the sphere, in Euclidean (L2) distance';
COMMENT ON OPERATOR <<=>>(imgfeat, imgsearch_sphere) IS 'within the sphere, in cosine distance';

-- Strategy 4 (L2 sphere) and 5 (cosine sphere) in every L2 and cosine
-- operator class: WHERE feat <<->> imgsearch_sphere(q, r) is an index qual.
ALTER OPERATOR FAMILY imgfeat_l2_ops USING faissflat ADD OPERATOR 4 <<->> (imgfeat, imgsearch_sphere);
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING faissflat ADD OPERATOR 5 <<=>> (imgfeat, imgsearch_sphere);
ALTER OPERATOR FAMILY imgfeat_l2_ops USING kdtree ADD OPERATOR 4 <<->> (imgfeat, imgsearch_sphere);
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING kdtree ADD OPERATOR 5 <<=>> (imgfeat, imgsearch_sphere);
ALTER OPERATOR FAMILY imgfeat_l2_ops USING lsh ADD OPERATOR 4 <<->> (imgfeat, imgsearch_sphere);
ALTER OPERATOR FAMILY imgfeat_cosine_ops USING lsh ADD OPERATOR 5 <<=>> (imgfeat, imgsearch_sphere);
