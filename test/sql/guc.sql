-- imgsearch.method: registered with its allowed values; other names in the
-- imgsearch. prefix are reserved.
LOAD 'imgsearch';
SHOW imgsearch.method;
SET imgsearch.method = 'faissflat';
SHOW imgsearch.method;
SET imgsearch.method = 'kdtree';
SET imgsearch.method = 'lsh';
SET imgsearch.method = 'argsort';
SHOW imgsearch.method;
RESET imgsearch.method;
SHOW imgsearch.method;
SET imgsearch.method = 'bogus';
SET imgsearch.no_such_setting = 1;
SELECT name, setting, enumvals, context FROM pg_settings WHERE name = 'imgsearch.method';
