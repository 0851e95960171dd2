-- Filtered top-k (issue queries): SELECT ... WHERE filter ORDER BY v op q
-- LIMIT k, the index forced (imgsearch.method, enable_seqscan off), for
-- every method and mode: faissflat; kdtree exact and at kdtree.max_leaves = 1;
-- lsh exact (lsh.probes = lsh.candidates = 0) and at lsh.probes = 1,
-- lsh.candidates = 16; L2 and cosine; filters keeping 100%, 10%, 1% and 0.1%
-- of the rows; LIMIT 1, 30, 2000 and ALL; two queries.
--
-- Every answer: rows in non-decreasing distance, each row's own distance,
-- no id twice, an index scan. Exact modes: the sequential scan and sort's
-- ids and distances (ties as sets), so min(LIMIT, qualifying rows) rows.
--
-- Budget modes: a budget scan is approximate in its first round only, and
-- the index never sees the filter, so what holds is:
--   - the scan's stream without a filter and LIMIT (checked against the
--     sort): every row past D, the largest distance of a row it missed,
--     comes, in the sort's order; the rows it missed are at most what its
--     first round can miss (they all lie below that round's last row);
--   - the filtered answer is exactly that stream's qualifying rows, in its
--     order, up to LIMIT: a filter never loses a row the stream has, so a
--     budget scan returns min(LIMIT, qualifying rows) whenever its first
--     round missed no qualifying row (rows never go backwards: returning
--     every qualifying row in non-decreasing distance after an approximate
--     first round is possible only if that round missed none of them;
--     docs/methods.md "Budgets and filters").
-- The qualifying rows a budget scan lost are reported with diag().
SET client_min_messages = warning;
SET jit = off;
SET statement_timeout = '120s';
\ir helpers/topk.psql

SELECT setseed(0.2121);
CREATE TABLE ft (id int, sel int, v imgfeat(32));
INSERT INTO ft SELECT id, floor(random() * 1000)::int, v FROM pg_temp.cluster_feats(32, 4002, 25, 0, 0.8, 3, 7);
-- rows 4001 and 4002 are the queries; two rows without a vector
CREATE TABLE ft_query AS SELECT id - 4000 AS qn, v AS q FROM ft WHERE id > 4000;
DELETE FROM ft WHERE id > 4000;
INSERT INTO ft VALUES (-1, 0, NULL), (-2, 500, NULL);
CREATE INDEX ft_ff_l2 ON ft USING faissflat (v imgfeat_l2_ops);
CREATE INDEX ft_ff_cos ON ft USING faissflat (v imgfeat_cosine_ops);
CREATE INDEX ft_kd_l2 ON ft USING kdtree (v imgfeat_l2_ops) WITH (leaf_size = 32);
CREATE INDEX ft_kd_cos ON ft USING kdtree (v imgfeat_cosine_ops) WITH (leaf_size = 32);
CREATE INDEX ft_lsh_l2 ON ft USING lsh (v imgfeat_l2_ops);
CREATE INDEX ft_lsh_cos ON ft USING lsh (v imgfeat_cosine_ops);
ANALYZE ft;

CREATE TABLE ft_modes (mn int, method text, budget bool, settings jsonb, idx text);
INSERT INTO ft_modes VALUES
	(1, 'faissflat', false, NULL, 'ft_ff'),
	(2, 'kdtree', false, NULL, 'ft_kd'),
	(3, 'kdtree', true, '{"kdtree.max_leaves": 1}', 'ft_kd'),
	(4, 'lsh', false, '{"lsh.probes": 0, "lsh.candidates": 0}', 'ft_lsh'),
	(5, 'lsh', true, '{"lsh.probes": 1, "lsh.candidates": 16}', 'ft_lsh');
CREATE TABLE ft_filters (fn int, filter text, share text);
INSERT INTO ft_filters VALUES (1, 'sel < 1000', '100%'), (2, 'sel < 100', '10%'), (3, 'sel < 10', '1%'),
	(4, 'sel < 1', '0.1%');
CREATE TABLE ft_limits (ln int, k int);
INSERT INTO ft_limits VALUES (1, 1), (2, 30), (3, 2000), (4, NULL);
CREATE TABLE ft_ops (opn int, op text, suffix text);
INSERT INTO ft_ops VALUES (1, '<->', '_l2'), (2, '<=>', '_cos');

-- modes x operators x filters x limits, the unfiltered streams of the budget modes, the data check
SELECT plan(5 * 2 * 4 * 4 + 2 * 2 + 1);

SELECT ok((SELECT count(*) FROM ft WHERE v IS NOT NULL AND sel < 1) BETWEEN 1 AND 29,
          'the 0.1% filter keeps a few rows, fewer than LIMIT 30');

-- The sort's answers: per operator, query, filter and LIMIT.
CREATE TABLE ft_sort AS
SELECT o.opn, q.qn, f.fn, l.ln, s.ids, s.dists
FROM ft_ops o, ft_query q, ft_filters f, ft_limits l,
     LATERAL pg_temp.knn('ft', o.op, q.q, l.k, 'argsort', NULL, f.filter) s;
-- The budget modes' streams: no filter, no LIMIT.
CREATE TABLE ft_stream AS
SELECT m.mn, o.opn, q.qn, s.ids, s.dists, s.true_dists, s.plan
FROM ft_modes m, ft_ops o, ft_query q,
     LATERAL pg_temp.knn('ft', o.op, q.q, NULL, m.method, m.settings) s
WHERE m.budget;

-- A budget mode's stream, against the sort's every row.
SELECT is(string_agg(nullif(concat_ws('; ',
              nullif(pg_temp.scan_problems(st.ids, st.dists, st.true_dists, st.plan, NULL, m.idx || o.suffix), ''),
              nullif(pg_temp.tail_problems(st.ids, st.dists, s.ids, s.dists), '')), ''),
              ' | ' ORDER BY st.qn), NULL,
          format('%s %s %s, no filter, LIMIT ALL: in order, and every row past the farthest row it missed, as the sort has them',
                 m.method, m.settings, o.op))
FROM ft_stream st
JOIN ft_modes m USING (mn) JOIN ft_ops o USING (opn)
JOIN ft_sort s ON s.opn = st.opn AND s.qn = st.qn AND s.fn = 1 AND s.ln = 4
GROUP BY m.mn, m.method, m.settings, o.opn, o.op
ORDER BY m.mn, o.opn;

-- The matrix.
CREATE FUNCTION pg_temp.check_filtered(m ft_modes, o ft_ops, f ft_filters, l ft_limits) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	qr record;
	a record;
	s record;
	st record;
	want int;
	expect_ids int[];
	p text;
	bad text := '';
	lost int;
BEGIN
	FOR qr IN SELECT * FROM ft_query ORDER BY qn LOOP
		SELECT * INTO a FROM pg_temp.knn('ft', o.op, qr.q, l.k, m.method, m.settings, f.filter);
		SELECT * INTO s FROM ft_sort WHERE opn = o.opn AND qn = qr.qn AND fn = f.fn AND ln = l.ln;
		IF NOT m.budget THEN
			want := coalesce(cardinality(s.ids), 0);
			p := concat_ws('; ', nullif(pg_temp.scan_problems(a.ids, a.dists, a.true_dists, a.plan, want, m.idx || o.suffix), ''),
			               nullif(pg_temp.topk_problems(a.ids, a.dists, s.ids, s.dists, l.k IS NULL), ''));
		ELSE
			-- the stream's qualifying rows, in its order, up to LIMIT
			SELECT * INTO st FROM ft_stream WHERE mn = m.mn AND opn = o.opn AND qn = qr.qn;
			EXECUTE format('SELECT array_agg(u.i ORDER BY u.n) FROM (
			                  SELECT u.i, u.n FROM unnest($1) WITH ORDINALITY u(i, n) JOIN ft ON ft.id = u.i
			                  WHERE %s ORDER BY u.n LIMIT %s) u', f.filter, coalesce(l.k::text, 'ALL'))
				INTO expect_ids USING st.ids;
			want := coalesce(cardinality(expect_ids), 0);
			p := nullif(pg_temp.scan_problems(a.ids, a.dists, a.true_dists, a.plan, want, m.idx || o.suffix), '');
			IF p IS NULL AND a.ids IS DISTINCT FROM expect_ids THEN
				p := 'not the unfiltered stream''s qualifying rows in its order';
			END IF;
			lost := least(coalesce(cardinality(s.ids), 0), coalesce(l.k, 2147483647)) - coalesce(cardinality(a.ids), 0);
			IF lost > 0 THEN
				INSERT INTO ft_lost VALUES (m.mn, o.opn, f.fn, l.ln, qr.qn, lost,
				                            least(coalesce(cardinality(s.ids), 0), coalesce(l.k, 2147483647)));
			END IF;
		END IF;
		IF p IS NOT NULL AND p <> '' THEN
			bad := bad || format('query %s: %s. ', qr.qn, p);
		END IF;
	END LOOP;
	RETURN bad;
END $$;
CREATE TABLE ft_lost (mn int, opn int, fn int, ln int, qn int, lost int, should int);

SET client_min_messages = error;
SELECT is(pg_temp.check_filtered(m, o, f, l), '',
          format('%s %s %s, %s filter, LIMIT %s: %s', m.method, coalesce(m.settings::text, 'exact'), o.op, f.share,
                 coalesce(l.k::text, 'ALL'),
                 CASE WHEN m.budget THEN 'in order, the stream''s qualifying rows up to LIMIT'
                      ELSE 'the sort''s ids and distances, min(LIMIT, qualifying) rows' END))
FROM ft_modes m, ft_ops o, ft_filters f, ft_limits l
ORDER BY m.mn, o.opn, f.fn, l.ln;
SET client_min_messages = warning;

SELECT diag(format('%s %s %s, %s filter, LIMIT %s, query %s: %s of %s qualifying rows lost by the budget''s round',
                   m.method, m.settings, o.op, f.share, coalesce(l.k::text, 'ALL'), x.qn, x.lost, x.should))
FROM ft_lost x JOIN ft_modes m USING (mn) JOIN ft_ops o USING (opn) JOIN ft_filters f USING (fn) JOIN ft_limits l USING (ln)
ORDER BY x.mn, x.opn, x.fn, x.ln, x.qn;
SELECT diag(format('budget modes: %s of %s (mode, operator, filter, LIMIT, query) answers short of min(LIMIT, qualifying rows)',
                   (SELECT count(*) FROM ft_lost), 2 * 2 * 4 * 4 * 2));

SELECT * FROM finish();

DROP FUNCTION pg_temp.check_filtered(ft_modes, ft_ops, ft_filters, ft_limits);
DROP TABLE ft, ft_query, ft_modes, ft_filters, ft_limits, ft_ops, ft_sort, ft_stream, ft_lost;
