"""Analysis: read a campaign (`campaign`, over the compacted `index`), summarise it (`report`,
`trajectory_summary`, `recommendations`), test metrics (`stats`, `audit`), merge campaigns (`merge`),
find latent training phases (`states` fits them, `phases` says what they mean, `states_report` runs
both over a campaign) and draw figures (`plots`).

It only reads what training wrote, through `pab_campaign.store`, and writes its own outputs under a
campaign's `summary/`. It never imports torch or `pab_campaign.training`, so the command line starts
fast; analyses that need checkpoints live in training and are called lazily by the command line.
"""
