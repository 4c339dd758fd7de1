"""quiet_stderr from several threads at once (merkit serve decodes uploads in parallel).

fd 2 belongs to the process: two overlapping blocks that each saved and restored it could leave
it pointing at /dev/null for good (the second saves the first's /dev/null and restores it last).
"""

from __future__ import annotations

import os

from merkit.audio.decode import quiet_stderr


def fd2_identity() -> tuple[int, int]:
    info = os.fstat(2)
    return info.st_dev, info.st_ino


def devnull_identity() -> tuple[int, int]:
    info = os.stat(os.devnull)
    return info.st_dev, info.st_ino


def test_overlapping_blocks_restore_stderr_when_the_last_one_ends() -> None:
    before = fd2_identity()
    assert before != devnull_identity()
    first, second = quiet_stderr(), quiet_stderr()
    first.__enter__()
    second.__enter__()  # as a second thread would, while the first is still inside
    assert fd2_identity() == devnull_identity()
    first.__exit__(None, None, None)  # the first thread finishes before the second
    assert fd2_identity() == devnull_identity()  # the second is still decoding: still quiet
    second.__exit__(None, None, None)
    assert fd2_identity() == before
