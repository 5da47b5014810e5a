"""A campaign as the analyses see it: `campaign` opens it (runs, metrics, properties) through the
compacted `index`, `workspace` says where outputs go (the campaign's `summary/`, else the per-user
cache), `merge` copies runs between campaigns, `naming` makes every file name. Imports `stats` at most."""
