"""A bounded on-disk queue of telemetry batches, for while Tidewatch is unreachable.

Each batch is one file holding the exact request body, named so that names sort in the order
the batches were spooled: ``<time_ns>-<pid>-<records>.json`` for telemetry and
``<time_ns>-<pid>-<labels>.labels.json`` for delayed labels (one queue, so labels wait behind
the records they name). A file is written under a
temporary name and renamed into place, so a crash never leaves half a batch to send. Sending
claims a file by renaming it (``.sending.<pid>``), which is atomic: two processes sharing a
spool folder never send the same file at once, and a claim left behind by a dead process is
released when a spool is opened. Resending a batch whose answer was lost is harmless: Tidewatch
counts each record id once.

When a new batch would take the spool over ``max_bytes``, the oldest batches are deleted and
their records counted as dropped: recent data is worth more to a drift monitor than old data.

>>> import tempfile
>>> spool = Spool(tempfile.mkdtemp(), max_bytes=1_000)
>>> spool.push(b'{"records": []}', 3)
0
>>> item = spool.claim()
>>> item.records, spool.read(item)
(3, b'{"records": []}')
>>> spool.done(item); len(spool)
0
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

_SUFFIX = ".json"
_SENDING = ".sending."
TELEMETRY, LABELS = "telemetry", "labels"  # the kinds of batch, named after their routes
_KIND_SUFFIX = {TELEMETRY: _SUFFIX, LABELS: f".{LABELS}{_SUFFIX}"}


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    records: int  # records, or labels for a labels batch
    kind: str = TELEMETRY


def _records(name: str) -> int:
    try:
        return int(name.split(".")[0].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _kind(name: str) -> str:
    return LABELS if name.split(_SENDING)[0].endswith(_KIND_SUFFIX[LABELS]) else TELEMETRY


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    """Batches waiting on disk, oldest first, at most ``max_bytes`` in all."""

    def __init__(self, folder: str | os.PathLike[str], *, max_bytes: int = 256 * 2**20) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._release_abandoned_claims()

    def _release_abandoned_claims(self) -> None:
        for path in self.folder.glob(f"*{_SUFFIX}{_SENDING}*"):
            pid = path.name.rsplit(".", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                # another process may have released it first
                with contextlib.suppress(OSError):
                    path.rename(path.with_name(path.name.split(_SENDING)[0]))

    def _waiting(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{_SUFFIX}"))

    def __len__(self) -> int:
        return len(self._waiting())

    def records(self, kind: str | None = None) -> int:
        """Records on disk (of one ``kind``, or all): in the waiting batches and in those
        claimed for sending right now (a claimed batch is still here until it is done)."""
        claimed = self.folder.glob(f"*{_SUFFIX}{_SENDING}*")
        return sum(
            _records(p.name)
            for p in [*self._waiting(), *claimed]
            if kind is None or _kind(p.name) == kind
        )

    def size(self) -> int:
        total = 0
        for path in self._waiting():
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        return total

    def push(self, body: bytes, records: int, kind: str = TELEMETRY) -> int:
        """Add a batch (``kind``: its route, telemetry or labels); returns the number of
        records dropped (oldest batches) to make room.

        A batch larger than the whole spool is dropped itself.
        """
        if len(body) > self.max_bytes:
            return records
        dropped = 0
        waiting = self._waiting()
        total = sum(p.stat().st_size for p in waiting if p.exists())
        while waiting and total + len(body) > self.max_bytes:
            oldest = waiting.pop(0)
            try:
                total -= oldest.stat().st_size
                oldest.unlink()
                dropped += _records(oldest.name)
            except OSError:
                pass  # sent by another process meanwhile
        name = f"{time.time_ns():020d}-{os.getpid()}-{records}{_KIND_SUFFIX[kind]}"
        temporary = self.folder / f".{name}.tmp"
        with open(temporary, "wb") as file:
            file.write(body)
            file.flush()
            os.fsync(file.fileno())
        temporary.rename(self.folder / name)
        return dropped

    def claim(self) -> SpooledBatch | None:
        """The oldest waiting batch, claimed for sending by this process, or None."""
        for path in self._waiting():
            claimed = path.with_name(f"{path.name}{_SENDING}{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # claimed or sent by another process
            return SpooledBatch(claimed, _records(path.name), _kind(path.name))
        return None

    def read(self, item: SpooledBatch) -> bytes:
        return item.path.read_bytes()

    def done(self, item: SpooledBatch) -> None:
        """The batch reached Tidewatch (or was refused for good): forget it."""
        with contextlib.suppress(OSError):
            item.path.unlink()

    def release(self, item: SpooledBatch) -> None:
        """Sending failed: put the batch back, at its place in the order."""
        with contextlib.suppress(OSError):
            item.path.rename(item.path.with_name(item.path.name.split(_SENDING)[0]))


def default_spool_dir(model: str) -> Path:
    """``$TIDEWATCH_SPOOL_DIR/<model>``, else ``~/.cache/tidewatch/spool/<model>``."""
    base = os.environ.get("TIDEWATCH_SPOOL_DIR") or Path.home() / ".cache" / "tidewatch" / "spool"
    return Path(base) / model
