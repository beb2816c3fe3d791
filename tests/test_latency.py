import pytest

from edgeir.timing import interleaved_ms, median_ms


def test_calls_are_warmed_up_then_timed_in_turn_and_the_median_is_kept(monkeypatch):
    log, clock = [], [0.0]
    monkeypatch.setattr("edgeir.timing.time.perf_counter", lambda: clock[0])

    def call(name: str, ms: list[float]):
        def run():
            log.append(name)
            clock[0] += ms.pop(0) / 1000
        return run

    a, b = call("a", [99, 10, 12, 11]), call("b", [99, 30, 31, 50])
    ticks = []
    assert median_ms([a, b], runs=3, advance=ticks.append) == pytest.approx([11.0, 31.0])
    assert log == ["a", "b"] * 4  # one warm-up round, then three timed ones
    assert len(ticks) == 4


def test_each_call_gets_its_own_list_of_times(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("edgeir.timing.time.perf_counter", lambda: clock[0])

    def tick():
        clock[0] += 0.002

    assert interleaved_ms([tick], runs=2, warmup=0) == [pytest.approx([2.0, 2.0])]
