"""Error lines and searches over program logs (ops_portal.programs.logs)."""
from ops_portal.programs import logs


def test_error_lines_are_whole_words_or_journal_priorities():
    lines = ["ERROR: disk full", "Traceback (most recent call last):", "errors_total=0", "terror", "all good",
             "[fatal] gave up", "warning: slow"]
    assert [logs.is_error(line) for line in lines] == [True, True, False, False, False, True, False]
    assert logs.count_errors(["boot", "oops"], [6, 3]) == 1


def test_a_time_range_uses_the_timestamps_lines_start_with():
    lines = ["2026-01-01T10:00:00Z start", "  continued", "[2026-01-01 10:05:00] error: late",
             "2026-01-01T11:00:00+01:00 x"]
    found, note = logs.search(lines, since=logs.line_time("2026-01-01T10:01:00Z"))
    assert note == "" and found == ["[2026-01-01 10:05:00] error: late"]
    found, _ = logs.search(lines, until=logs.line_time("2026-01-01T10:00:30Z"))
    assert found == ["2026-01-01T10:00:00Z start", "  continued", "2026-01-01T11:00:00+01:00 x"]
    found, _ = logs.search(lines, text="ERROR")
    assert found == ["[2026-01-01 10:05:00] error: late"]


def test_lines_without_timestamps_say_the_range_could_not_be_applied():
    found, note = logs.search(["tick 1", "tick 2 error"], text="tick", since=0, until=10)
    assert found == ["tick 1", "tick 2 error"] and "carry no timestamps" in note
