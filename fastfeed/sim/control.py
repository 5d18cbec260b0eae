"""Live subscription control messages (SUBSCRIBE & co.), sans-IO.

:func:`handle_control` takes the raw text of one client message and a connection state object
and returns the reply bytes.  Error texts are the documented ones (Binance spot WebSocket
streams docs, "Error Messages").
"""

from __future__ import annotations

import json
import re
from typing import Any, Protocol

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ID_STR = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_METHOD_END = re.compile(r'"method"\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\s]*)')

MSG_ID = "Invalid request: request ID must be an unsigned integer"
MSG_TOO_MANY = "Invalid request: too many parameters"
MSG_PROP_NAME = "Invalid request: property name must be a string"
MSG_BOOL = "Invalid value type: expected Boolean"
MSG_UNKNOWN_PROP = "Unknown property"
MSG_INVALID_STREAM = "Invalid request: invalid stream"


class ControlState(Protocol):
    combined: bool

    def valid_stream(self, name: str) -> bool: ...
    def subscriptions(self) -> list[str]: ...
    def subscribe(self, names: list[str]) -> bool: ...  # False: over the stream cap
    def unsubscribe(self, names: list[str]) -> None: ...


class TooManyStreams(Exception):
    """SUBSCRIBE would exceed the per-connection stream cap; the server closes the connection."""


def _valid_id(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -(2**63) <= v < 2**63
    return isinstance(v, str) and bool(_ID_STR.match(v))


def error_reply(code: int, msg: str, req_id: Any = ..., nested: bool = False) -> bytes:
    """``{"code":c,"msg":m[,"id":i]}``, or ``{"error":{...},"id":i}`` when ``nested``.

    The flat form is the documented one; spot has also been seen answering the nested form
    ``{"error":{"code":2,"msg":"Invalid request: invalid stream"},"id":2}`` (reported in the
    public issue ctubio/Krypto-trading-bot#1121), which ``error_shape="nested"`` reproduces.
    """
    error: dict[str, object] = {"code": code, "msg": msg}
    body = {"error": error} if nested else error
    if req_id is not ...:
        body["id"] = req_id
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def result_reply(result: Any, req_id: Any) -> bytes:
    return json.dumps({"result": result, "id": req_id}, separators=(",", ":")).encode()


def handle_control(raw: bytes, state: ControlState, nested_errors: bool = False) -> bytes:
    """Process one control message and return the reply.

    Raises :class:`TooManyStreams` when a SUBSCRIBE would exceed the stream cap.
    """

    def err(code, msg, rid=...):
        return error_reply(code, msg, rid, nested_errors)

    try:
        text = raw.decode("utf-8")
        req = json.loads(text)
    except UnicodeDecodeError:
        return err(3, "Invalid JSON: expected value at line 1 column 1")
    except json.JSONDecodeError as e:
        return err(3, f"Invalid JSON: expected value at line {e.lineno} column {e.colno}")
    if not isinstance(req, dict):
        return err(2, "Invalid request: expected a JSON object at line 1 column 1")
    if "method" not in req:
        # serde reports the missing field at the end of the object.
        lines = text.rstrip().split("\n")
        return err(
            2,
            f"Invalid request: missing field `method` at line {len(lines)} column {len(lines[-1])}",
        )
    method = req["method"]
    if method not in METHODS:
        m = _METHOD_END.search(text)
        col = m.end() if m else len(text)
        return err(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of "
            f"`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
            f"`GET_PROPERTY` at line 1 column {col}",
        )
    if "id" not in req or not _valid_id(req["id"]):
        return err(2, MSG_ID)
    rid = req["id"]
    params = req.get("params", [])
    if params is None:
        params = []
    if not isinstance(params, list):
        return err(2, "Invalid request: params must be an array", rid)

    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not all(isinstance(p, str) and state.valid_stream(p) for p in params):
            return err(2, MSG_INVALID_STREAM, rid)
        if method == "SUBSCRIBE":
            if not state.subscribe(params):
                raise TooManyStreams()
        else:
            state.unsubscribe(params)
        return result_reply(None, rid)
    if method == "LIST_SUBSCRIPTIONS":
        if params:
            return err(2, MSG_TOO_MANY, rid)
        return result_reply(state.subscriptions(), rid)
    if method == "SET_PROPERTY":
        if len(params) > 2:
            return err(2, MSG_TOO_MANY, rid)
        if not params or not isinstance(params[0], str):
            return err(2, MSG_PROP_NAME, rid)
        if params[0] != "combined":
            return err(0, MSG_UNKNOWN_PROP, rid)
        if len(params) < 2 or not isinstance(params[1], bool):
            return err(1, MSG_BOOL, rid)
        state.combined = params[1]
        return result_reply(None, rid)
    # GET_PROPERTY
    if len(params) > 1:
        return err(2, MSG_TOO_MANY, rid)
    if not params or not isinstance(params[0], str):
        return err(2, MSG_PROP_NAME, rid)
    if params[0] != "combined":
        return err(0, MSG_UNKNOWN_PROP, rid)
    return result_reply(state.combined, rid)
