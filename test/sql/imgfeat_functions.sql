-- Operators and functions on small vectors whose results are known by hand.

-- <-> : sqrt(3^2 + 4^2 + 5^2) = sqrt(50)
SELECT '[1,2,3]'::imgfeat <-> '[4,6,8]' AS l2;
SELECT l2_distance('[1,2,3]', '[4,6,8]');
SELECT l2_squared_distance('[1,2,3]', '[4,6,8]');
SELECT '[1,1]'::imgfeat <-> '[1,1]' AS zero;

-- <#> : -(1*4 + 2*5 + 3*6) = -32
SELECT '[1,2,3]'::imgfeat <#> '[4,5,6]' AS neg_ip;
SELECT inner_product('[1,2,3]', '[4,5,6]'), negative_inner_product('[1,2,3]', '[4,5,6]');

-- <=> : orthogonal 1, same direction 0, opposite 2, 60 degrees 0.5
SELECT '[1,0]'::imgfeat <=> '[0,1]' AS orthogonal,
       '[1,1]'::imgfeat <=> '[2,2]' AS same,
       '[1,0]'::imgfeat <=> '[-3,0]' AS opposite,
       round(('[1,0]'::imgfeat <=> '[0.5,0.8660254]')::numeric, 6) AS sixty_degrees;
SELECT cosine_distance('[0,0]', '[1,2]') AS zero_vector_is_nan;

-- commutators exist, so either operand order plans
SELECT '[4,6,8]'::imgfeat <-> '[1,2,3]'::imgfeat AS l2_swapped;

SELECT imgfeat_dims('[1,2,3,4]');
SELECT l2_norm('[3,4]'), l2_norm('[0,0,0]');
SELECT l2_normalize('[3,4]'), l2_normalize('[0,0]'), round(l2_norm(l2_normalize('[1,2,3,4,5]'))::numeric, 6) AS unit;

-- avg: component-wise mean; NULLs ignored; no rows -> NULL; large values do not overflow
SELECT avg(v) FROM (VALUES ('[1,2]'::imgfeat), ('[3,4]'), (NULL), ('[5,9]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::imgfeat)) t(v) WHERE false;
SELECT avg(v) FROM (VALUES ('[1.5]'::imgfeat), ('[2.5]')) t(v);
SELECT avg(v) FROM (VALUES ('[3e38,-3e38]'::imgfeat), ('[3e38,-3e38]'), ('[3e38,-3e38]')) t(v);
-- grouped
SELECT g, avg(v) FROM (VALUES (1, '[1,1]'::imgfeat), (1, '[3,3]'), (2, '[10,20]')) t(g, v)
GROUP BY g ORDER BY g;

-- ORDER BY distance works without any index (no ties within or at the
-- limits: from [1,1.2] rows 3, 5, 1, 2 at 0.2, 1.28, 1.56, 5.53; inner
-- products with [1,0] of rows 2, 5, 3, 1: 5, 2, 1, 0)
CREATE TABLE items (id int, v imgfeat(2));
INSERT INTO items VALUES (1, '[0,0]'), (2, '[5,5]'), (3, '[1,1]'), (4, NULL), (5, '[2,2]');
SELECT id, round((v <-> '[1,1.2]')::numeric, 6) AS d FROM items ORDER BY v <-> '[1,1.2]' LIMIT 3;
SELECT id FROM items ORDER BY v <#> '[1,0]' LIMIT 2;
DROP TABLE items;
