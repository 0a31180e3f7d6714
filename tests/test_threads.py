"""The engine's thread pool: order kept, errors raised in the caller, nesting and LAYERS_NUM_THREADS=1 run serially."""

import threading

import numpy as np
import pytest

from tinygrad_lite import threads


def test_split_covers_the_range_in_near_equal_pieces():
    assert threads.split(10, 3) == [slice(0, 3), slice(3, 6), slice(6, 10)]
    assert threads.split(2, 5) == [slice(0, 1), slice(1, 2)]
    assert threads.split(0, 2) == [slice(0, 0)]


def test_parallel_map_keeps_order_and_uses_another_thread(monkeypatch):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")
    assert threads.num_threads() == 2
    assert threads.parallel_map(lambda i: i * i, list(range(7))) == [0, 1, 4, 9, 16, 25, 36]
    names = threads.parallel_map(lambda _: threading.current_thread().name, [0, 1])
    assert names[0] == threading.current_thread().name and names[1].startswith("tinygrad_lite-")


def test_one_thread_runs_everything_on_the_caller(monkeypatch):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "1")
    names = threads.parallel_map(lambda _: threading.current_thread().name, [0, 1, 2])
    assert set(names) == {threading.current_thread().name}


def test_an_error_in_a_worker_reaches_the_caller_and_the_pool_still_works(monkeypatch):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")

    def fail_on_one(i):
        if i == 1:
            raise KeyError("part 1")
        return i

    with pytest.raises(KeyError, match="part 1"):
        threads.parallel_map(fail_on_one, [0, 1])
    assert threads.parallel_map(lambda i: -i, [1, 2, 3]) == [-1, -2, -3]


def test_nested_maps_run_serially_instead_of_deadlocking(monkeypatch):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")
    inner = threads.parallel_map(lambda i: threads.parallel_map(lambda j: 10 * i + j, [0, 1]), [1, 2])
    assert inner == [[10, 11], [20, 21]]


@pytest.mark.parametrize("block", [None, 1000, 1 << 16])
def test_parallel_chunks_writes_every_element_once(monkeypatch, block):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")
    monkeypatch.setattr(threads, "CACHE_BLOCK", block)
    for size in (5, 2500, threads.MIN_PARALLEL_SIZE + 3):
        out = np.zeros(size, dtype=np.int64)
        seen = []

        def fill(sl, out=out, size=size, seen=seen):
            seen.append(sl.stop - sl.start)
            out[sl] += np.arange(size)[sl]

        threads.parallel_chunks(fill, size)
        np.testing.assert_array_equal(out, np.arange(size))
        # Each call gets at most CACHE_BLOCK elements: a piece per thread, cut again into cache-sized slices.
        limit = size if block is None else block
        assert max(seen) <= limit and sum(seen) == size
        pieces = 2 if size >= threads.MIN_PARALLEL_SIZE else 1
        assert len(seen) == sum(-(-n // limit) for n in np.diff(np.linspace(0, size, pieces + 1).astype(int)))


def test_blas_runs_one_thread_per_part_inside_a_parallel_map(monkeypatch):
    # Where NumPy's OpenBLAS is found, a parallel map sets it to one thread and restores the count afterwards.
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")
    with threads.blas_single_threaded():
        pass  # finds the library
    if not threads._blas:
        pytest.skip("no OpenBLAS in this process (NumPy built against another BLAS)")
    set_threads, get_threads = threads._blas
    before = get_threads()
    set_threads(2)
    try:
        inside = threads.parallel_map(lambda _: get_threads(), [0, 1])
        assert inside == [1, 1] and get_threads() == 2
    finally:
        set_threads(before)


def test_ctrl_c_during_a_map_leaves_a_working_pool(monkeypatch):
    monkeypatch.setenv("LAYERS_NUM_THREADS", "2")

    def interrupted(i):
        if i == 0:
            raise KeyboardInterrupt  # as Ctrl-C would, in the calling thread
        return i

    with pytest.raises(KeyboardInterrupt):
        threads.parallel_map(interrupted, [0, 1])
    assert threads.parallel_map(lambda i: 2 * i, [1, 2, 3, 4]) == [2, 4, 6, 8]
