"""Statistics as pure functions of arrays: `descriptive` (CI95), `correlation` (ranks, partial
Spearman), `bootstrap`, `multicomp` (Holm, Benjamini–Hochberg), `tests` (Welch). Each formula is
stated where it is computed and tested against an independent implementation. Imports nothing else of
the analysis package."""
