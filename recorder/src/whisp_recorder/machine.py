"""The recording state machine as data: which action is legal in which state.

    IDLE --arm--> ARMED --start--> RECORDING --stop--> PROCESSING --finish--> IDLE
              ARMED --cancel--> IDLE       RECORDING --cancel--> IDLE

ARMED holds the device open (so `start` is instant and the level meter already moves)
without keeping audio; PROCESSING holds the finished audio until whoever stopped it has
stored and published it and calls `finish`. A table rather than if/elif chains, so the
tests can walk every (state, action) pair and the HTTP layer can say what *is* allowed.

`InvalidTransition` is a `WhispError` carrying its own status (409), so a service that
lets it escape a route answers with the shared error body without a handler of its own.
"""

from __future__ import annotations

from enum import StrEnum

from whisp_shared.codes import ErrorCode
from whisp_shared.errors import WhispError


class RecorderState(StrEnum):
    IDLE = "idle"
    ARMED = "armed"
    RECORDING = "recording"
    PROCESSING = "processing"


class Action(StrEnum):
    ARM = "arm"
    START = "start"
    STOP = "stop"
    CANCEL = "cancel"
    FINISH = "finish"


TRANSITIONS: dict[tuple[RecorderState, Action], RecorderState] = {
    (RecorderState.IDLE, Action.ARM): RecorderState.ARMED,
    (RecorderState.ARMED, Action.START): RecorderState.RECORDING,
    (RecorderState.ARMED, Action.CANCEL): RecorderState.IDLE,
    (RecorderState.RECORDING, Action.STOP): RecorderState.PROCESSING,
    (RecorderState.RECORDING, Action.CANCEL): RecorderState.IDLE,
    (RecorderState.PROCESSING, Action.FINISH): RecorderState.IDLE,
}

ACTIVE_STATES = frozenset({RecorderState.ARMED, RecorderState.RECORDING})
"""States in which the device is held open."""


def allowed(state: RecorderState) -> list[Action]:
    return [action for (src, action) in TRANSITIONS if src is state]


class InvalidTransition(WhispError):
    """An action that the current state does not allow (e.g. stop while idle)."""

    code = ErrorCode.INVALID_TRANSITION
    status = 409

    def __init__(self, state: RecorderState, action: Action) -> None:
        legal = ", ".join(allowed(state)) or "nothing"
        super().__init__(f"cannot {action} while {state} (allowed now: {legal})")
        self.state = state
        self.action = action


def next_state(state: RecorderState, action: Action) -> RecorderState:
    try:
        return TRANSITIONS[(state, action)]
    except KeyError:
        raise InvalidTransition(state, action) from None
