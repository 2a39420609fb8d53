"""A ritual directory as a running process sees it: ``rituals.toml`` and one file a household.

:class:`DirectorySource` is the worker's (and ``tend run``'s). It keeps no household in
memory, only what tells their files apart: each file's size and modification time at the
last look, the hash of the content in force, the household's id and zone. :meth:`look`
stats the files, :meth:`read` reads and checks only those whose size or time moved, and
the households themselves are kept in the ledger (their last good version, as JSON), where
the planner and the web read the few they need. So 100,000 households cost a worker a few
tens of megabytes, and a re-plan with nothing changed reads no household file at all.

A broken household file keeps its household on its last good version (the one in force,
or after a restart the ledger's) and says so once; the other households go on. A broken
``rituals.toml`` keeps the last good one for everyone, as a broken single file does, and so
does one that some household files are not valid against (the rituals are everyone's: an
edit there that breaks a household is refused as a whole, with that household's problems).

:class:`SyncedDirectory` is the web's part of it: the rituals.toml the worker synced and
the households the ledger keeps, read for each request, so an edit is live as soon as the
worker has synced it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.directory import (
    HOUSEHOLDS,
    RITUALS,
    HouseholdFile,
    SharedFile,
    combine,
    parse_household,
    parse_shared,
)
from config.loader import RitualFileError, decode
from config.model import Household, RitualFile
from rituals.planning import file_hash

if TYPE_CHECKING:
    from scheduler.ledger import Ledger
    from scheduler.ledger.synced import KeptHousehold

__all__ = ["DirectorySource", "Look", "SyncedDirectory", "planned_hash"]

log = logging.getLogger("scheduler.service")

Clock = Callable[[], datetime]

#: Households read, checked and synced at a time: what a worker holds of them at once.
CHUNK = 500

#: With a file watch running, how often every file is looked at anyway (a safety net for a
#: file system whose changes the watch does not hear of, such as some network mounts);
#: without one, every look stats them all.
FULL_LOOK_SECONDS = 300.0

#: How long the watch waits for more changes before it reports a batch (an editor's save,
#: a `git pull` of many files), in milliseconds.
WATCH_DEBOUNCE_MS = 200


def _now() -> datetime:
    return datetime.now(UTC)


def _household_file(name: str) -> bool:
    """A household file's name: ``*.toml``, not hidden (an editor's copy)."""
    return name.endswith(".toml") and not name.startswith(".")


def planned_hash(shared: str, config: str) -> str:
    """What a household's plan is made from: rituals.toml's content and its own file's."""
    return hashlib.sha256(f"{shared}:{config}".encode()).hexdigest()


def _seen(stat: os.stat_result) -> int:
    """A file's modification time and size as one int (smaller than a tuple of the two, at
    100,000 files): different whenever either is, for a file under a terabyte."""
    return (stat.st_mtime_ns << 40) | (stat.st_size & ((1 << 40) - 1))


def content_hash(stem: str, raw: bytes) -> str:
    """A household file's content, with its name (which is its id unless it says otherwise)."""
    return hashlib.sha256(stem.encode() + b"\0" + raw).hexdigest()


@dataclass(slots=True)
class _Entry:
    """A household file, as the last look found it."""

    seen: int  # its modification time and size at the last look (see _seen)
    id: str | None = None  # the household it holds (None: never good)
    digest: str | None = None  # the content in force (a broken edit leaves the old one)
    problems: tuple[str, ...] | None = None  # while it is broken, said once


@dataclass
class Look:
    """What changed since the last look: rituals.toml, and household files by stem."""

    shared_changed: bool = False
    touched: list[str] = field(default_factory=list)  # new, or size or time moved
    gone: list[str] = field(default_factory=list)
    #: Every household file was listed (a look at them all, not only those heard of): a
    #: household the ledger has and no file holds is then gone.
    complete: bool = False


@dataclass
class Read:
    """Household files read by :meth:`DirectorySource.read`: the good ones whose content
    changed (to sync), and the households no file holds any more."""

    changed: list[HouseholdFile] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)


class DirectorySource:
    """The ritual directory at `path`, with the ledger for each household's last good one."""

    def __init__(self, path: Path | str, *, ledger: Ledger, clock: Clock = _now) -> None:
        self.path = Path(path)
        self._absolute = self.path.absolute()  # the watch reports absolute paths
        self.ledger = ledger
        self.clock = clock
        self.shared: SharedFile | None = None
        self.hash: str | None = None  # of rituals.toml's validated content, in force
        self.text: str | None = None  # rituals.toml as written, the last good one
        #: When rituals.toml in force is the ledger's last good one: when that was synced.
        self.synced_at: datetime | None = None
        #: rituals.toml's problems while it is broken (logged once per distinct set).
        self.problems: list[str] | None = None
        #: Household files read since start: a re-plan with nothing changed reads none.
        self.files_read = 0
        self._shared_seen: str | None = None
        self._entries: dict[str, _Entry] = {}  # by file stem
        self._owners: dict[str, str] = {}  # household id -> the stem of its file
        self.zones: dict[str, str] = {}  # household id -> its zone's key
        self._kept: dict[str, KeptHousehold] | None = None  # the ledger's, until first read
        self._lock = threading.Lock()
        # The file watch: the stems it heard of since the last look, and when every file was
        # last looked at (a look hears only of those while the watch runs).
        self._heard: set[str] = set()
        self._heard_shared = False
        self._watching: threading.Event | None = None
        self._threads: list[threading.Thread] = []  # the watch's, and the one it wakes
        self._watch_stopped = threading.Event()
        self._full_look_at: float | None = None
        #: Looks that statted every file (with the watch running, one at start and then one
        #: every FULL_LOOK_SECONDS).
        self.full_looks = 0
        self._unlisted = False  # the households folder could not be listed at the last look
        self._dropped: list[str] = []  # households a file no longer holds (it says another id)

    # ------------------------------------------------------------------ the shared part

    @property
    def started(self) -> bool:
        return self.shared is not None

    @property
    def file(self) -> RitualFile | None:
        """No whole file: a directory's households are read a few at a time."""
        return None

    def start(self) -> SharedFile:
        """Read rituals.toml; when it is broken, the ledger's last good one (and
        :attr:`problems` says what is wrong). :class:`RitualFileError` when there is none."""
        raw = self._shared_bytes()
        self._shared_seen = None if raw is None else hashlib.sha256(raw).hexdigest()
        try:
            shared = self._parse_shared(raw)
        except RitualFileError as exc:
            kept = self._last_good_shared()
            if kept is None:
                raise
            text, synced_at = kept
            self.problems = exc.lines()
            self.synced_at = synced_at
            shared = parse_shared(text, name=f"{self._rituals} (last good)", today=synced_at)
        self._take(shared)
        if self.problems is None:
            self._judge_against_synced()
        assert self.shared is not None
        return self.shared

    def _judge_against_synced(self) -> None:
        """rituals.toml changed while no worker ran: it is put in force only if every
        household file good against the one the ledger synced is good against it too (as an
        edit while running is); otherwise the ledger's stays in force."""
        kept = self._last_good_shared()
        if kept is None:
            return
        text, synced_at = kept
        try:
            old = parse_shared(text, name=f"{self._rituals} (last good)", today=synced_at)
        except RitualFileError:
            return
        if file_hash(old.file) == self.hash:
            return
        assert self.shared is not None
        problems = self._refused_by(self.shared, old, sorted(self._stats() or ()))
        if problems:
            self.synced_at = synced_at
            self._shared_broken(problems)
            self._take(old)

    def _refused_by(self, new: SharedFile, old: SharedFile, stems: list[str]) -> list[str]:
        """The problems of the household files that `new` makes bad and `old` did not."""
        problems: list[str] = []
        for stem in stems:
            raw = self._read_bytes(stem)
            if raw is None:
                continue
            name = self._name(stem)
            text = decode(raw, name)
            try:
                parse_household(new, text, name=name, stem=stem, today=self.clock())
            except RitualFileError as exc:
                try:
                    parse_household(old, text, name=name, stem=stem, today=self.clock())
                except RitualFileError:
                    continue  # bad by itself: its own file's problem, said when it is read
                problems += exc.lines()
        if problems:
            refused = f"{self._rituals}: not in force: household files are not valid against it"
            return [refused, *problems]
        return []

    @property
    def _rituals(self) -> Path:
        return self.path / RITUALS

    def _shared_bytes(self) -> bytes | None:
        try:
            return self._rituals.read_bytes()
        except OSError:
            return None

    def _parse_shared(self, raw: bytes | None) -> SharedFile:
        name = str(self._rituals)
        if raw is None:
            from config.checks import Problem

            raise RitualFileError(
                name, [Problem((), "no such file in the ritual directory", line=1)]
            )
        return parse_shared(decode(raw, name), name=name, today=self.clock())

    def _take(self, shared: SharedFile) -> None:
        self.shared = shared
        self.hash = file_hash(shared.file)
        self.text = shared.text

    def _last_good_shared(self) -> tuple[str, datetime] | None:
        from scheduler.ledger import DatabaseError
        from scheduler.ledger.synced import DIRECTORY

        try:
            state = self.ledger.synced.state()
        except DatabaseError:
            return None
        if state is None or not state.text or state.layout != DIRECTORY:
            return None
        return state.text, state.synced_at

    def _new_shared(self) -> SharedFile | None:
        """rituals.toml again, when its bytes moved and it is good: the new one (not yet in
        force); None when unchanged or broken (logged once)."""
        raw = self._shared_bytes()
        seen = None if raw is None else hashlib.sha256(raw).hexdigest()
        if seen is not None and seen == self._shared_seen:
            return None
        self._shared_seen = seen
        try:
            shared = self._parse_shared(raw)
        except RitualFileError as exc:
            self._shared_broken(exc.lines())
            return None
        if self.problems is not None:
            log.info("%s is good again", self._rituals)
            self.problems = None
        if file_hash(shared.file) == self.hash:
            self.text = shared.text
            return None
        return shared

    def _shared_broken(self, lines: list[str]) -> None:
        if lines != self.problems:
            log.error(
                "%s has errors; still running on the last good one:\n%s",
                self._rituals,
                "\n".join(lines),
            )
            self.problems = lines

    # ------------------------------------------------------------------ households

    def look(self) -> Look:
        """Stat rituals.toml and every household file: what moved since the last look. Reads
        no household file (rituals.toml only when its own bytes moved)."""
        with self._lock:
            look = Look()
            heard, heard_shared, full = self._heard_of()
            shared = self._new_shared() if full or heard_shared else None
            if shared is not None:
                look.shared_changed = self._accept(shared)
            if not full and not look.shared_changed:
                seen = self._stats_of(heard)
                look.touched = [s for s, stat in seen.items() if self._moved(s, stat)]
                look.gone = [s for s in heard if s not in seen and s in self._entries]
                return look
            listed = self._stats()
            if listed is None:
                return Look()  # not listable now: every household as it is
            look.complete = True
            look.touched = [stem for stem, stat in listed.items() if self._moved(stem, stat)]
            look.gone = [stem for stem in self._entries if stem not in listed]
            if look.shared_changed:  # every household is judged by the new rituals
                look.touched = sorted(listed)
            return look

    def heard_of_changes(self) -> bool:
        """Whether the file watch heard of a change since the last look: a long plan under
        way (a zone's new day, every household) gives way to it between chunks."""
        with self._lock:
            return bool(self._heard) or self._heard_shared

    def look_again(self) -> None:
        """Forget what the looks saw of the household files: the next look stats and reads
        every one against the ledger's copies, as the first look after a start does. For a
        sync or plan that failed part way (a lost connection, a lock that timed out), after
        which this process's view would be ahead of the ledger's and the edit never synced."""
        with self._lock:
            self._entries.clear()
            self._owners.clear()
            self.zones.clear()
            self._kept = None
            self._dropped = []
            self._full_look_at = None

    def _heard_of(self) -> tuple[set[str], bool, bool]:
        """What the watch heard of since the last look, and whether this look must look at
        every file (no watch, or none for a while)."""
        heard, self._heard = self._heard, set()
        heard_shared, self._heard_shared = self._heard_shared, False
        now = time.monotonic()
        watching = self._watching is not None and not self._watch_stopped.is_set()
        full = (
            not watching
            or self._full_look_at is None
            or now - self._full_look_at >= FULL_LOOK_SECONDS
        )
        if full:
            self._full_look_at = now
            self.full_looks += 1
        return heard, heard_shared, full

    def _moved(self, stem: str, stat: int) -> bool:
        entry = self._entries.get(stem)
        return entry is None or entry.seen != stat

    def _stats_of(self, stems: set[str]) -> dict[str, int]:
        found = {}
        for stem in stems:
            try:
                stat = Path(self._name(stem)).stat()
            except OSError:
                continue  # gone
            found[stem] = _seen(stat)
        return found

    # ------------------------------------------------------------------ the file watch

    def watch(self, wake: Callable[[], None]) -> bool:
        """Hear of changed files as they change (inotify, through watchfiles), in a thread of
        its own, and call `wake` in another after each batch; the looks in between stat only
        the files it heard of. False when no watch can run here (then every look stats every
        file).

        The watch never waits for `wake`: a plan it woke that runs long (a zone's new day)
        gives way to an edit only if the edit is heard of meanwhile. Batches heard while
        `wake` runs make one more call when it returns."""
        try:
            import watchfiles
        except ImportError:  # pragma: no cover - a dependency; said, not fatal
            log.warning("no file watch (watchfiles is missing): each look stats every file")
            return False
        stop, wanted = threading.Event(), threading.Event()
        self._watching = stop
        self._watch_stopped.clear()
        self._threads = [
            threading.Thread(
                target=self._watch, args=(watchfiles, stop, wanted), name="tend-watch", daemon=True
            ),
            threading.Thread(
                target=self._wake, args=(stop, wanted, wake), name="tend-wake", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        return True

    def _watch(self, watchfiles: Any, stop: threading.Event, wanted: threading.Event) -> None:
        folder = str(self._absolute / HOUSEHOLDS)
        rituals = str(self._absolute / RITUALS)
        try:
            for changes in watchfiles.watch(
                self._absolute,
                watch_filter=None,
                debounce=WATCH_DEBOUNCE_MS,
                stop_event=stop,
                raise_interrupt=False,
                recursive=True,
            ):
                with self._lock:
                    for _change, path in changes:
                        where, _, name = path.rpartition(os.sep)
                        if path == rituals:
                            self._heard_shared = True
                        elif where == folder and _household_file(name):
                            self._heard.add(name[: -len(".toml")])
                wanted.set()
        except Exception:
            log.exception("the file watch stopped; each look stats every file from now on")
        finally:
            self._watch_stopped.set()
            wanted.set()  # the wake thread ends too

    def _wake(
        self, stop: threading.Event, wanted: threading.Event, wake: Callable[[], None]
    ) -> None:
        while True:
            wanted.wait()
            if stop.is_set() or self._watch_stopped.is_set():
                return
            wanted.clear()
            try:
                wake()
            except Exception:
                # Planning failed (the database, most likely): the watch goes on, and the
                # planner's next look takes it up (see look_again).
                log.exception("planning after a change of the ritual directory failed")

    def stop_watching(self) -> None:
        """Stop the watch, and wait for its threads: one still inside watchfiles' Rust code
        when the interpreter exits aborts the process."""
        if self._watching is not None:
            self._watching.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self._threads = []

    def _stats(self) -> dict[str, int] | None:
        """Every household file's (mtime_ns, size), by stem; None when the folder cannot be
        listed now (said once: a network mount gone away must not end every household)."""
        folder = self.path / HOUSEHOLDS
        found: dict[str, int] = {}
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if not _household_file(entry.name):
                        continue
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue  # gone between the listing and the stat
                    if entry.is_file():
                        found[entry.name[: -len(".toml")]] = _seen(stat)
        except OSError as exc:
            if not self._unlisted:
                log.error("cannot list %s: %s; keeping every household as it is", folder, exc)
            self._unlisted = True
            return None
        if self._unlisted:
            log.info("%s can be listed again", folder)
            self._unlisted = False
        return found

    def _accept(self, shared: SharedFile) -> bool:
        """Put a changed rituals.toml in force, unless a household file is not valid against
        it (then it is refused as a whole, with those problems). True when in force."""
        assert self.shared is not None
        good = [
            stem
            for stem, entry in sorted(self._entries.items())
            if entry.problems is None and entry.digest is not None
        ]
        problems = self._refused_by(shared, self.shared, good)
        if problems:
            self._shared_broken(problems)
            return False
        self._take(shared)
        log.info("%s changed: every household is planned again", self._rituals)
        return True

    def _name(self, stem: str) -> str:
        return str(self.path / HOUSEHOLDS / f"{stem}.toml")

    def _read_bytes(self, stem: str) -> bytes | None:
        self.files_read += 1
        try:
            return Path(self._name(stem)).read_bytes()
        except OSError:
            return None

    def read(self, look: Look) -> Iterator[Read]:
        """Read the files `look` touched, `CHUNK` at a time: the good ones whose content
        changed (each chunk synced by the caller before the next is read), and households
        whose file is gone. A file whose content is the one in force (or, at the first look
        after a start, the one the ledger has) is not parsed at all."""
        with self._lock:
            kept = self._kept_households()
            by_hash = {k.config_hash: k for k in kept.values() if k.config_hash}
            gone_ids = [self._forget(stem) for stem in look.gone]
            read = Read(gone=[i for i in gone_ids if i is not None])
            for stem in look.touched:
                changed = self._read_one(stem, by_hash, kept, force=look.shared_changed)
                if changed is not None:
                    read.changed.append(changed)
                if self._dropped:
                    read.gone += self._dropped
                    self._dropped = []
                if len(read.changed) >= CHUNK:
                    yield read
                    read = Read()
            if self._kept is not None and look.complete:
                # The first read after a start: a household the ledger has and no file holds.
                read.gone += [i for i in kept if i not in self._owners]
                self._kept = None
            if read.changed or read.gone:
                yield read

    def _kept_households(self) -> dict[str, KeptHousehold]:
        if self._kept is None and not self._entries:
            self._kept = {k.id: k for k in self.ledger.synced.kept()}
        return self._kept or {}

    def _forget(self, stem: str) -> str | None:
        entry = self._entries.pop(stem)
        if entry.id is None or self._owners.get(entry.id) != stem:
            return None
        del self._owners[entry.id]
        self.zones.pop(entry.id, None)
        log.info("%s is gone: household %s is no longer planned", self._name(stem), entry.id)
        return entry.id

    def _read_one(
        self,
        stem: str,
        by_hash: dict[str, KeptHousehold],
        kept: dict[str, KeptHousehold],
        *,
        force: bool,
    ) -> HouseholdFile | None:
        name = self._name(stem)
        try:
            stat = Path(name).stat()
        except OSError:
            return None
        entry = self._entries.setdefault(stem, _Entry(seen=_seen(stat)))
        entry.seen = _seen(stat)
        raw = self._read_bytes(stem)
        if raw is None:
            return None
        digest = content_hash(stem, raw)
        if digest == entry.digest and not force:
            self._good_again(entry, name)  # a broken edit undone: the version in force
            return None  # touched, the same content
        known = by_hash.get(digest)
        if known is not None and entry.digest is None and not force:
            self._own(stem, entry, known.id, digest, known.timezone)
            return None  # as the ledger has it: nothing to check or sync again
        try:
            found = parse_household(
                self.shared,  # type: ignore[arg-type]  # started
                decode(raw, name),
                name=name,
                stem=stem,
                today=self.clock(),
            )
            owner = self._owners.get(found.household.id)
            if owner is not None and owner != stem:
                raise _duplicate(name, found.household.id, self._name(owner))
        except RitualFileError as exc:
            self._broken(stem, entry, exc.lines(), kept)
            return None
        self._good_again(entry, name)
        held = entry.id
        if held is not None and held != found.household.id and self._owners.get(held) == stem:
            # The file now says another id: the household it held is gone (unless another
            # file says that id: the planner keeps a household some file holds).
            del self._owners[held]
            self.zones.pop(held, None)
            self._dropped.append(held)
            log.info("%s now holds household %s, not %s", name, found.household.id, held)
        zone = found.household.zones(self.shared.file.timezone)[0].key  # type: ignore[union-attr]
        self._own(stem, entry, found.household.id, digest, zone)
        return found

    @staticmethod
    def _good_again(entry: _Entry, name: str) -> None:
        if entry.problems is not None:
            log.info("%s is good again", name)
            entry.problems = None

    def _own(self, stem: str, entry: _Entry, household: str, digest: str, zone: str) -> None:
        entry.id = household
        entry.digest = digest
        self._owners[household] = stem
        self.zones[household] = zone

    def _broken(
        self, stem: str, entry: _Entry, lines: list[str], kept: dict[str, KeptHousehold]
    ) -> None:
        if entry.id is None and stem in kept and kept[stem].config_hash:
            # Broken at a start: the ledger's last good version stays in force.
            known = kept[stem]
            self._own(stem, entry, known.id, known.config_hash or "", known.timezone)
        if tuple(lines) != entry.problems:
            if entry.id is not None:
                how = f"household {entry.id} stays on its last good version"
            else:
                how = "no household is planned from it"
            log.error("%s has errors; %s:\n%s", self._name(stem), how, "\n".join(lines))
            entry.problems = tuple(lines)

    def digest_of(self, household: str) -> str | None:
        """The content hash in force for `household`'s file."""
        stem = self._owners.get(household)
        return None if stem is None else self._entries[stem].digest

    def households(self) -> list[str]:
        """Every household in force, by id."""
        return sorted(self._owners)

    def broken(self) -> dict[str, tuple[str, ...]]:
        """The household files that are broken now, by path, with their problems."""
        return {
            self._name(stem): entry.problems
            for stem, entry in self._entries.items()
            if entry.problems is not None
        }

    # ------------------------------------------------------------------ views

    #: For the web (``tend run``): its households are asked for a few at a time.
    directory = True

    def __call__(self) -> RitualFile | None:
        return None

    def for_households(self, households: Sequence[str]) -> RitualFile | None:
        """A ritual file of rituals.toml and these households (their last good versions)."""
        if self.shared is None:
            return None
        return ledger_view(self.ledger, self.shared, households)


def _duplicate(name: str, household: str, other: str) -> RitualFileError:
    from config.checks import Problem

    return RitualFileError(
        name, [Problem(("id",), f"household {household!r} is already in {other}", line=1)]
    )


def ledger_view(ledger: Ledger, shared: SharedFile, households: Sequence[str]) -> RitualFile:
    """rituals.toml and these households as the ledger keeps them (those it has)."""
    configs = ledger.synced.household_configs(list(dict.fromkeys(households)))
    return combine(shared, [Household.model_validate_json(configs[h]) for h in sorted(configs)])


class SyncedDirectory:
    """The ritual directory the worker last synced, for the web process: rituals.toml once
    per generation (looked up at most every `ttl`), each household from the ledger when a
    request needs it."""

    def __init__(self, ledger: Ledger, shared: SharedFile) -> None:
        self.ledger = ledger
        self.shared = shared

    def for_households(self, households: Sequence[str]) -> RitualFile:
        return ledger_view(self.ledger, self.shared, households)
