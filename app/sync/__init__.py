"""optisync's core: optimistic sync with server push, free of Qt, sockets and storage.

>>> from app.sync import Cubit, DeviceContext, PushMetadata
"""

from .completion import SyncCompletion
from .cubit import Cubit
from .device import DeviceContext, EventListener
from .errors import MissingServerRevisionError, TooManyFollowUpsError
from .events import (
    FollowUpScheduled,
    OptimisticApplied,
    PushApplied,
    PushHeld,
    PushIgnoredStale,
    RequestSent,
    ResponseApplied,
    SelfEchoAcknowledged,
    StaleResponseIgnored,
    SyncEvent,
    SyncFailed,
    SyncFinished,
)
from .rules import PushMetadata, PushVerdict

__all__ = [
    "Cubit",
    "DeviceContext",
    "EventListener",
    "FollowUpScheduled",
    "MissingServerRevisionError",
    "OptimisticApplied",
    "PushApplied",
    "PushHeld",
    "PushIgnoredStale",
    "PushMetadata",
    "PushVerdict",
    "RequestSent",
    "ResponseApplied",
    "SelfEchoAcknowledged",
    "StaleResponseIgnored",
    "SyncCompletion",
    "SyncEvent",
    "SyncFailed",
    "SyncFinished",
    "TooManyFollowUpsError",
]
