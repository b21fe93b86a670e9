"""The folder camera source: what counts as history and what as a new part."""

from __future__ import annotations

from pathlib import Path

from axline.camera import FolderSource


def test_an_image_landing_before_the_first_poll_is_a_new_part(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(b"x")
    src = FolderSource("cam", tmp_path, "*.png")
    src.prime()  # at start-up: what is already there is history
    (tmp_path / "new.png").write_bytes(b"x")  # lands before the polling loop first looks
    assert [p.name for p in src.scan()] == ["new.png"]
    assert src.scan() == []  # each file once


def test_without_priming_the_first_scan_takes_the_folder_as_history(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(b"x")
    src = FolderSource("cam", tmp_path, "*.png")
    assert src.scan() == []
    (tmp_path / "new.png").write_bytes(b"x")
    assert [p.name for p in src.scan()] == ["new.png"]
