"""Analysis: read a campaign, summarise it, test metrics, find phases, compare algorithms, show it.

Rooms, each a sub-package, from the top down (each imports only rooms below it; an import-linter
`layers` contract checks it):

- `page/`: the campaign on one HTML page (page model, one builder per section, rendering);
- `summary/`, `mbe/`, `phases/`, `modeldiff/`: the analyses, independent of each other: grouped
  reports and one run's process summary; the MBE audit; latent training phases (HMM); ModelDiff's
  residual PCA over precomputed scores;
- `plots/`: figure style and the learning-curve figures;
- `campaign/`: opening a campaign through its compacted index, where outputs go, merging, file names;
- `stats/`: statistics as pure functions of arrays.

It only reads what training wrote, through `pab_campaign.store`, and writes its own outputs under a
campaign's `summary/`, the per-user cache or the folder a user names. It never imports torch or
`pab_campaign.training`, so the command line starts fast; work that needs checkpoints lives in
`pab_campaign.workflows`.
"""
