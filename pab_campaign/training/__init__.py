"""Training: one run from its config (`run`), the data sets (`data`), models, optimisers, probes
(`probes`, the per-epoch measurements), checkpoints and resume, and `tracker` for users' own loops.

This is the only package that imports torch. It writes run directories through `pab_campaign.store`
and never imports `pab_campaign.analysis` or `pab_campaign.launching`.
"""
