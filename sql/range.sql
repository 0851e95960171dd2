
-- ---------------------------------------------------------------------------
-- Range search: every row within a distance of a query, through the index (0.3). The same text is in the install script and in the
-- 0.2 -> 0.3 upgrade script.
-- ---------------------------------------------------------------------------
