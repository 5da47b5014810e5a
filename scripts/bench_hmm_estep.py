"""Benchmark of the batched E-step and decoding of `states` against hmmlearn's own, in one process.

    PYTHONPATH=. python scripts/bench_hmm_estep.py                        # 20,000 runs x 100 epochs x 3 features, K = 8
    PYTHONPATH=. python scripts/bench_hmm_estep.py --runs 5000 --features 14 --states 7

Draws runs of equal length from a standard normal (what the E-step costs does not depend on the
values), makes a diagonal GaussianHMM with hmmlearn's own initialisation on a few of them, then times
alternately, `--repeats` times each: hmmlearn's E-step (`_do_estep`, one sequence at a time) against
`batched.estep`, and hmmlearn's `predict` plus `predict_proba` against `batched.decode`. Prints the
medians, their ratio, and the largest difference of the statistics (they must agree to rounding).
BLAS runs on one thread, as in `states`. The machine's load average is printed before and after.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from hmmlearn.hmm import GaussianHMM
from threadpoolctl import threadpool_limits

from pab_campaign.analysis.phases import batched


def _median_seconds(calls: list, repeats: int) -> list[float]:
    """Median wall time of each of `calls`, run alternately `repeats` times."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for position, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[position].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--states", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.runs * args.epochs, args.features))
    lengths = np.full(args.runs, args.epochs)
    with threadpool_limits(1):
        model = GaussianHMM(args.states, "diag", random_state=0, n_iter=2, implementation="scaling")
        model.fit(x[: 50 * args.epochs], lengths[:50])
        theirs, _ = model._do_estep(x, lengths)
        ours, _ = batched.estep(model, x, lengths)
        worst = max(float(np.max(np.abs(ours[k] - theirs[k]) / (np.abs(theirs[k]) + 1e-12))) for k in theirs)
        estep = _median_seconds([lambda: model._do_estep(x, lengths), lambda: batched.estep(model, x, lengths)],
                                args.repeats)
        model.implementation = "log"
        decode = _median_seconds([lambda: (model.predict(x, lengths), model.predict_proba(x, lengths)),
                                  lambda: batched.decode(model, x, lengths)], args.repeats)
    print(f"{args.runs} runs x {args.epochs} epochs x {args.features} features, K = {args.states}, "
          f"medians of {args.repeats}")
    print(f"E-step: hmmlearn {estep[0]:.2f} s, batched {estep[1]:.2f} s: {estep[1] / estep[0]:.2f}x "
          f"(largest relative difference of the statistics {worst:.1e})")
    print(f"decode: hmmlearn {decode[0]:.2f} s, batched {decode[1]:.2f} s: {decode[1] / decode[0]:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
