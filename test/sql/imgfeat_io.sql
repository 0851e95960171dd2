-- imgfeat text and binary I/O, typmods and casts.

-- text round trips: shortest form that reads back to the same float4
SELECT '[1,2,3]'::imgfeat;
SELECT ' [ 1 , -2.5 ,3e2 ] '::imgfeat;
SELECT '[0.1,0.2,0.3]'::imgfeat;
SELECT '[1.17549435e-38,3.4028235e+38,-0]'::imgfeat;
SELECT '[1e-45]'::imgfeat;                   -- smallest subnormal float4
-- every element survives text -> imgfeat -> text -> imgfeat unchanged
WITH v AS (
  SELECT array_agg(((random() * 2 - 1) * 10 ^ (i % 7 - 3))::real) AS a
  FROM generate_series(1, 512) i
)
SELECT (a::imgfeat)::text::imgfeat::real[] = a AS text_round_trip FROM v;

-- typmod
CREATE TABLE t_typmod (v imgfeat(3));
INSERT INTO t_typmod VALUES ('[1,2,3]');
SELECT v FROM t_typmod;
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 't_typmod'::regclass AND attname = 'v';
SELECT '[1,2,3]'::imgfeat(3);
DROP TABLE t_typmod;

-- binary send: int16 dim, int16 zero, then big-endian float4
SELECT imgfeat_send('[1,2,-3.5]');

-- binary round trip through COPY (imgfeat_send, then imgfeat_recv)
\getenv abs_builddir PG_ABS_BUILDDIR
\set binfile :abs_builddir '/results/imgfeat_io.bin'
CREATE TABLE t_bin (id int, v imgfeat);
INSERT INTO t_bin SELECT i, ('[' || i || ',' || -i * 0.5 || ',1e-3]')::imgfeat FROM generate_series(1, 5) i;
COPY t_bin TO :'binfile' WITH (FORMAT binary);
CREATE TABLE t_bin2 (id int, v imgfeat(3));
COPY t_bin2 FROM :'binfile' WITH (FORMAT binary);
SELECT a.id, a.v, b.v::text = a.v::text AS same FROM t_bin a JOIN t_bin2 b USING (id) ORDER BY id;
DROP TABLE t_bin, t_bin2;

-- casts from arrays
SELECT '{1,2,3}'::real[]::imgfeat;
SELECT '{1.5,2.25,3}'::double precision[]::imgfeat;
SELECT '{1.5,2.25,3}'::numeric[]::imgfeat;
SELECT '{1,2,3}'::integer[]::imgfeat;
SELECT ARRAY[1,2,3]::imgfeat(3);
SELECT '[1,2,3]'::imgfeat::real[];
-- assignment casts let array columns feed imgfeat columns
CREATE TABLE t_cast (v imgfeat(2));
INSERT INTO t_cast VALUES (ARRAY[1.5,2]::double precision[]), (ARRAY[3,4]);
SELECT v FROM t_cast;
DROP TABLE t_cast;

-- largest dimension round trips
SELECT imgfeat_dims(array_fill(0.5::real, ARRAY[16000])::imgfeat);
SELECT (array_fill(0.5::real, ARRAY[16000])::imgfeat)::text::imgfeat::real[]
     = array_fill(0.5::real, ARRAY[16000]) AS max_dim_round_trip;

-- storage: external (floats do not compress)
SELECT typstorage, typalign FROM pg_type WHERE typname = 'imgfeat';
