-- Distances are exact to float rounding for every finite value the type
-- accepts: vectors scaled from 1e-40 to 3e38 (where float32 sums underflow or
-- overflow) agree with the same quantities computed independently in SQL
-- (double precision over the real[] elements), and a faissflat index scan
-- returns exactly the operator's values in exactly the sequential scan's order
-- (rows at equal distances, which tiny vectors far from a big query are, in
-- any order: helpers/topk.psql's topk_problems).
BEGIN;
\ir helpers/topk.psql
SELECT plan(12);
SELECT setseed(0.17);

-- 40 random pairs at each scale; elements in [-1, 1] times the scale, so
-- squares and products reach 1e-80 (underflow) and 1e77 (overflow) in float32
CREATE TEMP TABLE pairs AS
SELECT n, scale, dim,
       (SELECT array_agg(((random() * 2 - 1 + 0 * g) * scale)::real) FROM generate_series(1, dim) g WHERE n > 0) AS a,
       (SELECT array_agg(((random() * 2 - 1 + 0 * g) * scale)::real) FROM generate_series(1, dim) g WHERE n > 0) AS b
FROM generate_series(1, 40) n,
     (VALUES (1e-40::float8), (1e-25), (1), (1e19), (1e30), (3e38)) s(scale),
     (VALUES (3), (512)) d(dim);

CREATE TEMP TABLE ref AS
SELECT n, scale, dim, a, b,
       (SELECT sqrt(sum((x::float8 - y::float8) ^ 2)) FROM unnest(a, b) u(x, y)) AS l2,
       (SELECT sum(x::float8 * y::float8) FROM unnest(a, b) u(x, y)) AS ip,
       (SELECT sqrt(sum(abs(x::float8 * y::float8))) FROM unnest(a, b) u(x, y)) AS ip_scale,
       (SELECT sqrt(sum(x::float8 ^ 2)) FROM unnest(a) u(x)) AS norm_a,
       (SELECT sqrt(sum(y::float8 ^ 2)) FROM unnest(b) u(y)) AS norm_b
FROM pairs;

SELECT is((SELECT count(*)::int FROM ref WHERE abs((a::imgfeat <-> b::imgfeat) - l2) > 1e-5 * l2), 0,
          '<-> equals sqrt(sum((a-b)^2)) from 1e-40 to 3e38');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs(l2_squared_distance(a::imgfeat, b::imgfeat) - l2 * l2) > 1e-5 * l2 * l2), 0,
          'l2_squared_distance equals sum((a-b)^2) from 1e-40 to 3e38');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <#> b::imgfeat) + ip) > 1e-5 * ip_scale * ip_scale), 0,
          '<#> equals -sum(a*b) from 1e-40 to 3e38');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <=> b::imgfeat) - (1 - ip / (norm_a * norm_b))) > 1e-5), 0,
          '<=> equals 1 - a.b / (|a| |b|) from 1e-40 to 3e38');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <=> a::imgfeat)) > 1e-6 OR abs((a::imgfeat <-> a::imgfeat)) <> 0), 0,
          'a vector is at distance 0 of itself at every scale');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs(l2_norm(a::imgfeat) - (a::imgfeat <-> array_fill(0::real, array[dim])::imgfeat))
                 > 1e-5 * norm_a), 0,
          'l2_norm(a) agrees with a <-> 0 at every scale');

-- the cases the issue names
SELECT ok(abs(('[2e19,2e19]'::imgfeat <-> '[0,0]') / (sqrt(2::float8) * 2e19::real) - 1) < 1e-7,
          '[2e19,2e19] <-> [0,0] is 2.83e19, not Infinity');
SELECT ok(abs(('[2e19,2e19]'::imgfeat <=> '[1,1]') - 0) < 1e-7, '[2e19,2e19] <=> [1,1] is 0');
SELECT ok(abs('[3e38,3e38]'::imgfeat <=> '[3e38,3e38]') < 1e-7, '[3e38,3e38] <=> itself is 0, not NaN');

-- index scans: the same values, the same order as the sequential scan
CREATE TABLE extreme AS SELECT row_number() OVER () AS id, a::imgfeat AS v FROM ref WHERE dim = 512;
CREATE INDEX extreme_l2 ON extreme USING faissflat (v);
CREATE INDEX extreme_cos ON extreme USING faissflat (v imgfeat_cosine_ops);
CREATE TEMP TABLE probes AS SELECT b::imgfeat AS q FROM ref WHERE dim = 512 AND n <= 2;

-- every probe: the plan, the operator's values, the sort's rows (ties as sets)
CREATE FUNCTION pg_temp.ranked_problems(op text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(format('probe %s: %s', p.n, x), '; ' ORDER BY p.n), '')
	FROM (SELECT row_number() OVER () AS n, q FROM probes) p,
	     LATERAL pg_temp.knn('extreme', op, p.q, NULL, 'faissflat') f,
	     LATERAL pg_temp.knn('extreme', op, p.q, NULL, 'argsort') a,
	     LATERAL concat_ws('; ', CASE WHEN f.plan !~ 'Index Scan using extreme_' THEN 'not an index scan' END,
	                       CASE WHEN a.plan ~ 'Index Scan' THEN 'argsort scans an index' END,
	                       nullif(pg_temp.topk_problems(f.ids, f.dists, a.ids, a.dists, true), ''),
	                       CASE WHEN f.dists IS DISTINCT FROM f.true_dists THEN 'a distance that is not the row''s' END) x
	WHERE x <> '' $$;
SET LOCAL imgsearch.method = 'faissflat';
SET LOCAL enable_seqscan = off;
SELECT ok((SELECT count(*) FROM pg_temp.explain_lines('SELECT id FROM extreme ORDER BY v <-> (SELECT q FROM probes LIMIT 1)') l
           WHERE l LIKE '%Index Scan using extreme_l2%') = 1, 'the faissflat comparison runs an index scan');
SELECT is(pg_temp.ranked_problems('<->'), '',
          'faissflat <-> over values from 1e-40 to 3e38: ids, order and distances equal the sequential scan''s');
SELECT is(pg_temp.ranked_problems('<=>'), '',
          'faissflat <=> over values from 1e-40 to 3e38: ids, order and distances equal the sequential scan''s');

SELECT * FROM finish();
ROLLBACK;
