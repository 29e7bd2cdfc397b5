"""Tasks handed to the candidate (drop a card, leave a voicemail), kept in a folder.

Each task is a JSON file named by its message id, written atomically, so a
retry overwrites the same task instead of adding a second one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class CandidateTask:
    """Something the candidate must do by hand, with everything needed to do it."""

    task_id: str
    channel: str
    title: str
    instructions: str
    due: str  # an ISO date, or "now"
    files: tuple[str, ...] = ()  # names of files saved beside the task


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class DirectoryTaskSink:
    """Keeps candidate tasks as ``<task_id>.json`` (plus their files) in a folder."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, task: CandidateTask, files: dict[str, bytes] | None = None) -> Path:
        """Save ``task`` and its ``files``; return the task file's path."""
        for name, content in (files or {}).items():
            write_atomically(self.directory / name, content)
        path = self.directory / f"{task.task_id}.json"
        data = json.dumps(asdict(task), indent=2, ensure_ascii=False).encode()
        write_atomically(path, data)  # last: a task never points at a missing file
        return path
