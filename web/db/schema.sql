-- Data of the demo and of the API tests: outside the api schema, so that
-- nothing here is reachable over HTTP. Safe to run again.
CREATE EXTENSION IF NOT EXISTS imgsearch;
CREATE SCHEMA IF NOT EXISTS gallery;

CREATE TABLE IF NOT EXISTS gallery.images (
	id     bigint PRIMARY KEY,          -- position in the dataset manifest
	name   text NOT NULL UNIQUE,        -- file name in the dataset
	grp    text NOT NULL,               -- source photograph: the ground-truth group
	width  int NOT NULL,
	height int NOT NULL,
	img    bytea NOT NULL,              -- the encoded image as stored in the dataset
	thumb  bytea NOT NULL,              -- small JPEG for result grids
	feat   imgfeat                      -- NULL until the loader extracted it
);

-- Paris6k-style queries: a crop of a view, with the box of the object.
CREATE TABLE IF NOT EXISTS gallery.queries (
	name text PRIMARY KEY,
	grp  text NOT NULL,
	img  bytea NOT NULL,
	box  int[] NOT NULL                 -- x, y, width, height in img's pixels
);

-- What the loader needs to remember (e.g. which model made the features).
CREATE TABLE IF NOT EXISTS gallery.settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);
