"""The sequence diagram's drawing model: sync events in; lanes, dots, arrows and groups out.

Qt-free, so it is unit-tested with plain values and painted by any backend
(``sequence_view.py`` paints it with QPainter, on screen, to SVG or PNG).

Theory of operation
-------------------
One vertical lane per device plus one for the server; time flows down.

* A tap (``OptimisticApplied``) is a **dot** on its device's lane. Dots wait in
  a per-(device, key) queue until a request carries them.
* ``RequestSent`` is a **set arrow** from the device to the server. It carries
  every waiting dot of its key up to its local revision: that is the
  **group** (a coalesced burst is many dots under one request). A follow-up
  (``follow_up=True``) also links back to the answer that scheduled it.
* An answer is an arrow from the server back to the device: ``ack`` (applied,
  or the ack that scheduled a follow-up), ``stale-ack`` (ignored: a newer push
  won), ``failed``.
* Pushes are arrows from the server to a device: ``push`` (applied),
  ``own-push`` (the device's own newest write coming back), ``echo`` (its own
  older write: revision noted, value not re-applied), ``stale-push`` (at or
  below a revision the device already had, so ignored).
* A **commit** is a mark on the server lane: a write stored at revision N.
  Its time is the earliest of what saw it: the server's observer feed, or the
  first ack or push of that revision. Arrows from the server start there, and
  a set arrow ends there once its revision is known.

A **write** is identified by (key, server revision) once known, and before
that by (device, key, local revision); :meth:`SequenceModel.related` returns
every element of one write, so a selection can light it up on every lane.

Vertical layout (:meth:`SequenceModel.y`) is time, but compressed: each event
is at least ``min_step`` below the previous one (so a burst of taps does not
pile up) and an idle gap longer than ``max_gap`` seconds is cut to a short
break (so minutes of nothing do not scroll away). Times between events are
placed by interpolation.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from app.sync import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)

from .space_names import DEFAULT_SPACE

__all__ = [
    "ARROW_KINDS",
    "SERVER_LANE",
    "Arrow",
    "ArrowKind",
    "Break",
    "Commit",
    "Dot",
    "Element",
    "Lane",
    "SequenceModel",
    "describe_value",
]

SERVER_LANE = -1
"""The lane id of the server (device ids are never negative)."""

ArrowKind = Literal[
    "set", "follow-up", "ack", "stale-ack", "failed", "push", "own-push", "echo", "stale-push"
]
ARROW_KINDS: tuple[ArrowKind, ...] = (
    "set",
    "follow-up",
    "ack",
    "stale-ack",
    "failed",
    "push",
    "own-push",
    "echo",
    "stale-push",
)

ANSWER_WORDS: dict[str, str] = {"ack": "ack", "own-push": "push", "echo": "echo"}
"""The word opening the label of an arrow a writer gets back about its own write."""

WriteId = tuple[Hashable, ...]


def describe_value(value: Any) -> str:
    """A value as the demo shows it: hearts for likes, repr for anything else."""
    value = getattr(value, "value", value)  # an ack carries the value it confirms
    if isinstance(value, bool):
        return "♥" if value else "♡"
    if value is None:
        return "∅"
    return repr(value)


def _capitalized(text: str) -> str:
    """A name that opens a sentence: "another device" → "Another device"."""
    return text[:1].upper() + text[1:]


@dataclass(frozen=True, slots=True)
class Lane:
    """A device's lane (or the server's); ``space`` is the space the device joined."""

    id: int
    title: str
    space: str = DEFAULT_SPACE


@dataclass(slots=True)
class Dot:
    """One tap on a device lane; ``request`` is the id of the set arrow that carried it."""

    id: int
    device_id: int
    key: str
    at: float
    value: Any
    local_revision: int
    coalesced: bool
    request: int | None = None
    note: str = ""


@dataclass(slots=True)
class Arrow:
    """A message between a device lane and the server lane.

    ``start``/``end`` are times; ``end`` is None while a request is in flight.
    ``dots`` are the taps a set arrow carries; ``follows`` is, for a follow-up,
    the id of the answer that scheduled it; ``answers`` is, for an answer, the
    id of the set arrow it answers.
    """

    id: int
    kind: ArrowKind
    device_id: int
    key: str
    start: float
    end: float | None
    value: Any
    local_revision: int
    server_revision: int | None = None
    writer: int | None = None
    note: str = ""
    dots: list[int] = field(default_factory=list)
    follows: int | None = None
    answers: int | None = None
    queued: bool = False

    @property
    def from_server(self) -> bool:
        return self.kind not in ("set", "follow-up")

    @property
    def label(self) -> str:
        """What the arrow's text says: value, local revision, server revision; the
        answers a writer gets about one write (its ack, the push of it, an echo) also
        say which they are, as they carry the same numbers."""
        parts = [ANSWER_WORDS[self.kind]] if self.kind in ANSWER_WORDS else []
        parts += [describe_value(self.value)] if self.kind not in ("failed",) else ["✕"]
        if self.kind in ("set", "follow-up", "ack", "stale-ack", "failed", "echo", "own-push"):
            parts.append(f"L{self.local_revision}")
        if self.server_revision is not None and self.server_revision > 0:
            parts.append(f"rev {self.server_revision}")
        return " ".join(parts)


@dataclass(slots=True)
class Commit:
    """A write stored by the server (a mark on the server lane)."""

    id: int
    key: str
    at: float
    value: Any
    server_revision: int
    writer: int | None
    local_revision: int | None
    note: str = ""
    space: str = DEFAULT_SPACE


@dataclass(frozen=True, slots=True)
class Break:
    """An idle stretch cut short in the layout, drawn as a break line."""

    at: float
    seconds: float


Element = Dot | Arrow | Commit


@dataclass(slots=True)
class _KeyTrack:
    """Per (device, key): taps not yet carried, the open request, the scheduling answer."""

    waiting: list[int] = field(default_factory=list)
    request: int | None = None
    scheduled_by: int | None = None


class SequenceModel:
    """Events in, drawing elements out; see the module docstring.

    ``name_of(device_id)`` names writers that have no lane; ``title_of(key)``
    names keys for people. ``max_elements`` bounds memory: the oldest go first.
    """

    def __init__(
        self,
        name_of: Callable[[int | None], str] | None = None,
        *,
        title_of: Callable[[str], str] | None = None,
        px_per_second: float = 120.0,
        min_step: float = 9.0,
        max_gap: float = 2.5,
        max_elements: int = 4000,
    ) -> None:
        self._name_of = name_of
        self.title_of: Callable[[str], str] = title_of or (lambda key: key)
        self.px_per_second = px_per_second
        self.min_step = min_step
        self.max_gap = max_gap
        self.max_elements = max_elements
        self.lanes: list[Lane] = [Lane(SERVER_LANE, "Server")]
        self.elements: dict[int, Element] = {}
        self.breaks: list[Break] = []
        self.revision = 0  # bumped on every change, so views know to repaint
        self._ids = 0
        self._tracks: dict[tuple[int, str], _KeyTrack] = {}
        self._commits: dict[tuple[str, int], int] = {}
        self._by_write: dict[WriteId, set[int]] = {}
        self._sent: dict[tuple[int, str, int], int] = {}  # (device, key, local rev) -> set arrow
        self._offline: set[int] = set()
        self._feed_revision = 0
        self._keys: set[str] = set()
        self._commit_spaces: dict[str, None] = {}
        self._anchor_t: list[float] = []
        self._anchor_y: list[float] = []
        self._order: list[int] = []  # element ids in the order they were made
        self._first_at: list[float] = []  # their first time, for range queries

    # -- lanes ------------------------------------------------------------------------

    def add_lane(self, device_id: int, title: str, space: str = DEFAULT_SPACE) -> None:
        """A lane for a device in ``space`` (again with a new title, if it had one)."""
        lane = Lane(device_id, title, space)
        for index, old in enumerate(self.lanes):
            if old.id == device_id:
                if old != lane:
                    self.lanes[index] = lane
                    self._changed()
                return
        self.lanes.append(lane)
        self._changed()

    def space_of(self, device_id: int | None) -> str:
        """The space of a device's lane (the default space for devices without one)."""
        for lane in self.lanes:
            if lane.id == device_id and lane.id != SERVER_LANE:
                return lane.space
        return DEFAULT_SPACE

    def spaces(self) -> list[str]:
        """Every space with a lane or a stored write, in the order first seen."""
        seen = dict.fromkeys(lane.space for lane in self.lanes if lane.id != SERVER_LANE)
        seen.update(dict.fromkeys(self._commit_spaces))
        return list(seen)

    @property
    def several_spaces(self) -> bool:
        """Whether the diagram shows more than one space (then it names them)."""
        return len(self.spaces()) > 1

    def lane_index(self, lane_id: int) -> int:
        for index, lane in enumerate(self.lanes):
            if lane.id == lane_id:
                return index
        return -1

    def name(self, device_id: int | None) -> str:
        for lane in self.lanes:
            if lane.id == device_id and lane.id != SERVER_LANE:
                return lane.title
        if self._name_of is not None:
            return self._name_of(device_id)
        return "another device"

    # -- time -> y --------------------------------------------------------------------

    def y(self, at: float) -> float:
        """Where time ``at`` is drawn (see the module docstring)."""
        times, ys = self._anchor_t, self._anchor_y
        if not times:
            return 0.0
        i = bisect.bisect_right(times, at)
        if i == 0:
            return ys[0]
        if i == len(times):
            last = times[-1]
            return ys[-1] + min(at - last, self.max_gap) * self.px_per_second
        t0, t1, y0, y1 = times[i - 1], times[i], ys[i - 1], ys[i]
        if t1 <= t0:
            return y1
        share = min(1.0, (at - t0) / (t1 - t0))
        return y0 + share * (y1 - y0)

    def anchors(self) -> tuple[list[float], list[float]]:
        """The layout's anchor times and their y (both ascending); read-only."""
        return self._anchor_t, self._anchor_y

    @property
    def height(self) -> float:
        return self._anchor_y[-1] if self._anchor_y else 0.0

    def _anchor(self, at: float) -> None:
        times, ys = self._anchor_t, self._anchor_y
        if not times:
            times.append(at)
            ys.append(0.0)
            return
        last = times[-1]
        if at < last:
            return  # placed between anchors by interpolation
        gap = at - last
        if gap > self.max_gap:
            self.breaks.append(Break(last, gap))
            step = self.max_gap * self.px_per_second * 0.5
        else:
            step = gap * self.px_per_second
        times.append(at)
        ys.append(ys[-1] + max(step, self.min_step))

    # -- feeding ----------------------------------------------------------------------

    def set_online(self, device_id: int, online: bool, at: float) -> None:
        """Requests made while offline wait; on reconnect they leave (``queued`` ends)."""
        if online:
            if device_id in self._offline:
                self._offline.discard(device_id)
                for element in self.elements.values():
                    if (
                        isinstance(element, Arrow)
                        and element.device_id == device_id
                        and element.queued
                        and element.end is None
                    ):
                        element.queued = False
                        element.note += " Sent once the device was back online."
                        element.start = at
                        self._anchor(at)
                self._changed()
        else:
            self._offline.add(device_id)

    def feed(self, event: SyncEvent, at: float) -> None:
        """One core event of a device, seen at time ``at``."""
        key = event.key if isinstance(event.key, str) else str(event.key)
        device = event.device_id
        track = self._tracks.setdefault((device, key), _KeyTrack())
        self._anchor(at)
        match event:
            case OptimisticApplied():
                self._on_tap(event, key, at, track)
            case RequestSent():
                self._on_sent(event, key, at, track)
            case FollowUpScheduled():
                arrow = self._answer(track, "ack", key, device, at, None, None)
                arrow.note = (
                    f"Ack of local rev {event.sent_local_revision}; meanwhile the value moved on "
                    f"to {describe_value(event.value)}, so one follow-up request carries it."
                )
                track.scheduled_by = arrow.id
            case ResponseApplied():
                arrow = self._answer(
                    track, "ack", key, device, at, event.response, event.server_revision
                )
                arrow.note = (
                    f"Ack: the server stored your write at rev {event.server_revision} and "
                    "answers the request with it."
                )
            case StaleResponseIgnored():
                arrow = self._answer(
                    track, "stale-ack", key, device, at, None, event.response_revision
                )
                arrow.note = (
                    f"Ack at rev {event.response_revision} ignored: a newer write "
                    f"(rev {event.server_revision}) had already arrived by push, and it wins."
                )
            case SyncFailed():
                if track.request is not None:
                    arrow = self._answer(track, "failed", key, device, at, None, None)
                    arrow.note = (
                        f"The request failed ({event.error}); the server's value is reloaded."
                    )
                track.request = None
                track.scheduled_by = None
            case SyncFinished():
                self._absorb(track)
                track.request = None
                track.scheduled_by = None
            case PushApplied():
                own = event.from_device_id == device
                arrow = self._push(
                    "own-push" if own else "push",
                    key,
                    device,
                    at,
                    event.server_revision,
                    event.from_device_id,
                    event.push_local_revision,
                )
                arrow.note = (
                    f"Push of your own write, stored at rev {event.server_revision}: the server "
                    "pushes every write to every device, the writer too. The ack answers "
                    "the request itself."
                    if own
                    else f"{_capitalized(self.name(event.from_device_id))} wrote rev "
                    f"{event.server_revision}: "
                    "applied (a newer server write wins)."
                )
            case PushIgnoredStale():
                arrow = self._push(
                    "stale-push",
                    key,
                    device,
                    at,
                    event.push_revision,
                    event.from_device_id,
                    None,
                )
                if event.push_revision == event.server_revision and event.from_device_id == device:
                    arrow.note = (
                        f"The push of your own write at rev {event.push_revision} came after "
                        "its ack: already known, so it is ignored."
                    )
                elif event.push_revision == event.server_revision:
                    arrow.note = (
                        f"A second copy of rev {event.push_revision}: the device already had it "
                        "(a late push after a catch-up, or a duplicate), so it is ignored."
                    )
                else:
                    arrow.note = (
                        f"Push of rev {event.push_revision} arrived after rev "
                        f"{event.server_revision} was known: older, so it is ignored."
                    )
            case SelfEchoAcknowledged():
                arrow = self._push(
                    "echo",
                    key,
                    device,
                    at,
                    event.server_revision,
                    device,
                    event.push_local_revision,
                )
                arrow.note = (
                    f"Echo of your own older request (local rev {event.push_local_revision}) "
                    f"at rev {event.server_revision}: revision noted, value not re-applied "
                    "because a newer local change is on its way."
                )
            case _:
                return
        self._changed()

    def server_writes(
        self,
        entries: Iterable[tuple[str, Any, int, int | None, int | None, str]],
        at: float,
        *,
        baseline: bool = False,
    ) -> None:
        """From the server's observer feed: (key, value, revision, writer, local revision,
        space).

        ``baseline``: the first state seen; what it holds happened before the
        diagram started, so it is only remembered, not drawn.
        """
        changed = False
        newest = self._feed_revision
        for key, value, revision, writer, local, space in entries:
            newest = max(newest, revision)
            found = self._commits.get((key, revision))
            if found is not None:
                commit = self.elements.get(found)
                if isinstance(commit, Commit):
                    changed |= self._learn_value(commit, value)
                    changed |= self._learn_writer(commit, writer, local)
                continue
            if baseline or revision <= self._feed_revision:
                continue
            self._anchor(at)
            self._commit(key, revision, at, value, writer, local, space)
            changed = True
        self._feed_revision = newest
        if changed:
            self._changed()

    def clear(self) -> None:
        """Forget every element (lanes stay)."""
        self.elements.clear()
        self.breaks.clear()
        self._tracks.clear()
        self._commits.clear()
        self._by_write.clear()
        self._sent.clear()
        self._anchor_t.clear()
        self._anchor_y.clear()
        self._order.clear()
        self._first_at.clear()
        self._keys.clear()
        self._commit_spaces.clear()
        self._changed()

    # -- reading ----------------------------------------------------------------------

    def items(self, key: str | None = None) -> Iterator[Element]:
        """Every element in the order made, optionally of one key only."""
        for element_id in self._order:
            element = self.elements.get(element_id)
            if element is not None and (key is None or element.key == key):
                yield element

    def between(self, top: float, bottom: float, key: str | None = None) -> Iterator[Element]:
        """Elements that may show between times ``top`` and ``bottom`` (a superset)."""
        # Answers and pushes may reach back to their commit: a request lives for
        # at most the link's request timeout, so look back that far.
        start = bisect.bisect_left(self._first_at, top - 15.0)
        stop = bisect.bisect_right(self._first_at, bottom + 1.0)
        for element_id in self._order[start:stop]:
            element = self.elements.get(element_id)
            if element is not None and (key is None or element.key == key):
                yield element

    def arrows(self, key: str | None = None) -> list[Arrow]:
        return [e for e in self.items(key) if isinstance(e, Arrow)]

    def dots(self, key: str | None = None) -> list[Dot]:
        return [e for e in self.items(key) if isinstance(e, Dot)]

    def commits(self, key: str | None = None) -> list[Commit]:
        return [e for e in self.items(key) if isinstance(e, Commit)]

    def keys(self) -> list[str]:
        """Every key drawn so far, sorted."""
        return sorted(self._keys)

    @property
    def key_count(self) -> int:
        return len(self._keys)

    def write_of(self, element: Element) -> WriteId | None:
        match element:
            case Commit():
                return (element.key, element.server_revision)
            case Arrow() if element.server_revision is not None and element.server_revision > 0:
                return (element.key, element.server_revision)
            case Arrow() if element.kind in ("set", "follow-up"):
                return ("pending", element.device_id, element.key, element.local_revision)
            case Arrow() if element.answers is not None:
                request = self.elements.get(element.answers)
                return self.write_of(request) if request is not None else None
            case Dot() if element.request is not None:
                request = self.elements.get(element.request)
                return self.write_of(request) if request is not None else None
        return None

    def related(self, element_id: int) -> set[int]:
        """Every element of the same write as ``element_id`` (itself included)."""
        element = self.elements.get(element_id)
        if element is None:
            return set()
        found = {element_id}
        write = self.write_of(element)
        if write is not None:
            found |= self._by_write.get(write, set())
        for other_id in list(found):
            other = self.elements.get(other_id)
            if isinstance(other, Arrow):
                found.update(other.dots)
                if other.answers is not None:
                    found.add(other.answers)
                    request = self.elements.get(other.answers)
                    if isinstance(request, Arrow):
                        found.update(request.dots)
            elif isinstance(other, Dot) and other.request is not None:
                found.add(other.request)
        return found

    def explain(self, element: Element) -> str:
        """The hover text: what the element is and why it was drawn so."""
        match element:
            case Dot():
                head = f"Tap on {self.name(element.device_id)}{self._in_space(element)}: "
                head += describe_value(element.value)
                head += f" shown at once (local rev {element.local_revision})."
                if element.request is not None:
                    request = self.elements.get(element.request)
                    if isinstance(request, Arrow):
                        taps = len(request.dots)
                        head += (
                            f" Carried by the request of local rev {request.local_revision}"
                            f" with {taps - 1} other tap{'s' if taps != 2 else ''}."
                            if taps > 1
                            else f" Sent by the request of local rev {request.local_revision}."
                        )
                elif element.coalesced:
                    head += " A request is in flight, so this waits for its answer."
                return head + (" " + element.note if element.note else "")
            case Commit():
                who = self.name(element.writer) if element.writer else "a device"
                return (
                    f"The server stored {describe_value(element.value)} for "
                    f"{self.title_of(element.key)}{self._in_space(element)} at "
                    f"rev {element.server_revision} (written by {who})."
                )
            case Arrow():
                head = f"{_ARROW_TITLES[element.kind]}{self._in_space(element)} · {element.label}."
                return f"{head} {element.note}".strip()
        return ""

    def explain_lane(self, lane: Lane) -> str:
        """The hover text of a lane's header."""
        if lane.id == SERVER_LANE:
            return (
                "The server: it stores every write of every space, numbering them with one "
                "revision counter, and pushes each to the devices of its space only."
            )
        return (
            f"{lane.title}, a device in space {lane.space!r}: it sees the writes of its space "
            "only, so a tap in another space never reaches this lane."
        )

    def space_of_element(self, element: Element) -> str:
        """The space an element belongs to: its write's, or its device's."""
        if isinstance(element, Commit):
            return element.space
        return self.space_of(element.device_id)

    def _in_space(self, element: Element) -> str:
        """ " in space 'work'" when the diagram shows several spaces, else nothing."""
        if not self.several_spaces:
            return ""
        return f" in space {self.space_of_element(element)!r}"

    # -- internals --------------------------------------------------------------------

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _add(self, element: Element, first_at: float) -> None:
        if self._first_at:
            first_at = max(first_at, self._first_at[-1])  # kept sorted for range queries
        self.elements[element.id] = element
        self._keys.add(element.key)
        self._order.append(element.id)
        self._first_at.append(first_at)
        if len(self._order) > self.max_elements:
            drop = len(self._order) - self.max_elements
            for old in self._order[:drop]:
                gone = self.elements.pop(old, None)
                if isinstance(gone, Commit):
                    self._commits.pop((gone.key, gone.server_revision), None)
            del self._order[:drop]
            del self._first_at[:drop]

    def _index_write(self, element: Element) -> None:
        write = self.write_of(element)
        if write is not None:
            self._by_write.setdefault(write, set()).add(element.id)

    def _on_tap(self, event: OptimisticApplied, key: str, at: float, track: _KeyTrack) -> None:
        dot = Dot(
            self._next_id(),
            event.device_id,
            key,
            at,
            event.value,
            event.local_revision,
            event.coalesced,
        )
        self._add(dot, at)
        track.waiting.append(dot.id)

    def _absorb(self, track: _KeyTrack) -> None:
        """Taps that brought the value back to the one in flight need no request of
        their own (the server already holds that value): they join the last one."""
        request = self.elements.get(track.request) if track.request is not None else None
        if not isinstance(request, Arrow):
            return
        for dot_id in track.waiting:
            dot = self.elements.get(dot_id)
            if isinstance(dot, Dot):
                dot.request = request.id
                dot.note = "It ended on the value already sent, so no follow-up was needed."
                request.dots.append(dot_id)
        track.waiting = []

    def _on_sent(self, event: RequestSent, key: str, at: float, track: _KeyTrack) -> None:
        carried: list[int] = []
        still: list[int] = []
        for dot_id in track.waiting:
            dot = self.elements.get(dot_id)
            if not isinstance(dot, Dot):
                continue
            (carried if dot.local_revision <= event.local_revision else still).append(dot_id)
        track.waiting = still
        queued = event.device_id in self._offline
        arrow = Arrow(
            self._next_id(),
            "follow-up" if event.follow_up else "set",
            event.device_id,
            key,
            at,
            None,
            event.value,
            event.local_revision,
            dots=carried,
            follows=track.scheduled_by if event.follow_up else None,
            queued=queued,
        )
        taps = len(carried)
        what = "Follow-up request" if event.follow_up else "Request"
        arrow.note = (
            f"{what} carrying the newest value ({describe_value(event.value)}, "
            f"local rev {event.local_revision})"
            + (f" for {taps} taps." if taps > 1 else ".")
            + (" The device is offline: it waits for the reconnect." if queued else "")
            + ("" if taps else " It re-sends a choice not yet confirmed.")
        )
        for dot_id in carried:
            dot = self.elements.get(dot_id)
            if isinstance(dot, Dot):
                dot.request = arrow.id
        self._add(arrow, at)
        self._sent[(event.device_id, key, event.local_revision)] = arrow.id
        self._index_write(arrow)
        track.request = arrow.id
        track.scheduled_by = None

    def _answer(
        self,
        track: _KeyTrack,
        kind: ArrowKind,
        key: str,
        device: int,
        at: float,
        value: Any,
        revision: int | None,
    ) -> Arrow:
        request = self.elements.get(track.request) if track.request is not None else None
        request_arrow = request if isinstance(request, Arrow) else None
        if request_arrow is not None:
            request_arrow.queued = False
            if request_arrow.end is None:
                # Unknown until the server's feed says: halfway is the best guess.
                request_arrow.end = (request_arrow.start + at) / 2
        start = at if request_arrow is None else request_arrow.end or at
        if revision is not None and revision > 0:
            local = request_arrow.local_revision if request_arrow is not None else None
            commit = self._commit_for(
                key, revision, start, value, device, local, self.space_of(device)
            )
            if request_arrow is not None:
                self._resolve_request(request_arrow, revision)
                start = request_arrow.end or start
            else:
                start = min(start, commit.at)
        arrow = Arrow(
            self._next_id(),
            kind,
            device,
            key,
            start,
            at,
            value if value is not None else (request_arrow.value if request_arrow else None),
            request_arrow.local_revision if request_arrow is not None else 0,
            server_revision=revision,
            writer=device,
            answers=request_arrow.id if request_arrow is not None else None,
        )
        self._add(arrow, at)
        self._index_write(arrow)
        return arrow

    def _push(
        self,
        kind: ArrowKind,
        key: str,
        device: int,
        at: float,
        revision: int,
        writer: int | None,
        local: int | None,
    ) -> Arrow:
        # The receiving device's space: the writer may have no lane (another process).
        commit = self._commit_for(key, revision, at, None, writer, local, self.space_of(device))
        arrow = Arrow(
            self._next_id(),
            kind,
            device,
            key,
            min(commit.at, at),
            at,
            commit.value,
            local or 0,
            server_revision=revision,
            writer=writer,
        )
        self._add(arrow, at)
        self._index_write(arrow)
        return arrow

    def _commit_for(
        self,
        key: str,
        revision: int,
        at: float,
        value: Any,
        writer: int | None,
        local: int | None,
        space: str,
    ) -> Commit:
        found = self._commits.get((key, revision))
        commit = self.elements.get(found) if found is not None else None
        if isinstance(commit, Commit):
            if commit.value is None and value is not None:
                commit.value = value
            self._learn_writer(commit, writer, local)
            return commit
        return self._commit(key, revision, at, value, writer, local, space)

    def _commit(
        self,
        key: str,
        revision: int,
        at: float,
        value: Any,
        writer: int | None,
        local: int | None,
        space: str,
    ) -> Commit:
        commit = Commit(self._next_id(), key, at, value, revision, writer, local, space=space)
        self._commit_spaces[space] = None
        self._commits[(key, revision)] = commit.id
        self._add(commit, at)
        self._index_write(commit)
        self._learn_writer(commit, writer, local)
        return commit

    def learn_value(self, key: str, revision: int, value: Any) -> None:
        """The value of the write at ``revision``, learnt by a device that applied its
        push (the push events carry none; without the server's feed nothing else does)."""
        found = self._commits.get((key, revision))
        commit = self.elements.get(found) if found is not None else None
        if isinstance(commit, Commit) and self._learn_value(commit, value):
            self._changed()

    def _learn_value(self, commit: Commit, value: Any) -> bool:
        """Pushes do not carry their value to the core; the feed does: fill it in."""
        if commit.value is not None or value is None:
            return False
        commit.value = value
        for element_id in self._by_write.get((commit.key, commit.server_revision), ()):
            arrow = self.elements.get(element_id)
            if isinstance(arrow, Arrow) and arrow.value is None:
                arrow.value = value
        return True

    def _learn_writer(self, commit: Commit, writer: int | None, local: int | None) -> bool:
        """Fill in who wrote a commit; a request of that writer now ends at it."""
        changed = False
        if writer and not commit.writer:
            commit.writer, changed = writer, True
        if local and not commit.local_revision:
            commit.local_revision, changed = local, True
        if commit.writer and commit.local_revision:
            request_id = self._sent.get((commit.writer, commit.key, commit.local_revision))
            request = self.elements.get(request_id) if request_id is not None else None
            if isinstance(request, Arrow) and request.server_revision is None:
                self._resolve_request(request, commit.server_revision)
                changed = True
        return changed

    def _resolve_request(self, request: Arrow, revision: int) -> None:
        """A set arrow's write is known: it ends at its commit, same write id as it."""
        if request.server_revision == revision:
            return
        old = self.write_of(request)
        request.server_revision = revision
        found = self._commits.get((request.key, revision))
        commit = self.elements.get(found) if found is not None else None
        if isinstance(commit, Commit):
            if commit.value is None:
                commit.value = request.value
            if commit.writer is None:
                commit.writer = request.device_id
            if request.end is None or commit.at < request.end:
                request.end = max(commit.at, request.start)
        if old is not None:
            members = self._by_write.pop(old, set())
            self._by_write.setdefault((request.key, revision), set()).update(members)
            for member in members:
                answer = self.elements.get(member)
                if (
                    isinstance(answer, Arrow)
                    and answer.answers == request.id
                    and answer.server_revision is None
                    and answer.kind == "ack"
                ):
                    answer.server_revision = revision  # the ack that scheduled a follow-up
        self._index_write(request)

    def _changed(self) -> None:
        self.revision += 1


_ARROW_TITLES: dict[str, str] = {
    "set": "Request (set)",
    "follow-up": "Follow-up request",
    "ack": "Ack",
    "stale-ack": "Ignored ack",
    "failed": "Failed",
    "push": "Push",
    "own-push": "Push of your own write",
    "echo": "Self-echo",
    "stale-push": "Stale push",
}
