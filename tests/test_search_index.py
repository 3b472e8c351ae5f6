"""Index strategies against exact search.

What is tested precisely:
* flat == numpy brute force (ids where distances are not tied, distances to 1e-4);
* ivfflat with nprobe = nlist == flat exactly (same neighbour ids for top-5, same distances to 1e-5):
  scanning every list with exact L2 is exhaustive search;
* ivfpq with nprobe = nlist and exact re-ranking (rerank=24 -> a shortlist of 24 PQ candidates, twice the 12
  images of an identity, re-ranked on the original vectors) == flat top-1 neighbour *id* on well-separated
  synthetic identities (spread 0.5: same-identity squared distance ~0.4, other identities ~2), for every probe
  of a present identity (absent identities have no cluster: there we check only that returned distances are exact L2);
* ivfpq without re-ranking (the paper's cpu_search_2), nprobe = nlist: top-1 *identity* == flat's on
  well-separated identities (PQ distances are approximate, so the neighbour id may differ within one identity);
* ivfflat with nprobe < nlist: top-1 identity accuracy can only be <= flat's recall of the exact neighbour.
"""
import numpy as np
import pytest

pytest.importorskip("faiss")

from rfcn_face.search import IndexSpec, build_index, evaluate, make_search_split  # noqa: E402
from rfcn_face.search.index import gpu_count  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_search_split(300, 12, 200, 50, probes_per_id=2, dim=64, spread=0.5, seed=5)


def _search(spec, base, q, k=1):
    index, _ = build_index(spec, base)
    return index.search(q, k)


def test_flat_equals_numpy(data):
    base, q = data["base"], data["probe"]
    D, I = _search(IndexSpec("flat"), base, q, 3)
    d2 = ((q[:, None, :].astype(np.float64) - base[None].astype(np.float64)) ** 2).sum(-1)
    ref = np.argsort(d2, axis=1, kind="stable")[:, :3]
    np.testing.assert_allclose(D, np.take_along_axis(d2, ref, 1), atol=1e-4)
    assert np.array_equal(I[:, 0], ref[:, 0])


def test_ivfflat_full_probe_equals_flat(data):
    base, q = data["base"], data["probe"]
    Df, If = _search(IndexSpec("flat"), base, q, 5)
    Di, Ii = _search(IndexSpec("ivfflat", nlist=16, nprobe=16), base, q, 5)
    assert np.array_equal(Ii, If)
    np.testing.assert_allclose(Di, Df, atol=1e-5)


def test_ivfpq_full_probe_with_rerank_equals_flat(data):
    base, q = data["base"], data["probe"]
    _, If = _search(IndexSpec("flat"), base, q)
    Dr, Ip = _search(IndexSpec("ivfpq", nlist=16, nprobe=16, m=8, nbits=6, rerank=24), base, q)
    present = np.isin(data["probe_labels"], data["base_labels"])
    assert np.array_equal(Ip[present, 0], If[present, 0])
    # absent identities have no cluster: all base images are ~equally far, so the exact neighbour need not
    # be in a PQ shortlist; there we check the returned distances are exact L2 (re-ranked on the originals)
    # and never below the exact nearest distance
    Dp = ((q - base[Ip[:, 0]]) ** 2).sum(1)
    Df = ((q - base[If[:, 0]]) ** 2).sum(1)
    np.testing.assert_allclose(Dr[:, 0], Dp, atol=1e-5)
    assert np.all(Dp >= Df - 1e-5)


@pytest.mark.parametrize("strategy,extra", [("ivfflat", {}), ("ivfpq", {"m": 8, "nbits": 6}),
                                            ("ivfpq", {"m": 8, "nbits": 6, "rerank": 4})])
def test_top1_identity_equals_exact_when_all_lists_probed(data, strategy, extra):
    args = (data["base"], data["base_labels"], data["probe"], data["probe_labels"])
    exact = evaluate(*args, IndexSpec("flat"))
    approx = evaluate(*args, IndexSpec(strategy, nlist=16, nprobe=16, **extra))
    assert approx.top1 == exact.top1 and exact.top1 > 0.95
    assert approx.n_present == 400 and approx.n_absent == 100


def test_partial_probe_can_only_lose(data):
    args = (data["base"], data["base_labels"], data["probe"], data["probe_labels"])
    base, q = data["base"], data["probe"]
    _, If = _search(IndexSpec("flat"), base, q)
    _, Ii = _search(IndexSpec("ivfflat", nlist=32, nprobe=1), base, q)
    recall = np.mean(Ii[:, 0] == If[:, 0])
    assert recall < 1.0  # one list of 32 misses some exact neighbours on this data
    r = evaluate(*args, IndexSpec("ivfflat", nlist=32, nprobe=1))
    assert 0 < r.ms_per_query and r.build_s > 0 and r.top1 <= evaluate(*args, IndexSpec("flat")).top1


def test_bad_specs_are_user_errors(data):
    with pytest.raises(ValueError, match="strategy"):
        IndexSpec("hnsw")
    with pytest.raises(ValueError, match="nlist"):
        build_index(IndexSpec("ivfflat", nlist=10_000), data["base"])
    with pytest.raises(ValueError, match="divide"):
        build_index(IndexSpec("ivfpq", nlist=4, m=7), data["base"])
    if gpu_count() == 0:
        with pytest.raises(ValueError, match="GPU"):
            build_index(IndexSpec("flat", device="gpu"), data["base"])


# ------------------------------------------------------------------------------------------------ training sample
def test_training_sample_size_and_rows(data):
    from rfcn_face.search import training_sample
    base = data["base"]                                                  # 3,600 x 64
    s = training_sample(IndexSpec("ivfflat", nlist=16, train_per_list=40), base)
    assert s.shape == (640, 64)
    rows = {r.tobytes() for r in base}
    assert all(r.tobytes() in rows for r in s) and len({r.tobytes() for r in s}) == 640   # distinct base rows
    np.testing.assert_array_equal(s, training_sample(IndexSpec("ivfflat", nlist=16, train_per_list=40), base))
    # PQ codebooks need their own sample: per PQ centroid when there are more centroids than lists
    assert len(training_sample(IndexSpec("ivfpq", nlist=16, nbits=6, train_per_list=40), base)) == 40 * 64
    assert training_sample(IndexSpec("ivfpq", nlist=16, nbits=8, train_per_list=40), base) is base   # > n: all


def _assert_same_as_plain_faiss(built, raw, spec, base, q):
    """``raw`` (a plain Faiss index with the spec's k-means settings) trained on the spec's sample, probed as the
    spec says and filled with ``base`` answers ``q`` exactly as ``built`` does."""
    from rfcn_face.search import training_sample
    raw.train(training_sample(spec, base))
    raw.nprobe = spec.nprobe
    raw.add(base)
    D1, I1 = built.index.search(q, 3)
    D2, I2 = raw.search(q, 3)
    assert np.array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)


def test_sample_trained_build_equals_raw_faiss(data):
    """build(): the sample-trained IVF filled through the kept list assignment == the same index built with plain
    Faiss calls (train on that sample, add) — same neighbours, same distances."""
    import faiss
    from rfcn_face.search import build
    base, q = data["base"], data["probe"]
    spec = IndexSpec("ivfpq", nlist=16, nprobe=4, m=8, nbits=6, train_per_list=20)
    b = build(spec, base)
    assert b.train_n == 20 * 64 and b.train_s > 0 and len(b.assign) == len(base)
    raw = faiss.IndexIVFPQ(faiss.IndexFlatL2(64), 64, 16, 8, 6)
    raw.cp.seed = raw.pq.cp.seed = spec.seed
    _assert_same_as_plain_faiss(b, raw, spec, base, q)


def test_shared_quantizer_and_assignment(data):
    """An IVF index built on another's trained quantizer and list assignment holds the same lists as that one
    (same search answers); IVF-PQ on the shared quantizer still matches exact search when every list is probed
    and a shortlist is re-ranked."""
    from rfcn_face.search import build
    base, q = data["base"], data["probe"]
    a = build(IndexSpec("ivfflat", nlist=16, nprobe=3), base)
    b = build(IndexSpec("ivfflat", nlist=16, nprobe=3), base, quantizer=a.quantizer, assign=a.assign)
    assert b.train_n == 0                                                # nothing left to train
    Da, Ia = a.index.search(q, 5)
    Db, Ib = b.index.search(q, 5)
    assert np.array_equal(Ia, Ib)
    np.testing.assert_array_equal(Da, Db)
    pq = build(IndexSpec("ivfpq", nlist=16, nprobe=16, m=8, nbits=6, rerank=24), base, a.quantizer, a.assign)
    _, If = _search(IndexSpec("flat"), base, q)
    present = np.isin(data["probe_labels"], data["base_labels"])
    assert np.array_equal(pq.index.search(q, 1)[1][present, 0], If[present, 0])
    with pytest.raises(ValueError, match="centroids"):
        build(IndexSpec("ivfflat", nlist=8), base, quantizer=a.quantizer)


def test_index_bytes_hand_counted(data):
    """Bytes of the index's arrays: flat n*d*4; IVF-Flat n*(d*4 + 8 id bytes) + centroids; IVF-PQ n*(code + 8)
    with code = m * nbits / 8 bytes (8 x 6 bits = 6), + centroids + PQ codebooks (d * 2^nbits floats) + the
    precomputed residual table (nlist * m * 2^nbits floats)."""
    from rfcn_face.search import build, index_bytes
    base = data["base"]
    n, d = base.shape
    assert index_bytes(build(IndexSpec("flat"), base).index) == n * d * 4
    assert index_bytes(build(IndexSpec("ivfflat", nlist=16), base).index) == n * (d * 4 + 8) + 16 * d * 4
    pq = build(IndexSpec("ivfpq", nlist=16, m=8, nbits=6), base).index
    assert index_bytes(pq) == n * (6 + 8) + 16 * d * 4 + 4 * d * 64 + 4 * 16 * 8 * 64


def test_recall_at_1_against_exact_search(data):
    args = (data["base"], data["base_labels"], data["probe"], data["probe_labels"])
    exact = evaluate(*args, IndexSpec("flat"))
    _, If = _search(IndexSpec("flat"), data["base"], data["probe"])
    assert evaluate(*args, IndexSpec("flat"), exact_ids=If[:, 0]).recall_at_1 == 1.0
    spec = IndexSpec("ivfflat", nlist=32, nprobe=1)
    _, Ii = _search(spec, data["base"], data["probe"])
    r = evaluate(*args, spec, exact_ids=If[:, 0])
    assert r.recall_at_1 == np.mean(Ii[:, 0] == If[:, 0]) < 1.0
    assert r.train_n == 64 * 32 and r.index_mb > 0 and np.isnan(exact.recall_at_1)


def test_training_sample_rule_literal():
    """The sample rule at the benchmark's shape: train_per_list x nlist rows (x 2^nbits when the PQ has more
    centroids than there are lists), capped by the base; seeded: the same seed the same rows (in base order),
    another seed other rows. (d = 1 keeps the 100,000-row base small.)"""
    from rfcn_face.search import training_sample
    base = np.arange(100_000, dtype=np.float32)[:, None]
    s = training_sample(IndexSpec("ivfflat", nlist=2048, train_per_list=40), base)
    assert s.shape == (81_920, 1)                                                   # 40 x 2048
    assert np.all(np.diff(s[:, 0]) > 0)                                             # distinct rows, base order
    assert np.array_equal(s, training_sample(IndexSpec("ivfflat", nlist=2048, train_per_list=40), base))
    other = training_sample(IndexSpec("ivfflat", nlist=2048, train_per_list=40, seed=7), base)
    assert other.shape == s.shape and not np.array_equal(other, s)
    assert len(training_sample(IndexSpec("ivfpq", nlist=100, nbits=8, train_per_list=30), base)) == 30 * 256
    assert training_sample(IndexSpec("ivfflat", nlist=4096, train_per_list=40), base) is base   # 163,840 > n


def test_spherical_coarse_kmeans(data):
    """spherical=True: the trained centroids have unit norm (plain L2 k-means' do not), and the index equals one
    built with plain Faiss calls and cp.spherical on the same sample."""
    import faiss
    from rfcn_face.search import build
    base, q = data["base"], data["probe"]
    spec = IndexSpec("ivfflat", nlist=16, nprobe=4, train_per_list=20, spherical=True)
    b = build(spec, base)
    norms = np.linalg.norm(b.quantizer.reconstruct_n(0, 16), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    plain = build(IndexSpec("ivfflat", nlist=16, nprobe=4, train_per_list=20), base)
    assert np.linalg.norm(plain.quantizer.reconstruct_n(0, 16), axis=1).max() < 0.99
    raw = faiss.IndexIVFFlat(faiss.IndexFlatL2(64), 64, 16)
    raw.cp.seed, raw.cp.spherical = spec.seed, True
    _assert_same_as_plain_faiss(b, raw, spec, base, q)
    assert spec.label == "ivfflat(nlist=16,nprobe=4,spherical)"


def test_rerank_layer_on_a_filled_ivfpq(data):
    """build(..., filled=pq): the exact re-ranking layer on an already filled IVF-PQ == the re-ranked IVF-PQ built
    from scratch (same seed: same PQ), with no training; its memory is the PQ's plus the n x d float copy."""
    from dataclasses import replace
    from rfcn_face.search import build, index_bytes
    base, q = data["base"], data["probe"]
    spec = IndexSpec("ivfpq", nlist=16, nprobe=4, m=8, nbits=6)
    pq = build(spec, base)
    rr_spec = replace(spec, rerank=6)
    rr = build(rr_spec, base, filled=pq)
    assert rr.train_n == 0 and rr.quantizer is pq.quantizer
    D1, I1 = rr.index.search(q, 3)
    D2, I2 = build(rr_spec, base).index.search(q, 3)
    assert np.array_equal(I1, I2)
    np.testing.assert_array_equal(D1, D2)
    assert index_bytes(rr.index) == index_bytes(pq.index) + base.size * 4
    with pytest.raises(ValueError, match="re-ranking layer"):
        build(spec, base, filled=pq)                                          # rerank 0: nothing to add
    with pytest.raises(ValueError, match="re-ranking layer"):
        build(rr_spec, base[:100], filled=pq)                                 # another base
