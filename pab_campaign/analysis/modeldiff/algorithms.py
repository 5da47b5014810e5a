"""Two learning algorithms of a campaign, each the completed runs whose hyper-parameters match a set of
`KEY=VALUE` filters (`--a dataset.augment=true --b dataset.augment=false`), for ModelDiff.

Values are read as JSON where they parse (`null`, `true`, `0.1`, `[128, 64]`), else as text; numbers
compare by value and list-valued hyper-parameters (stored as JSON text) by their items. A key a run
does not record (an option added later, left out while off) reads as null.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pab_campaign.analysis.campaign.naming import file_stem
from pab_campaign.errors import CampaignError, PabError
from pab_campaign.store import RunRecord, RunStatus, iter_run_dirs, read_run_json

MIN_RUNS = 2


def _value(text: Any) -> Any:
    """A filter's or a hyper-parameter's value as data: JSON when it parses, else the text."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _same(recorded: Any, wanted: Any) -> bool:
    recorded, wanted = _value(recorded), _value(wanted)
    numbers = [isinstance(v, (int, float)) and not isinstance(v, bool) for v in (recorded, wanted)]
    if all(numbers):
        return math.isclose(float(recorded), float(wanted), rel_tol=1e-9, abs_tol=0.0)
    if any(numbers):
        return False
    return recorded == wanted


@dataclass(frozen=True)
class Filter:
    """`key` (a dotted hyper-parameter) must equal `value` (parsed as JSON, else text)."""

    key: str
    value: Any

    @classmethod
    def parse(cls, text: str, option: str) -> Filter:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise CampaignError(f"{option} {text!r} is not KEY=VALUE; write e.g. {option} dataset.augment=true")
        return cls(key.strip(), _value(value.strip()))

    def matches(self, record: RunRecord) -> bool:
        return _same(record.hparams.get(self.key), self.value)

    def __str__(self) -> str:
        return f"{self.key}={json.dumps(self.value) if not isinstance(self.value, str) else self.value}"


@dataclass(frozen=True)
class Algorithms:
    """The runs of algorithm A and of B (completed, sorted by run id), and their filters."""

    a: list[RunRecord]
    b: list[RunRecord]
    a_filters: list[Filter]
    b_filters: list[Filter]

    @property
    def name(self) -> str:
        """`<a>_vs_<b>`: each side its filters joined by '+', as one safe file-name stem
        (`naming.file_stem`: a long one keeps its start and a hash of the whole)."""
        def side(filters: list[Filter]) -> str:
            return "+".join(str(f) for f in filters)
        return file_stem(f"{side(self.a_filters)}_vs_{side(self.b_filters)}")

    def describe(self, which: str) -> str:
        filters = self.a_filters if which == "A" else self.b_filters
        return " ".join(str(f) for f in filters)


def read_records(campaign: Path, campaign_ids: list[str] | None = None) -> list[RunRecord]:
    """The readable run records of `campaign` (of `campaign_ids` only, when given), by run id; reads
    only, so a command that refuses its input leaves the campaign untouched."""
    campaign = Path(campaign)
    if not (campaign / "runs").is_dir():
        raise CampaignError(f"{campaign} is not a campaign (no runs/ directory); pass the directory a sweep wrote, "
                            "e.g. outputs/modeldiff_digits")
    records = []
    for directory in iter_run_dirs(campaign):
        try:
            records.append(read_run_json(directory))
        except PabError:
            continue
    if campaign_ids:
        present = sorted({r.campaign for r in records if r.campaign})
        records = [r for r in records if r.campaign in campaign_ids]
        if not records:
            raise CampaignError(f"no run of campaign {', '.join(campaign_ids)} in {campaign}; its runs belong to: "
                                f"{', '.join(present) or 'none'}")
    return records


def _known_values(records: Iterable[RunRecord], key: str) -> str:
    values = sorted({json.dumps(_value(r.hparams.get(key))) for r in records})
    return ", ".join(values[:12])


def select_algorithms(records: list[RunRecord], a_texts: list[str], b_texts: list[str]) -> Algorithms:
    """The completed runs of A and of B; CampaignError (one line naming the filter and the fix) when
    a filter names no hyper-parameter of the campaign, matches no run, a run matches both, or a
    side has fewer than MIN_RUNS runs."""
    sides = {"--a": [Filter.parse(t, "--a") for t in a_texts], "--b": [Filter.parse(t, "--b") for t in b_texts]}
    keys = {key for record in records for key in record.hparams}
    done = [r for r in records if r.status == RunStatus.COMPLETED]
    chosen: dict[str, list[RunRecord]] = {}
    for option, filters in sides.items():
        for item in filters:
            if item.key not in keys:
                raise CampaignError(f"{option} {item}: no run of this campaign has the hyper-parameter '{item.key}'; "
                                    "`pab-campaign properties CAMPAIGN_DIR` lists them")
        chosen[option] = [r for r in done if all(f.matches(r) for f in filters)]
        if not chosen[option]:
            first = filters[0]
            raise CampaignError(f"{option} {' '.join(map(str, filters))} matches no completed run; "
                                f"{first.key} takes {_known_values(done, first.key)} in this campaign")
    both = sorted({r.run_id for r in chosen["--a"]} & {r.run_id for r in chosen["--b"]})
    if both:
        raise CampaignError(f"runs {', '.join(both[:4])} match both --a and --b; give filters that split the runs "
                            "into two disjoint algorithms")
    for option, runs in chosen.items():
        if len(runs) < MIN_RUNS:
            raise CampaignError(f"{option} matches {len(runs)} completed run ({runs[0].run_id}); ModelDiff needs at "
                                f"least {MIN_RUNS} runs (seeds) per algorithm")
    return Algorithms(chosen["--a"], chosen["--b"], sides["--a"], sides["--b"])
