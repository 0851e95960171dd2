-- Distances, norms and avg agree with the same quantities computed
-- independently in SQL (double precision over unnest of the real[] elements),
-- on random vectors at several dimensions.
BEGIN;
SELECT plan(14);

CREATE FUNCTION pg_temp.explain_lines(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
  RETURN QUERY EXECUTE 'EXPLAIN (COSTS OFF) ' || q;
END $$;
SELECT setseed(0.42);

CREATE TEMP TABLE pairs AS
SELECT n, dim,
       (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, dim) WHERE n > 0) AS a,
       (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, dim) WHERE n > 0) AS b
FROM generate_series(1, 60) n, (VALUES (3), (512), (4096)) d(dim);

-- independent reference values
CREATE TEMP TABLE ref AS
SELECT n, dim, a, b,
       (SELECT sqrt(sum((x - y)::float8 ^ 2)) FROM unnest(a, b) u(x, y)) AS l2,
       (SELECT sum(x::float8 * y) FROM unnest(a, b) u(x, y)) AS ip,
       (SELECT sqrt(sum(x::float8 ^ 2)) FROM unnest(a) u(x)) AS norm_a,
       (SELECT sqrt(sum(y::float8 ^ 2)) FROM unnest(b) u(y)) AS norm_b
FROM pairs;

-- float4 accumulation: allow a relative error of 1e-5 (plus a tiny absolute slack)
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <-> b::imgfeat) - l2) > 1e-5 * l2 + 1e-6), 0,
          '<-> equals sqrt(sum((a-b)^2)) for 180 random pairs (3, 512, 4096 dims)');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs(l2_squared_distance(a::imgfeat, b::imgfeat) - l2 * l2) > 1e-5 * l2 * l2 + 1e-6), 0,
          'l2_squared_distance equals sum((a-b)^2)');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <#> b::imgfeat) + ip) > 1e-5 * norm_a * norm_b + 1e-6), 0,
          '<#> equals -sum(a*b)');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs(inner_product(a::imgfeat, b::imgfeat) - ip) > 1e-5 * norm_a * norm_b + 1e-6), 0,
          'inner_product equals sum(a*b)');
SELECT is((SELECT count(*)::int FROM ref
           WHERE abs((a::imgfeat <=> b::imgfeat) - (1 - ip / (norm_a * norm_b))) > 1e-5), 0,
          '<=> equals 1 - a.b / (|a| |b|)');
SELECT is((SELECT count(*)::int FROM ref WHERE abs(l2_norm(a::imgfeat) - norm_a) > 1e-9 * norm_a), 0,
          'l2_norm equals sqrt(sum(a^2))');
SELECT is((SELECT count(*)::int FROM ref
           WHERE (SELECT max(abs(x::float8 - y / norm_a))
                  FROM unnest(l2_normalize(a::imgfeat)::real[], a) u(x, y)) > 1e-6), 0,
          'l2_normalize divides every element by the norm');
SELECT is((SELECT count(*)::int FROM ref WHERE imgfeat_dims(a::imgfeat) <> dim), 0,
          'imgfeat_dims equals the array length');

-- distance properties, on the same data
SELECT is((SELECT count(*)::int FROM ref WHERE (a::imgfeat <-> b::imgfeat) <> (b::imgfeat <-> a::imgfeat)), 0,
          '<-> is symmetric');
SELECT is((SELECT count(*)::int FROM ref WHERE (a::imgfeat <-> a::imgfeat) <> 0), 0,
          'distance to itself is 0');

-- avg: component-wise mean computed by SQL's own avg(float8)
CREATE TEMP TABLE means AS
SELECT dim, i, avg(x::float8) AS mean
FROM ref, unnest(a) WITH ORDINALITY u(x, i)
GROUP BY dim, i;
SELECT is((SELECT count(*)::int
           FROM (SELECT dim, avg(a::imgfeat)::real[] AS v FROM ref GROUP BY dim) g,
                unnest(g.v) WITH ORDINALITY u(x, i)
                JOIN means m USING (i)
           WHERE m.dim = g.dim AND abs(x - m.mean) > 1e-6), 0,
          'avg(imgfeat) equals the component-wise avg() of the elements');

-- parallel aggregation (partial states combined) gives the same mean
CREATE TABLE tap_many AS
SELECT (SELECT array_agg(((n * 7 + j) % 13)::real) FROM generate_series(1, 16) j WHERE n > 0)::imgfeat AS v
FROM generate_series(1, 20000) n;
CREATE TEMP TABLE expected_mean AS
SELECT (SELECT array_agg(m ORDER BY j)
        FROM (SELECT j, avg(((n * 7 + j) % 13)::float8)::real AS m
              FROM generate_series(1, 20000) n, generate_series(1, 16) j GROUP BY j) s)::imgfeat::text AS v;
SELECT is((SELECT avg(v)::text FROM tap_many), (SELECT v FROM expected_mean),
          'avg over 20000 rows equals the per-component SQL avg');
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT ok((SELECT bool_or(l LIKE '%Partial Aggregate%')
           FROM (SELECT * FROM pg_temp.explain_lines('SELECT avg(v) FROM tap_many')) e(l)),
          'avg(imgfeat) gets a parallel plan');
SELECT is((SELECT avg(v)::text FROM tap_many), (SELECT v FROM expected_mean),
          'avg with a parallel plan gives the same result');

SELECT * FROM finish();
ROLLBACK;
