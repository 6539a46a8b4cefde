"""topo.values: the one finite-number coercion and the one natural order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topo.values import finite_float, natural_key, natural_sorted


@pytest.mark.parametrize(
    "value, expected",
    [(1, 1.0), (0.25, 0.25), ("0.5", 0.5), (np.float32(2.5), 2.5), (np.int64(3), 3.0), (True, 1.0)],
)
def test_finite_numbers_become_floats(value, expected):
    result = finite_float(value)
    assert result == expected and type(result) is float


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf, "x", "", [], {}, np.float64("nan")])
def test_what_is_not_a_finite_number_becomes_the_default(value):
    assert finite_float(value) is None
    assert math.isnan(finite_float(value, math.nan))


def test_natural_order_takes_digit_runs_by_value_and_ignores_case():
    names = ["layers.10", "layers.2", "Layers.1", "fc", "layers.2.b", "layers.2.a"]
    assert natural_sorted(names) == ["fc", "Layers.1", "layers.2", "layers.2.a", "layers.2.b", "layers.10"]
    assert natural_key("w10") > natural_key("w9")
