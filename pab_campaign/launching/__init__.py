"""Launching: how many runs go at once (`plan`), the warm fork server that starts them (`forkserver`)
and the sweep's closing status table (`sweep_status`). The Hydra launcher classes themselves live in
`hydra_plugins.pab_campaign_launchers` (where Hydra discovers them) and stay thin.

Nothing here imports torch at import time (the fork server imports what it is told to preload), and
nothing here imports `pab_campaign.training` or `pab_campaign.analysis`; it reads run records
through `pab_campaign.store` alone.
"""
