import pytest

from topo import TopoError
from topo.parallel import map_jobs


def square(x):
    return x * x


def fail_on_three(x):
    if x == 3:
        raise TopoError("three is bad")
    return x


def test_in_process_and_local_processes_agree_and_keep_order():
    seen = []
    assert map_jobs(square, range(7), progress=lambda d, t: seen.append((d, t))) == [x * x for x in range(7)]
    assert seen[0] == (0, 7) and seen[-1] == (7, 7)
    assert map_jobs(square, range(7), workers=2) == [x * x for x in range(7)]


def test_job_errors_propagate_and_bad_worker_count():
    with pytest.raises(TopoError, match="three"):
        map_jobs(fail_on_three, range(5), workers=2)
    with pytest.raises(TopoError, match="at least 1"):
        map_jobs(square, [1], workers=0)


def test_dask_cluster_on_loopback():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=":0"
    ) as cluster:
        assert map_jobs(square, range(5), scheduler=cluster.scheduler_address) == [0, 1, 4, 9, 16]


def test_unreachable_scheduler_is_a_topo_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("topo.parallel.SCHEDULER_TIMEOUT", 1.0)
    with pytest.raises(TopoError, match="cannot reach"):
        map_jobs(square, [1], scheduler="tcp://127.0.0.1:9")
