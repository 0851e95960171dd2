#!/usr/bin/python3
"""Loads a dataset made by build_dataset.py into a database and indexes it.

    tools/load_dataset.py DATASET [--model PATH] [--batch 8] [--no-index]

Connects with the usual PG* environment variables (as a superuser). Steps,
each skipped when already done, so an interrupted load resumes:
  1. the API's roles, tables and functions (web/db/*.sql);
  2. images, names, groups, thumbnails and the queries;
  3. features, extracted inside the database by vgg16_features() in batches,
     one transaction each, with a progress bar and ETA;
  4. the indexes on the features (L2): images_feat_faissflat (exact flat
     scan), images_feat_kdtree (exact k-d tree) and images_feat_lsh
     (hashing, approximate), the last two only where the installed
     imgsearch has their method. Each is built when missing; the kdtree and
     lsh indexes are rebuilt (REINDEX) when this run added features to more
     than a tenth of the rows after they were built (kdtree's leaf boxes
     grow with inserts and prune less; lsh's buckets, the sqrt(rows)
     k-means centroids of its build, fill up and a search's budget covers
     less of them).
With --model, the database's imgsearch.model is set to PATH; features made
with another model are extracted again.

On a coordinator (gallery.images partitioned over postgres_fdw foreign
tables: tools/shards.sh, docs/sharding.md), rows are inserted through it
(each goes to its shard); where every shard has ingest workers, the table is
registered on each shard (imgsearch_ingest_start there) and each shard
extracts its own rows, all at once, while the progress bar reads the
coordinator's imgsearch_sharded_ingest_status (the shards' figures added
up); the coordinator extracts nothing. Where a shard has no ingest workers,
features are extracted on the coordinator (vgg16_features runs where the
UPDATE is evaluated: the coordinator, under its imgsearch.model) and written
to the shards. The indexes are built on each shard; the coordinator has
none. The shards are reached over connections made from their servers'
options and user mappings (host, port, dbname; user, password).
"""
import argparse
import csv
import io
import os
import sys
import time

import psycopg2
import psycopg2.extras
from PIL import Image
from tqdm import tqdm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SQL_FILES = ['roles.sql', 'schema.sql', 'api.sql']
THUMB_SIDE = 200


def thumbnail(data):
    im = Image.open(io.BytesIO(data)).convert('RGB')
    im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, 'JPEG', quality=80)
    return buf.getvalue()


def read_tsv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f, delimiter='\t'))


def apply_sql(conn):
    with conn.cursor() as cur:
        for name in SQL_FILES:
            with open(os.path.join(REPO, 'web', 'db', name)) as f:
                cur.execute(f.read())
    conn.commit()


# libpq options among a postgres_fdw server's and user mapping's options
LIBPQ_OPTIONS = {'host', 'hostaddr', 'port', 'dbname', 'connect_timeout', 'sslmode', 'sslrootcert',
                 'sslcert', 'sslkey', 'user', 'password'}


def shard_connections(conn):
    """Connections to the shards of a coordinator's gallery.images (none on a
    single node), as the coordinator's user mapping for the current user (or
    PUBLIC) says."""
    with conn.cursor() as cur:
        cur.execute("""
            SELECT DISTINCT ON (l.srvname) l.srvname, s.srvoptions, um.umoptions
              FROM gallery.shard_leaves() l
              JOIN pg_foreign_server s ON s.srvname = l.srvname
              LEFT JOIN pg_user_mappings um ON um.srvid = s.oid AND um.usename IN (current_user, 'public')
             ORDER BY l.srvname, um.usename = 'public'""")
        servers = cur.fetchall()
    shards = []
    for name, srv_options, um_options in servers:
        options = dict(o.split('=', 1) for o in (srv_options or []) + (um_options or []))
        shards.append(psycopg2.connect(**{k: v for k, v in options.items() if k in LIBPQ_OPTIONS}))
    return shards


def set_model(conn, path, shards):
    """Points the database at the model; forgets features of another model."""
    path = os.path.abspath(path)
    with conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        db = cur.fetchone()[0]
        cur.execute("ALTER DATABASE %s SET imgsearch.model = %%s" % psycopg2.extensions.quote_ident(db, cur), [path])
    # each shard's ingest workers extract its rows with the same model
    for c in shards:
        with c.cursor() as shard_cur:
            shard_cur.execute("SELECT current_database()")
            shard_db = shard_cur.fetchone()[0]
            shard_cur.execute("ALTER DATABASE %s SET imgsearch.model = %%s"
                              % psycopg2.extensions.quote_ident(shard_db, shard_cur), [path])
        c.commit()
    with conn.cursor() as cur:
        cur.execute("SET imgsearch.model = %s", [path])
        # by content too: a model exported again under the same name is another model
        cur.execute("SELECT sha256 FROM imgsearch_model_info()")
        model = '%s (sha256 %s)' % (path, cur.fetchone()[0])
        cur.execute("SELECT value FROM gallery.settings WHERE key = 'model'")
        row = cur.fetchone()
        if row and row[0] != model:
            print('load_dataset: model changed (%s -> %s): features will be extracted again' % (row[0], model))
            # The indexes keep the old features' dimension (512 for pool, 4096
            # for fc7), kdtree its PCA of them, lsh its centroids and rotation;
            # step 4 builds them again once the new ones are in.
            for c in [conn] + shards:
                with c.cursor() as shard_cur:
                    for name, *_ in INDEXES:
                        shard_cur.execute("DROP INDEX IF EXISTS gallery.%s" % name)
                if c is not conn:
                    c.commit()
            cur.execute("UPDATE gallery.images SET feat = NULL")
        cur.execute("INSERT INTO gallery.settings VALUES ('model', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", [model])
    conn.commit()


def load_images(conn, dataset, batch, sharded=False):
    rows = read_tsv(os.path.join(dataset, 'manifest.tsv'))
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM gallery.images")
        present = {r[0] for r in cur.fetchall()}
    todo = [r for r in rows if int(r['id']) not in present]
    if todo:
        with tqdm(total=len(todo), desc='images', unit='img') as bar:
            for i in range(0, len(todo), batch * 8):
                values = []
                for r in todo[i:i + batch * 8]:
                    with open(os.path.join(dataset, 'images', r['name']), 'rb') as f:
                        data = f.read()
                    values.append((int(r['id']), r['name'], r['group'], int(r['width']), int(r['height']),
                                   psycopg2.Binary(data), psycopg2.Binary(thumbnail(data))))
                with conn.cursor() as cur:
                    psycopg2.extras.execute_values(
                        cur, "INSERT INTO gallery.images (id, name, grp, width, height, img, thumb) "
                             # a coordinator's table has no unique index to name (the shards have)
                             "VALUES %s ON CONFLICT " + ("" if sharded else "(id) ") + "DO NOTHING", values)
                conn.commit()
                bar.update(len(values))
    queries = read_tsv(os.path.join(dataset, 'queries.tsv'))
    with conn.cursor() as cur:
        for q in queries:
            with open(os.path.join(dataset, 'queries', q['name']), 'rb') as f:
                data = f.read()
            box = [int(q[k]) for k in ('x', 'y', 'width', 'height')]
            cur.execute("INSERT INTO gallery.queries VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                        [q['name'], q['group'], psycopg2.Binary(data), box])
    conn.commit()
    print('load_dataset: %d images (%d new), %d queries' % (len(rows), len(todo), len(queries)))


def ingest_available(conn, table):
    """Whether the server's ingest workers can fill table: imgsearch with
    ingest (0.2), its launcher running (shared_preload_libraries), and table a
    plain table (a coordinator's partitioned table of foreign shards is not)."""
    with conn.cursor() as cur:
        cur.execute("""SELECT to_regproc('imgsearch_ingest_start') IS NOT NULL
                          AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'imgsearch ingest launcher')
                          AND (SELECT relkind FROM pg_class WHERE oid = %s::regclass) = 'r'""", [table])
        ok = cur.fetchone()[0]
    conn.commit()
    return ok


def ingest_features(conns, table, remaining, coordinator=None):
    """Registers table with the ingest workers of each server in conns (a
    node, or every shard of a coordinator: each fills its own rows, and the
    coordinator extracts nothing) and shows their progress until nothing is
    pending: a node's imgsearch_ingest_status; on a coordinator (its
    connection), imgsearch_sharded_ingest_status(table), the shards' rows
    added up, over the coordinator's connections to them. Rows that fail are
    reported, not retried."""
    for c in conns:
        with c.cursor() as cur:
            cur.execute("SELECT imgsearch_ingest_start(%s, image => 'img', feature => 'feat')", [table])
        c.commit()
    if coordinator is not None:
        status = [(coordinator, "SELECT pending, failed, last_error FROM imgsearch_sharded_ingest_status(%s)")]
    else:
        status = [(c, "SELECT pending, failed, last_error FROM imgsearch_ingest_status WHERE relid = %s::regclass")
                  for c in conns]
    done = 0
    with tqdm(total=remaining, desc='features', unit='img') as bar:
        while True:
            pending = failed = 0
            last_error = None
            for c, query in status:
                with c.cursor() as cur:
                    cur.execute(query, [table])
                    p, f, e = cur.fetchone()
                c.commit()
                pending, failed, last_error = pending + p, failed + f, e or last_error
            now_done = max(0, remaining - pending)
            bar.update(now_done - done)
            done = now_done
            if pending == 0:
                break
            time.sleep(0.5)
    if failed:
        print('load_dataset: %d images failed (imgsearch_ingest_errors); the last: %s' % (failed, last_error))
    return done - failed


def extract_features(conn, batch, table='gallery.images', keep_registered=True):
    """Fills table.feat (NULL so far) from table.img: by the server's ingest
    workers where it has them, else here, batch images per vgg16_features()
    call; table has an integer key id. Used by make eval too, whose
    collections do not grow: keep_registered=False unregisters the table
    once it is done, and its database's ingest worker leaves (each database
    with a registration keeps one, a max_worker_processes slot)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM %s WHERE feat IS NULL" % table)
        remaining = cur.fetchone()[0]
    conn.commit()
    if remaining == 0:
        return 0
    if ingest_available(conn, table):
        done = ingest_features([conn], table, remaining)
        if not keep_registered:
            with conn.cursor() as cur:
                cur.execute("SELECT imgsearch_ingest_stop(%s)", [table])
            conn.commit()
        return done
    with conn.cursor() as cur:
        # a bulk load queues behind searches at the model workers
        cur.execute("SET imgsearch.model_priority = 'background'")
    conn.commit()
    total = 0
    with tqdm(total=remaining, desc='features', unit='img') as bar:
        while True:
            with conn.cursor() as cur:
                # One batch per transaction: an interrupted run keeps what it did.
                cur.execute("""
                    WITH b AS (SELECT id, img FROM {t} WHERE feat IS NULL ORDER BY id LIMIT %s),
                         f AS (SELECT array_agg(id ORDER BY id) AS ids,
                                      vgg16_features(array_agg(img ORDER BY id)) AS feats FROM b)
                    UPDATE {t} i SET feat = u.feat
                      FROM f, unnest(f.ids, f.feats) AS u(id, feat)
                     WHERE i.id = u.id""".format(t=table), [batch])
                done = cur.rowcount
            conn.commit()
            if done <= 0:
                break
            total += done
            bar.update(done)
    return total


# (index name, access method, what goes in USING ... (), REINDEX when this
# fraction of the rows got new features since), built in this order. kdtree
# and lsh are built after the features are in: built on an empty table,
# kdtree's PCA and leaf boxes and lsh's centroids would learn nothing (lsh
# would have no hash at all), and every search would read every vector
# until a REINDEX.
INDEXES = [
    ('images_feat_faissflat', 'faissflat', 'feat imgfeat_l2_ops', None),
    ('images_feat_kdtree', 'kdtree', 'feat imgfeat_l2_ops', 0.1),
    ('images_feat_lsh', 'lsh', 'feat imgfeat_l2_ops', 0.1),
]


def build_indexes(conn, new_features, rows):
    """The indexes on conn's gallery.images: a node's, or a shard's. rows:
    the features in the whole collection (on a coordinator, of all shards:
    hashing spreads the new ones evenly, so the share is each shard's)."""
    with conn.cursor() as cur:
        for name, am, columns, rebuild_after in INDEXES:
            cur.execute("SELECT 1 FROM pg_am WHERE amname = %s", [am])
            if cur.fetchone() is None:
                print('load_dataset: this imgsearch has no %s method; no %s index' % (am, am), flush=True)
                continue
            cur.execute("SELECT 1 FROM pg_indexes WHERE schemaname = 'gallery' AND indexname = %s", [name])
            if cur.fetchone() is None:
                print('load_dataset: building the %s index' % am, flush=True)
                cur.execute("CREATE INDEX %s ON gallery.images USING %s (%s)" % (name, am, columns))
            elif rebuild_after is not None and new_features > rebuild_after * rows:
                print('load_dataset: this run added %d of the %d features after the %s index was built: REINDEX'
                      % (new_features, rows, am), flush=True)
                cur.execute("REINDEX INDEX gallery.%s" % name)
            conn.commit()   # each index in its own transaction: one that fails leaves the others
        cur.execute("ANALYZE gallery.images")
    conn.commit()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('dataset')
    ap.add_argument('--model', help='TorchScript model file; sets imgsearch.model for the database')
    ap.add_argument('--batch', type=int, default=8, help='images per vgg16_features() call')
    ap.add_argument('--no-index', action='store_true', help='do not build the indexes (faissflat, kdtree, lsh)')
    args = ap.parse_args()

    conn = psycopg2.connect('')
    apply_sql(conn)
    shards = shard_connections(conn)
    if shards:
        print('load_dataset: a coordinator over %d shards' % len(shards))
    if args.model:
        set_model(conn, args.model, shards)
    load_images(conn, args.dataset, args.batch, sharded=bool(shards))
    if shards and all(ingest_available(c, 'gallery.images') for c in shards):
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM gallery.images WHERE feat IS NULL")
            remaining = cur.fetchone()[0]
            # the shards' progress, added up on the coordinator (an older
            # imgsearch there: read from each shard)
            cur.execute("SELECT to_regproc('imgsearch_sharded_ingest_status') IS NOT NULL")
            summed = cur.fetchone()[0]
        conn.commit()
        new_features = (ingest_features(shards, 'gallery.images', remaining, coordinator=conn if summed else None)
                        if remaining else 0)
    else:
        new_features = extract_features(conn, args.batch)
    if not args.no_index:
        with conn.cursor() as cur:
            cur.execute("SELECT count(feat) FROM gallery.images")
            rows = cur.fetchone()[0]
        conn.commit()
        for shard in shards or [conn]:
            build_indexes(shard, new_features, rows)
        if shards:
            with conn.cursor() as cur:
                cur.execute("ANALYZE gallery.images")
            conn.commit()
    for c in shards + [conn]:
        c.close()
    print('load_dataset: done')


if __name__ == '__main__':
    sys.exit(main())
