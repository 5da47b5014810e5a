"""The Hydra configuration shipped with the package: `config.yaml` and one folder per config group.

Found through `importlib.resources`, so a wheel install composes it from any working directory; a
user adds configs of their own beside these with `python -m pab_campaign --config-dir DIR`.
"""
