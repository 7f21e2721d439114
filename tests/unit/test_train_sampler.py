"""The epoch batch sampler: the order is a function of (seed, epoch); ranks slice global batches."""

from pairgan.train.sampler import EpochBatchSampler


def test_sampler_order_is_a_function_of_seed_and_epoch():
    s = EpochBatchSampler(7, 3, seed=1)
    s.set_position(2, 0)
    full = list(s)
    assert len(full) == 3 and sorted(i for b in full for _, i in b) == list(range(7))
    assert all(e == 2 for b in full for e, _ in b)
    s.set_position(2, 1)
    assert list(s) == full[1:]
    s.set_position(3, 0)
    assert list(s) != [[(3, i) for _, i in b] for b in full]  # a new epoch, a new order


def test_sampler_slices_global_batches_across_ranks():
    one = EpochBatchSampler(8, 4, seed=3)
    r0 = EpochBatchSampler(8, 2, seed=3, world_size=2, rank=0)
    r1 = EpochBatchSampler(8, 2, seed=3, world_size=2, rank=1)
    for s in (one, r0, r1):
        s.set_position(1, 0)
    assert len(one) == len(r0) == len(r1) == 2
    for g, a, b in zip(one, r0, r1):
        assert g == a + b
    # Padding by wrap-around: 5 items, global batch 4 -> every rank gets full batches.
    p0 = list(EpochBatchSampler(5, 2, seed=0, world_size=2, rank=0))
    p1 = list(EpochBatchSampler(5, 2, seed=0, world_size=2, rank=1))
    assert [len(b) for b in p0 + p1] == [2, 2, 2, 2]
    assert {i for b in p0 + p1 for _, i in b} == set(range(5))
