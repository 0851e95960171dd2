
-- ---------------------------------------------------------------------------
-- Several examples: more like these, less like those (0.3). The same text is in the install script and in the
-- 0.2 -> 0.3 upgrade script.
-- ---------------------------------------------------------------------------
