import math

import numpy as np
import pytest

from topo import Topology
from topo.analysis.degree import coefficient_of_variation, degree_summary, fan_in, fan_in_cv, fan_out, layer_degrees

# A hand-worked network: 4 inputs -> 3 hidden -> 2 outputs.
#   hidden 0 <- inputs 0, 1, 2     hidden 1 <- input 0     hidden 2 <- nothing
#   output 0 <- hidden 0, 1        output 1 <- hidden 0
# input 3 feeds nothing; hidden 2 has no inputs and no outputs.
M1 = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
M2 = np.array([[1, 1, 0], [1, 0, 0]])


@pytest.fixture
def hand():
    return Topology.from_masks([M1, M2], names=["h", "out"])


def test_fan_in_and_fan_out(hand):
    assert fan_in(hand, "h").tolist() == [3, 1, 0]
    assert fan_out(hand, 0).tolist() == [2, 1, 1, 0]
    assert fan_in(hand, "out").tolist() == [2, 1]
    assert fan_out(hand, "out").tolist() == [2, 1, 0]


def test_layer_figures_by_hand(hand):
    h, out = layer_degrees(hand)
    assert (h.nnz, h.n_in, h.n_out) == (4, 4, 3)
    assert h.density == pytest.approx(4 / 12)
    assert h.fan_in_mean == pytest.approx(4 / 3)
    # population std of [3, 1, 0]: mean 4/3, variance (25/9 + 1/9 + 16/9) / 3 = 14/9
    assert h.fan_in_std == pytest.approx(math.sqrt(14 / 9))
    assert h.fan_in_cv == pytest.approx(math.sqrt(14 / 9) / (4 / 3))
    assert (h.fan_in_min, h.fan_in_max) == (0, 3)
    assert h.no_inputs == 1 and h.no_outputs == 1
    assert out.fan_in_cv == pytest.approx(0.5 / 1.5)
    assert out.no_inputs == 0 and out.no_outputs == 1
    assert fan_in_cv(hand) == pytest.approx([h.fan_in_cv, out.fan_in_cv])


def test_network_summary(hand):
    summary = degree_summary(hand)
    assert summary.n_layers == 2
    assert summary.n_neurons == 4 + 3 + 2
    assert summary.nnz == 7 and summary.size == 12 + 6
    assert summary.no_inputs == 1 and summary.no_outputs == 2
    assert summary.fan_in_cv_max == pytest.approx(math.sqrt(14 / 9) / (4 / 3))


def test_cv_of_empty_or_zero_mean_is_nan():
    assert math.isnan(coefficient_of_variation(np.array([])))
    assert math.isnan(coefficient_of_variation(np.zeros(4)))
    assert coefficient_of_variation(np.array([2, 2, 2])) == 0.0


def test_public_api_reexports_analysis_lazily():
    import subprocess
    import sys

    code = (
        "import sys, topo\n"
        "assert 'scipy.stats' not in sys.modules\n"
        "from topo.analysis.distance import nnstd\n"
        "assert topo.nnstd is nnstd and topo.analysis.nnstd is nnstd\n"
        "from topo.analysis.fits import fit_fan_in\n"
        "assert topo.fit_fan_in is fit_fan_in\n"
        "import topo.analysis.drift\n"
        "assert callable(topo.analysis.drift.drift)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
