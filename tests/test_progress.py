"""The progress reporter: a bar redrawn in place on a terminal, rate-limited plain lines elsewhere."""

import io

import pytest

from fade.progress import Progress, format_duration

CLEAR = "\r\x1b[K"


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal (80 columns: it has no file descriptor)."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_three_steps(stream, clock, labels=("fade (1, 16, 8, 8)", "carafe (1, 16, 8, 8)", "bilinear")):
    """Three 5-second steps, 0.05 s apart, with a message before the last."""
    with Progress(3, "bench memory", stream, clock=clock) as progress:
        for i, label in enumerate(labels):
            if i == 2:
                progress.message("note: carafe fell back")
            progress.begin(label)
            clock.now += 5
            progress.advance()
            clock.now += 0.05
    return stream.getvalue()


def test_format_duration():
    assert [format_duration(s) for s in (0, 9.99, 61, 3599, 3600, 36061.5, -3)] == [
        "0:00",
        "0:09",
        "1:01",
        "59:59",
        "1:00:00",
        "10:01:01",
        "0:00",
    ]


def test_on_a_terminal_one_line_is_redrawn_with_a_bar_step_and_eta():
    text = run_three_steps(FakeTerminal(), Clock())
    assert text.split(CLEAR) == [
        "",
        "bench memory 1/3 [............] fade (1, 16, 8, 8) | 0:00 elapsed, ETA ?",
        "bench memory 1/3 [####........] | 0:05 elapsed, ETA 0:10",
        # the start of a step is drawn however soon it follows the last draw
        "bench memory 2/3 [####........] carafe (1, 16, 8, 8) | 0:05 elapsed, ETA 0:10",
        # the end of a step 5.05 s after the last draw: drawn (interval 0.1 s)
        "bench memory 2/3 [########....] | 0:10 elapsed, ETA 0:05",
        # a message clears the bar, takes a line of its own, and the bar comes back below it
        "note: carafe fell back\n",
        "bench memory 2/3 [########....] | 0:10 elapsed, ETA 0:05",
        "bench memory 3/3 [########....] bilinear | 0:10 elapsed, ETA 0:05",
        "bench memory 3/3 [############] | 0:15 elapsed, ETA 0:00",
        "bench memory 3/3 done in 0:15\n",
    ]


def test_on_a_terminal_a_long_label_is_cut_to_the_width():
    clock = Clock()
    stream = FakeTerminal()
    progress = Progress(2, "t", stream, clock=clock)
    progress.begin("x" * 200)
    line = stream.getvalue().removeprefix(CLEAR)
    assert len(line) == 79 and line == "t 1/2 [............] " + "x" * 35 + "~ | 0:00 elapsed, ETA ?"


def test_on_a_pipe_plain_lines_at_step_starts_at_most_one_per_interval():
    text = run_three_steps(io.StringIO(), Clock())
    assert text.splitlines() == [
        "bench memory 1/3 fade (1, 16, 8, 8) | 0:00 elapsed, ETA ?",
        # step 2 starts 5 s after the first line (interval 10 s): not printed
        "note: carafe fell back",
        # step 3 starts 10.1 s after the first line
        "bench memory 3/3 bilinear | 0:10 elapsed, ETA 0:05",
        "bench memory 3/3 done in 0:15",
    ]


def test_without_labels_the_end_of_each_step_is_drawn():
    clock, stream = Clock(), io.StringIO()
    with Progress(4, "train", stream, interval_s=2.0, clock=clock) as progress:
        for _ in range(4):
            clock.now += 1.5
            progress.advance()
    # draws at 1.5 s (first), 4.5 s (3 s later); 3.0 and 6.0 s come sooner than 2 s after a draw
    assert stream.getvalue().splitlines() == [
        "train 1/4 | 0:01 elapsed, ETA 0:04",
        "train 3/4 | 0:04 elapsed, ETA 0:01",
        "train 4/4 done in 0:06",
    ]


def test_work_that_stops_early_says_so_and_a_terminal_line_is_ended():
    clock, stream = Clock(), FakeTerminal()
    with pytest.raises(KeyboardInterrupt):
        with Progress(5, "compare", stream, clock=clock) as progress:
            progress.begin("run a")
            clock.now += 70
            raise KeyboardInterrupt
    assert stream.getvalue().endswith(CLEAR + "compare 1/5 stopped after 1:10 (0 finished)\n")


def test_the_closing_line_names_the_step_that_was_stopped_not_the_last_finished_one():
    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt), Progress(24, "run", stream) as progress:
        for _ in range(22):
            progress.begin("next")
            progress.advance()
        progress.begin("(task, fade, seed 2)")
        raise KeyboardInterrupt
    assert stream.getvalue().splitlines()[-1].startswith("run 23/24 stopped after 0:00 (22 finished)")
    with Progress(3, "bench", stream) as progress:
        progress.advance()
    assert stream.getvalue().splitlines()[-1] == "bench 1/3 stopped after 0:00 (1 finished)"


def test_no_stream_counts_silently():
    progress = Progress(2)
    progress.begin("a")
    progress.advance(2)
    progress.message("ignored")
    progress.close()
    assert progress.done == 2 and progress.eta_s() == 0.0


def test_bad_arguments_are_refused_with_the_argument_named():
    with pytest.raises(TypeError, match="total must be an int, got float"):
        Progress(2.0)
    with pytest.raises(ValueError, match="total must be >= 0, got -1"):
        Progress(-1)
    with pytest.raises(ValueError, match="interval_s must be >= 0, got -1"):
        Progress(1, interval_s=-1)
    progress = Progress(1)
    with pytest.raises(ValueError, match="steps must be >= 0, got -1"):
        progress.advance(-1)
    progress.advance()
    with pytest.raises(ValueError, match=r"1 \+ 1 steps done exceeds total 1"):
        progress.advance()
