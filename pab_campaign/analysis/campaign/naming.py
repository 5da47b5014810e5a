"""File names an analysis writes, made from names a campaign holds (hyper-parameters, metrics,
campaign ids, filters): one slug, so every name is safe whatever the campaign contains.

A slug keeps ASCII letters, digits and `._=+-`, replaces every other run of characters by `_`, never
starts with a dot (no hidden file, no `..`), and stays at most `MAX_STEM` characters: a longer one
keeps its start and a hash of the whole, so two long names stay distinct.

>>> slug(["model.name", "optimizer.lr"])
'model.name-optimizer.lr'
>>> figure_name("probe/fim_norm@20")
'probe_fim_norm_at20.png'
>>> slug(["../../etc/passwd"])
'etc_passwd'
>>> len(slug(["x" * 1000]))
120
"""
from __future__ import annotations

import hashlib
import re

MAX_STEM = 120
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def file_stem(text: str) -> str:
    """`text` as a safe file-name stem ('all' when nothing of it is left)."""
    stem = _UNSAFE.sub("_", text).lstrip("._").rstrip("_")
    if len(stem) > MAX_STEM:
        digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        stem = f"{stem[:MAX_STEM - 11]}-{digest}"
    return stem or "all"


def slug(parts: list[str]) -> str:
    """`parts` joined by '-' as one safe stem ('all' when empty)."""
    return file_stem("-".join(parts))


def ids_suffix(campaign_ids: list[str] | None) -> str:
    """'' or '_<ids>', the suffix of the files an analysis writes for a `--campaign-id` filter."""
    return f"_{slug(sorted(campaign_ids))}" if campaign_ids else ""


def figure_name(metric: str) -> str:
    """A PNG file name for `metric` (e.g. `probe/fim_norm@20` -> `probe_fim_norm_at20.png`)."""
    return file_stem(metric.replace("@", "_at")) + ".png"
