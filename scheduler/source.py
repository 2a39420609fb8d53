"""The ritual file a process runs on: one source per process, parsed once per change.

:class:`FileSource` is the file on disk, for the worker, ``tend run`` and the CLI: read and
validated at start (a broken file falls back to the last good one the ledger kept, so a
restart during a bad edit does not stop sending), then looked at again on each
:meth:`~FileSource.refresh`: unchanged bytes are not parsed again, a broken edit is
reported once and the last good file stays in force, a fix is reported too.

:class:`SyncedSource` is the file the worker last synced, for a ``tend web`` of its own:
replies need the same rules (reply windows, freezes, who is in a household) the plan was
made from. In ``tend run`` the web app shares the worker's :class:`FileSource` instead.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from config.directory import parse_shared
from config.loader import LoadedFile, RitualFileError, load_ritual_file, parse_ritual_file
from config.model import RitualFile
from rituals.planning import file_hash

if TYPE_CHECKING:  # the ledger (SQLAlchemy) is imported only by a process that opens one
    from scheduler.directory import SyncedDirectory
    from scheduler.ledger import Ledger

__all__ = ["FileSource", "SyncedSource"]

# The worker's log, where operators read about its ritual file (and tests listen).
log = logging.getLogger("scheduler.service")
_synced_log = logging.getLogger("scheduler.planner")  # where this line always was

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class FileSource:
    """The ritual file at `path`, with the ledger's last good file to fall back on."""

    def __init__(
        self, path: Path | str, *, ledger: Ledger | None = None, clock: Clock = _now
    ) -> None:
        self.path = Path(path)
        self.ledger = ledger
        self.clock = clock
        self.loaded: LoadedFile | None = None
        self.hash: str | None = None  # of the file in force (its validated content)
        self.text: str | None = None  # the last good file as written (the ledger keeps it)
        #: When the file in force is the ledger's last good one: when that was synced.
        self.synced_at: datetime | None = None
        #: The file's problems while it is broken (logged once per distinct set).
        self.problems: list[str] | None = None
        self._seen: str | None = None  # the file's bytes' hash at the last look

    @property
    def file(self) -> RitualFile | None:
        return None if self.loaded is None else self.loaded.file

    def __call__(self) -> RitualFile | None:
        return self.file

    @property
    def started(self) -> bool:
        return self.loaded is not None

    def start(self) -> LoadedFile:
        """Read and validate the file; when it is broken, the ledger's last good one (and
        :attr:`problems` says what is wrong). :class:`RitualFileError` when it is broken and
        there is none."""
        self._seen = self._fingerprint()
        try:
            loaded = load_ritual_file(self.path, today=self.clock())
        except RitualFileError as exc:
            kept = self._last_good()
            if kept is None:
                raise
            text, synced_at = kept
            self.problems = exc.lines()
            self.synced_at = synced_at
            loaded = parse_ritual_file(  # judged as of its sync, when it was good
                text, name=f"{self.path} (last good)", today=synced_at
            )
        self._take(loaded)
        return loaded

    def refresh(self) -> bool:
        """Look at the file again; True when its content changed (and the new one is in
        force). A broken edit keeps the file in force, logged once."""
        seen = self._fingerprint()
        if seen is not None and seen == self._seen:
            return False  # the same bytes as at the last look: no need to parse them again
        self._seen = seen
        try:
            loaded = load_ritual_file(self.path, today=self.clock())
        except RitualFileError as exc:
            if exc.lines() != self.problems:
                log.error(
                    "the ritual file has errors; still running on the last good one:\n%s",
                    "\n".join(exc.lines()),
                )
                self.problems = exc.lines()
            return False
        if self.problems is not None:
            log.info("the ritual file is good again")
            self.problems = None
        self.text = loaded.text
        if file_hash(loaded.file) == self.hash:
            return False
        self._take(loaded)
        return True

    def _take(self, loaded: LoadedFile) -> None:
        self.loaded = loaded
        self.hash = file_hash(loaded.file)
        self.text = loaded.text

    def _last_good(self) -> tuple[str, datetime] | None:
        if self.ledger is None:
            return None
        from scheduler.ledger import DatabaseError  # loaded already: the ledger is open

        try:
            state = self.ledger.synced.state()
        except DatabaseError:  # no ledger yet, or none reachable: nothing to fall back on
            return None
        if state is None or not state.text:
            return None
        return state.text, state.synced_at

    def _fingerprint(self) -> str | None:
        """The file's bytes, hashed: far cheaper than parsing and checking them."""
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None


class SyncedSource:
    """The ritual file the worker last synced, for the web process.

    Parsed once per generation, and the generation looked up at most every `ttl`; before any
    worker has synced, `fallback` (the file on disk, when there is one).
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        fallback: RitualFile | None = None,
        ttl: timedelta = timedelta(seconds=5),
        clock: Clock | None = None,
    ) -> None:
        self.ledger = ledger
        self.fallback = fallback
        self.ttl = ttl
        self._clock = clock or _now
        self._lock = threading.Lock()
        self._checked: datetime | None = None
        self._generation: int | None = None
        self._file: RitualFile | None = None
        #: A ritual directory's, when the worker synced one: its households are read from
        #: the ledger a few at a time (see :meth:`for_households`).
        self._directory: SyncedDirectory | None = None

    def __call__(self) -> RitualFile | None:
        """The whole file (None for a ritual directory: see :meth:`for_households`)."""
        self._look()
        if self._directory is not None:
            return None
        return self._file or self.fallback

    @property
    def directory(self) -> bool:
        """Whether the worker synced a ritual directory (as of the last look)."""
        self._look()
        return self._directory is not None

    def for_households(self, households: Sequence[str]) -> RitualFile | None:
        """The file for these households: the whole file, or a ritual directory's
        rituals.toml with these households as the ledger has them now."""
        self._look()
        directory = self._directory
        if directory is None:
            return self._file or self.fallback
        found: RitualFile = directory.for_households(households)
        return found

    def _look(self) -> None:
        now = self._clock()
        with self._lock:
            if self._checked is not None and now - self._checked < self.ttl:
                return
            self._checked = now
            state = self.ledger.synced.state()
            if state is None or not state.text or state.generation == self._generation:
                return
            self._generation = state.generation  # tried once per generation
            from scheduler.directory import SyncedDirectory
            from scheduler.ledger.synced import DIRECTORY  # loaded already: the ledger is open

            try:
                # Judged as of its sync: a check that depends on the day (a ritual that
                # has ended) must not turn a file the worker accepted into a bad one.
                if state.layout == DIRECTORY:
                    shared = parse_shared(state.text, name="ledger", today=state.synced_at)
                    self._directory = SyncedDirectory(self.ledger, shared)
                    self._file = None
                else:
                    parsed = parse_ritual_file(state.text, name="ledger", today=state.synced_at)
                    self._file = parsed.file
                    self._directory = None
            except RitualFileError:
                _synced_log.error(
                    "the ritual file in the ledger does not validate; using the last one"
                )
