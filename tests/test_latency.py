import pytest

from edgeir.compress.latency import interleaved_latency


class Clocked:
    """A stand-in restorer that logs its calls and takes a known time on the fake clock."""

    def __init__(self, name: str, ms: float, log: list, clock: list):
        self.name, self.ms, self.log, self.clock = name, ms, log, clock

    def restore(self, degraded, seed=0):
        self.log.append((self.name, seed))
        self.clock[0] += self.ms / 1000


def test_models_are_warmed_up_then_timed_in_turn_and_the_median_is_kept(monkeypatch):
    log, clock = [], [0.0]
    monkeypatch.setattr("edgeir.compress.latency.time.perf_counter", lambda: clock[0])
    a, b = Clocked("a", 10, log, clock), Clocked("b", 30, log, clock)
    ms = interleaved_latency([a, b], degraded=None, runs=3, seed=7)
    assert [name for name, _ in log] == ["a", "b"] * 4  # one warm-up round, then three timed ones
    assert {seed for _, seed in log} == {7}
    assert ms == pytest.approx([10.0, 30.0])
