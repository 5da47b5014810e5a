"""Summaries of runs: `report` (grouped mean ± CI95 and learning curves over a campaign),
`trajectory` (one run's process summary, pabkit's definitions), `recommendations` (pabkit's rules)."""
