"""Fitting the fan-in of a 100,000-neuron layer: topo's vectorised fits against naive baselines.

Run: ``python benchmarks/bench_fits.py [--repeats N]``. Prints the median time of
``topo.analysis.fits.fit_fan_in`` (all four families, the x_min scan and the AIC
comparison) over several repeats, and two baselines measured in the same run:

- a naive Clauset x_min scan: a Python loop over the candidate x_min values that
  filters and sorts the tail for each one and computes the same approximate exponent
  and KS distance (what a straightforward implementation does);
- ``scipy.stats.lognorm.fit`` (its default three-parameter maximum likelihood, shape,
  location and scale): one family only, no x_min scan, no comparison.

The goal is a full fit in under one second.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import stats

from topo.analysis.fits import fit_fan_in

N_NEURONS = 100_000


def lognormal_fan_in(n: int, n_in: int, mean: float, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(np.exp(np.log(mean) + sigma * rng.standard_normal(n))), 1, n_in).astype(np.int64)


def naive_xmin_scan(values: np.ndarray) -> tuple[float, float]:
    """The textbook scan, one candidate at a time: filter, sort, fit, KS against the samples."""
    x = values[values > 0].astype(np.float64)
    best = (np.inf, np.nan, np.nan)
    for x_min in np.unique(x)[:-1]:
        tail = np.sort(x[x >= x_min])
        n = tail.size
        alpha = 1.0 + n / np.sum(np.log(tail / (x_min - 0.5)))
        model = 1.0 - ((tail + 0.5) / (x_min - 0.5)) ** (1.0 - alpha)
        ecdf = np.searchsorted(tail, tail, side="right") / n
        ks = np.max(np.abs(ecdf - model))
        if ks < best[0]:
            best = (ks, x_min, alpha)
    return best[1], best[2]


def median_time(func, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    repeats = max(1, args.repeats)

    cases = [
        ("typical: in=1000, mean fan-in 60, sigma 0.7", lognormal_fan_in(N_NEURONS, 1000, 60, 0.7, seed=0), True),
        ("wide: in=20000, mean fan-in 2000, sigma 0.8", lognormal_fan_in(N_NEURONS, 20000, 2000, 0.8, seed=1), False),
    ]
    fit_fan_in(cases[0][1][:1000])  # warm scipy's lazy imports outside the timings
    all_met = True
    for label, values, with_naive in cases:
        n_unique = np.unique(values).size
        print(f"{N_NEURONS:,} neurons, {label}: {n_unique} distinct fan-in values, median of {repeats}")
        t_topo, fits = median_time(lambda: fit_fan_in(values), repeats)
        pl = fits.fits["powerlaw"].params
        print(f"  topo fit_fan_in (4 families + x_min scan): {t_topo * 1e3:9.1f} ms   best={fits.best}, "
              f"x_min={pl['x_min']:g}, alpha={pl['alpha']:.3f}")
        t_lognorm, _ = median_time(lambda: stats.lognorm.fit(values), repeats)
        print(f"  baseline scipy.stats.lognorm.fit (1 family): {t_lognorm * 1e3:9.1f} ms   "
              f"ratio {t_lognorm / t_topo:6.1f}x")
        if with_naive:
            t_naive, (x_min, alpha) = median_time(lambda: naive_xmin_scan(values), max(1, min(repeats, 3)))
            print(f"  baseline naive x_min scan (Python loop):      {t_naive * 1e3:9.1f} ms   "
                  f"ratio {t_naive / t_topo:6.1f}x   (x_min={x_min:g}, alpha={alpha:.3f})")
        met = t_topo < 1.0
        all_met &= met
        print(f"  goal < 1 s: {'met' if met else 'NOT met'}")
    print(f"overall: the < 1 s goal is {'met' if all_met else 'NOT met'} for every case")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
