"""Latent training phases: `hmm` fits Gaussian HMMs over per-run z-scored metrics and chooses K,
`interpretation` says what the phases mean (descriptions, transitions, detours, hyper-parameters),
`report` runs both over a campaign and writes the files, `figures` draws them."""
