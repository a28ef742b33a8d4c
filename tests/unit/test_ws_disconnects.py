"""A WebSocket client that leaves mid-send is normal life: no ERROR line, no traceback.

Strawberry logs every exception of an operation's task at ERROR with its traceback. A peer
that vanishes while an event is being sent surfaces as one of three exceptions, depending on
which layer noticed first; each must be recognised as "the client left", and a real fault must
still be logged as one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, cast

import pytest
from starlette.websockets import WebSocketDisconnect
from strawberry.http.exceptions import WebSocketDisconnected
from uvicorn.protocols.utils import ClientDisconnected

from app.ws_protocol import ChimeraTransportWSHandler


def handler() -> ChimeraTransportWSHandler:
    # The constructor only stores what it is given; handle_task_exception reads none of it.
    nothing = cast(Any, None)
    return ChimeraTransportWSHandler(nothing, nothing, nothing, None, nothing, timedelta(seconds=1))


CLIENT_LEFT = {
    "strawberry": WebSocketDisconnected(),
    "starlette": WebSocketDisconnect(code=1006),
    "uvicorn": ClientDisconnected(),
    "starlette-after-close": RuntimeError('Cannot call "send" once a close message has been sent.'),
}


@pytest.mark.parametrize("layer", list(CLIENT_LEFT))
async def test_a_client_leaving_mid_send_logs_no_error(
    layer: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await handler().handle_task_exception(CLIENT_LEFT[layer])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_real_fault_in_an_operation_is_still_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    try:
        raise RuntimeError("a bug")
    except RuntimeError as error:
        fault = error
    await handler().handle_task_exception(fault)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
