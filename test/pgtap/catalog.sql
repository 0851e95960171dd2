-- The extension's catalog objects exist with the signatures users rely on.
BEGIN;
SELECT plan(44);

SELECT has_type('imgfeat');
SELECT is((SELECT typstorage::text FROM pg_type WHERE typname = 'imgfeat'), 'e', 'imgfeat is STORAGE external');

SELECT has_operator('imgfeat', '<->', 'imgfeat', 'double precision');
SELECT has_operator('imgfeat', '<=>', 'imgfeat', 'double precision');
SELECT has_operator('imgfeat', '<#>', 'imgfeat', 'double precision');
SELECT is((SELECT oprcom::regoperator::text FROM pg_operator
           WHERE oprname = '<->' AND oprleft = 'imgfeat'::regtype AND oprright = 'imgfeat'::regtype),
          '<->(imgfeat,imgfeat)', '<-> is its own commutator');

SELECT has_function('l2_distance', ARRAY['imgfeat', 'imgfeat']);
SELECT has_function('l2_squared_distance', ARRAY['imgfeat', 'imgfeat']);
SELECT has_function('cosine_distance', ARRAY['imgfeat', 'imgfeat']);
SELECT has_function('inner_product', ARRAY['imgfeat', 'imgfeat']);
SELECT has_function('negative_inner_product', ARRAY['imgfeat', 'imgfeat']);
SELECT has_function('imgfeat_dims', ARRAY['imgfeat']);
SELECT has_function('l2_norm', ARRAY['imgfeat']);
SELECT has_function('l2_normalize', ARRAY['imgfeat']);
SELECT function_returns('l2_distance', ARRAY['imgfeat', 'imgfeat'], 'double precision');
SELECT function_returns('imgfeat_dims', ARRAY['imgfeat'], 'integer');
SELECT function_returns('l2_normalize', ARRAY['imgfeat'], 'imgfeat');

-- distances are pure: the planner may fold and index them
SELECT volatility_is('l2_distance', ARRAY['imgfeat', 'imgfeat'], 'immutable');
SELECT volatility_is('cosine_distance', ARRAY['imgfeat', 'imgfeat'], 'immutable');
SELECT volatility_is('negative_inner_product', ARRAY['imgfeat', 'imgfeat'], 'immutable');
SELECT is_strict('l2_distance', ARRAY['imgfeat', 'imgfeat']);
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
           JOIN pg_extension e ON e.oid = d.refobjid
           WHERE e.extname = 'imgsearch' AND p.proparallel <> 's'
             AND p.proname NOT LIKE 'imgsearch\_cxx\_%'
             -- ingest writes tables and wakes workers; its row-level security check is safe
             AND (p.proname NOT LIKE 'imgsearch\_ingest\_%' OR p.proname = 'imgsearch_ingest_owns')
             AND p.proname NOT IN ('vgg16_features', 'imgsearch_model_info', 'imgsearch_model_workers', 'imgsearch_index_check',
                                   'imgsearch_recall', 'imgsearch_recall_prepare', 'imgsearch_recall_run', 'imgsearch_tune',
                                   'imgsearch_sharded_search', 'imgsearch_shard_methods', 'imgsearch_sharded_ingest_status',
                                   'imgsearch_duplicates')),
          0, 'every function but the self-test, the model ones, the ingest ones, the index check, the recall ones, the shard ones that query or make foreign tables and imgsearch_duplicates is PARALLEL SAFE');

SELECT has_cast('real[]', 'imgfeat');
SELECT has_cast('double precision[]', 'imgfeat');
SELECT has_cast('numeric[]', 'imgfeat');
SELECT has_cast('integer[]', 'imgfeat');
SELECT has_cast('imgfeat', 'real[]');
SELECT has_cast('imgfeat', 'imgfeat');
SELECT cast_context_is('real[]', 'imgfeat', 'assignment');
SELECT cast_context_is('imgfeat', 'real[]', 'assignment');
SELECT cast_context_is('imgfeat', 'imgfeat', 'implicit');

SELECT has_function('avg', ARRAY['imgfeat']);
SELECT is_aggregate('avg', ARRAY['imgfeat']);
SELECT is((SELECT aggcombinefn::text FROM pg_aggregate WHERE aggfnoid = 'avg(imgfeat)'::regprocedure),
          'imgfeat_avg_combine', 'avg(imgfeat) has a combine function');
SELECT is((SELECT proparallel::text FROM pg_proc WHERE oid = 'avg(imgfeat)'::regprocedure),
          's', 'avg(imgfeat) is parallel safe');

SELECT has_function('imgsearch_cxx_selftest', ARRAY['text']);
SELECT ok(NOT has_function_privilege('public', 'imgsearch_cxx_selftest(text)', 'EXECUTE'),
          'the C++ self-test is not executable by PUBLIC');

-- typmod shows as imgfeat(n)
CREATE TEMP TABLE catalog_t (v imgfeat(512));
SELECT col_type_is('catalog_t', 'v', 'imgfeat(512)');
SELECT is(format_type('imgfeat'::regtype, 512), 'imgfeat(512)', 'format_type shows the dimension');

-- the method GUC
SELECT imgfeat_dims('[1]');   -- loads the module
SELECT is(current_setting('imgsearch.method'), 'auto', 'imgsearch.method defaults to auto');
SELECT is((SELECT enumvals FROM pg_settings WHERE name = 'imgsearch.method'),
          ARRAY['auto', 'argsort', 'faissflat', 'kdtree', 'lsh'], 'imgsearch.method values');
SELECT is((SELECT context FROM pg_settings WHERE name = 'imgsearch.method'),
          'user', 'any user may set imgsearch.method');
SELECT throws_ok($$SET imgsearch.method = 'nope'$$, '22023', NULL, 'an unknown method is refused');
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'imgsearch'), '0.4', 'extension version');

SELECT * FROM finish();
ROLLBACK;
