"""A third-party Closer channel with injected faults, found through the `closer.adapters`
entry point when this folder is on PYTHONPATH (tests/test_serve_faults.py puts it there
for a real `closer serve`; the test process itself never imports it).

`flaky` writes each message to ``$CLOSER_FAULTS_DIR/out`` like the console channel, except:

* the first attempt of every third distinct message raises `RuntimeError` (an adapter
  bug), and its id is appended to ``$CLOSER_FAULTS_DIR/failed``;
* while ``$CLOSER_FAULTS_DIR/fatal`` exists, the next delivery removes it and raises
  `InjectedFatalError`, a `BaseException` that ends the outbox worker's thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.base import DeliveryReceipt
from adapters.console import ConsoleAdapter
from adapters.message import Message


class InjectedFatalError(BaseException):
    """Not an exception a message can own: it kills the thread that meets it."""


class FlakyAdapter(ConsoleAdapter):
    channel = "flaky"

    def __init__(self) -> None:
        self.faults = Path(os.environ["CLOSER_FAULTS_DIR"])
        super().__init__(directory=self.faults / "out")
        self.seen: list[str] = []

    def deliver(self, message: Message) -> DeliveryReceipt:
        fatal = self.faults / "fatal"
        if fatal.exists():
            fatal.unlink()
            raise InjectedFatalError(f"injected while delivering {message.message_id}")
        first_attempt = message.message_id not in self.seen
        if first_attempt:
            self.seen.append(message.message_id)
            if len(self.seen) % 3 == 0:
                with (self.faults / "failed").open("a") as failed:
                    failed.write(message.message_id + "\n")
                raise RuntimeError("the flaky adapter trips on every third message")
        return super().deliver(message)
