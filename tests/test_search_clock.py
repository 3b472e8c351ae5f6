"""The overhead accounting of the search benchmark: time inside Faiss calls vs a strategy's wall time.

* FaissClock on a hand-driven clock: literal inside / wall / outside values, nested calls counted once, a call
  that raises still counted;
* run_strategy routes every Faiss call of an IVF strategy (train, quantizer search, add, search) through the
  clock and nothing else: with a fake clock that only those calls advance, inside == wall == their sum;
* run_strategy gives the same metrics as build + evaluate, with an outside share in [0, 1).
"""
import numpy as np
import pytest

from rfcn_face.search import FaissClock, IndexSpec, evaluate, make_search_split, run_strategy


class Ticks:
    """A clock the test moves by hand."""
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_clock_literal():
    now = Ticks()
    clock = FaissClock(now)

    def faiss_like(seconds, result):
        now.t += seconds
        return result

    with clock:                        # t = 0
        now.t += 1.0                   # evaluator's own work: 1 s
        assert clock.call(faiss_like, 3.0, "a") == "a"
        now.t += 0.5                   # 0.5 s more outside
        clock.call(faiss_like, seconds=1.5, result=None)
    assert (clock.wall, clock.inside, clock.outside) == (6.0, 4.5, 1.5)
    assert clock.outside_fraction == 0.25
    with clock:                        # a second block accumulates: 2 s, all outside
        now.t += 2.0
    assert (clock.wall, clock.inside, clock.outside_fraction) == (8.0, 4.5, 3.5 / 8.0)


def test_clock_nested_once_and_raising_counted():
    now = Ticks()
    clock = FaissClock(now)

    def inner():
        now.t += 2.0

    def outer():
        now.t += 1.0
        clock.call(inner)              # inside an outer call: not counted a second time

    def boom():
        now.t += 4.0
        raise RuntimeError("faiss error")

    with clock:
        clock.call(outer)
        with pytest.raises(RuntimeError):
            clock.call(boom)
        clock.call(inner)              # the depth was reset after the exception
    assert (clock.wall, clock.inside) == (9.0, 9.0)
    assert clock.outside_fraction == 0.0
    assert np.isnan(FaissClock(now).outside_fraction)


@pytest.fixture(scope="module")
def data():
    return make_search_split(120, 10, 80, 20, probes_per_id=2, dim=32, spread=0.5, seed=3)


def test_run_strategy_routes_every_faiss_call(data, monkeypatch):
    faiss = pytest.importorskip("faiss")
    import faiss.contrib.ivf_tools as ivf_tools
    now = Ticks()

    def slow(fn, seconds):
        def wrapped(*args, **kwargs):
            now.t += seconds
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(faiss.IndexIVFFlat, "train", slow(faiss.IndexIVFFlat.train, 10.0))
    monkeypatch.setattr(faiss.IndexFlatL2, "search", slow(faiss.IndexFlatL2.search, 20.0))   # list assignment
    monkeypatch.setattr(ivf_tools, "add_preassigned", slow(ivf_tools.add_preassigned, 30.0))
    monkeypatch.setattr(faiss.IndexIVFFlat, "search", slow(faiss.IndexIVFFlat.search, 40.0))
    clock = FaissClock(now)
    spec = IndexSpec("ivfflat", nlist=8, nprobe=8)
    res, built = run_strategy(spec, data["base"], data["base_labels"], data["probe"], data["probe_labels"],
                              clock=clock)
    assert (clock.wall, clock.inside) == (100.0, 100.0)
    assert res.outside_faiss == 0.0 and built.index.ntotal == 1200
    # a shared quantizer and assignment: no training of the coarse k-means, no assignment search
    clock2 = FaissClock(now)
    res2, _ = run_strategy(spec, data["base"], data["base_labels"], data["probe"], data["probe_labels"],
                           built.quantizer, built.assign, clock=clock2)
    assert (clock2.wall, clock2.inside) == (70.0, 70.0) and np.array_equal(res2.neighbours, res.neighbours)


def test_run_strategy_equals_build_and_evaluate(data):
    pytest.importorskip("faiss")
    args = (data["base"], data["base_labels"], data["probe"], data["probe_labels"])
    for spec in (IndexSpec("flat"), IndexSpec("ivfpq", nlist=8, nprobe=2, m=8, nbits=6)):
        ref = evaluate(*args, spec)
        res, built = run_strategy(spec, *args, exact_ids=evaluate(*args, IndexSpec("flat")).neighbours)
        assert (res.top1, res.open_set_accuracy, res.coverage_at_p95) == (ref.top1, ref.open_set_accuracy,
                                                                          ref.coverage_at_p95)
        assert np.array_equal(res.neighbours, ref.neighbours)
        assert 0.0 <= res.outside_faiss < 1.0
        present = np.isin(data["probe_labels"], data["base_labels"])
        assert res.recall_at_1_present == np.mean((ref.neighbours == evaluate(*args).neighbours)[present])
