"""labkit.course.l09_real_device:
the helpers and exercises of notebook 09_real_device;
pure ones first, then on a live lab.
"""

from __future__ import annotations

import pytest

from labkit.course import l09_real_device as lesson


def _python(code: str) -> list[str]:
    import sys

    return [sys.executable, "-c", code]


def test_labkit_command_and_shell() -> None:
    import sys

    argv = lesson.labkit_command("fota --listen 127.0.0.1:5683 --package 'my fw.bin'")
    assert argv[:3] == [sys.executable, "-m", "labkit"]
    assert argv[3:] == ["fota", "--listen", "127.0.0.1:5683", "--package", "my fw.bin"]
    assert lesson.labkit_command("device", "--seed", 3)[3:] == ["device", "--seed", "3"]
    assert lesson.shell(argv) == "labkit fota --listen 127.0.0.1:5683 --package 'my fw.bin'"
    assert lesson.shell(["echo", "a b"]) == "echo 'a b'"


def test_background_collects_lines_and_exit_code() -> None:
    code = (
        "import sys; print('one'); print('RESULT 1 SUCCESS'); "
        "sys.stderr.write('err\\n'); sys.exit(3)"
    )
    with lesson.run_in_background(_python(code), timeout=30) as job:
        assert job.wait_for_line("RESULT", timeout=20) == "RESULT 1 SUCCESS"
        result = job.wait()
    assert result.exit_code == 3 and not result.stopped and not result.timed_out
    assert result.lines == ("one", "RESULT 1 SUCCESS", "err")
    assert result.result_line == "RESULT 1 SUCCESS"
    assert job.result == result and job.stop() == result  # stopping again changes nothing
    assert "exit code 3" in str(result) and str(result).startswith("$ ")
    assert "RESULT 1 SUCCESS" in result._repr_html_() and "exit code 3" in repr(result)


def test_background_is_stopped_at_the_end_of_its_block() -> None:
    code = "import time; print('ready', flush=True); time.sleep(60)"
    with lesson.run_in_background(_python(code), timeout=30) as job:
        job.wait_for_line("ready", timeout=20)
        assert job.running and "running" in job._repr_html_()
    result = job.result
    assert result is not None and result.stopped and not result.timed_out
    assert result.exit_code != 0 and "stopped" in str(result)


def test_background_never_outlives_its_bound() -> None:
    job = lesson.run_in_background(_python("import time; time.sleep(60)"), timeout=1)
    result = job.wait()
    assert result.timed_out and result.seconds < 10
    assert "time bound ran out" in str(result)
    assert not job.running


def test_wait_for_line_says_why_it_gave_up() -> None:
    quick = lesson.run_in_background(_python("print('hello')"), timeout=30)
    with quick, pytest.raises(RuntimeError, match="without printing"):
        quick.wait_for_line("RESULT", timeout=20)
    code = "import time; print('x', flush=True); time.sleep(60)"
    slow = lesson.run_in_background(_python(code), timeout=30)
    with slow, pytest.raises(TimeoutError, match="so far"):
        slow.wait_for_line("RESULT", timeout=0.5)
    assert slow.result is not None and slow.result.stopped
    with pytest.raises(ValueError):
        lesson.run_in_background(_python("pass"), timeout=0)
