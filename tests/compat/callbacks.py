"""Receiving what Taskyard sends: a real HTTP callback receiver, signature
checks with Twilio's own ``RequestValidator``, and a small Server-Sent Events
reader for the live event stream.

``CallbackReceiver`` is a stdlib ``http.server`` on a free 127.0.0.1 port,
served from a thread.  It records every request (method, path, headers, form
parameters, arrival time) and answers each path with a programmable ``Reply``:
a status, content type, body, a delay before answering, or closing the
connection without answering at all.  ``stop()`` closes the listening socket
*and* every open connection, so the port refuses connections until
``start()`` binds the same port again (the "receiver is down, then comes back"
case).
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator

# ---------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """How the receiver answers one request."""

    status: int = 200
    body: Union[str, bytes] = ""
    content_type: Optional[str] = None
    delay: float = 0.0
    close: bool = False  # close the connection without sending any answer

    @classmethod
    def json(cls, document: Any, status: int = 200, *, delay: float = 0.0,
             content_type: str = "application/json") -> "Reply":
        return cls(status=status, body=json.dumps(document), content_type=content_type, delay=delay)

    @classmethod
    def empty(cls, status: int = 200) -> "Reply":
        return cls(status=status)

    @classmethod
    def hang_up(cls) -> "Reply":
        return cls(close=True)


EMPTY_200 = Reply()
NO_CONTENT = Reply(status=204, content_type="application/json")
DEFER = Reply.json({})
ACCEPT = Reply.json({"instruction": "accept"})

Responder = Union[Reply, Callable[["Received"], Reply]]


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str  # path and query string, as sent on the request line
    headers: Dict[str, str]  # lower-cased names
    body: bytes
    pairs: List[Tuple[str, str]]  # form parameters in the order sent
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival
    reply: Optional[Reply] = None

    @property
    def params(self) -> Dict[str, str]:
        out: Dict[str, str] = {}
        for k, v in self.pairs:
            assert k not in out, f"parameter {k!r} sent twice in {self.path}"
            out[k] = v
        return out

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def __repr__(self) -> str:  # short, for assertion messages
        keys = ("EventType", "Sid", "ReservationSid", "WorkerSid", "Instruction")
        shown = {k: v for k, v in self.pairs if k in keys}
        return f"<{self.method} {self.path} {shown}>"


# ---------------------------------------------------------------------------
# The receiver
# ---------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, handler, owner: "CallbackReceiver"):
        self.owner = owner
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like any real web server
    server: _Server

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        self.server.owner._track(self.connection, False)

    def log_message(self, *args):  # quiet
        pass

    def _handle(self):
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        pairs: List[Tuple[str, str]] = []
        if "application/x-www-form-urlencoded" in headers.get("content-type", ""):
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        req = Received(
            method=self.command,
            path=self.path,
            headers=headers,
            body=body,
            pairs=pairs,
            at=time.monotonic(),
            wall=time.time(),
        )
        reply = owner._reply_for(req)
        req.reply = reply
        owner._record(req)
        if reply.delay and owner._stopping.wait(reply.delay):
            reply = Reply(close=True)  # the receiver is going down: drop the request
        if reply.close or owner._stopping.is_set():
            self.close_connection = True
            return
        data = reply.body.encode() if isinstance(reply.body, str) else reply.body
        try:
            self.send_response(reply.status)
            if reply.content_type:
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the caller gave up waiting (timeout) and hung up
            self.close_connection = True

    do_POST = do_GET = do_PUT = do_DELETE = _handle


class CallbackReceiver:
    """A programmable HTTP endpoint on 127.0.0.1 that records every request."""

    def __init__(self, port: Optional[int] = None):
        self.port = port
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._received: List[Received] = []
        self._responders: Dict[str, Any] = {}
        self._default: Responder = EMPTY_200
        self._connections: set = set()
        self._stopping = threading.Event()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "CallbackReceiver":
        assert self._server is None, "receiver already running"
        self._stopping.clear()
        deadline = time.monotonic() + 10.0
        while True:
            try:
                self._server = _Server(("127.0.0.1", self.port or 0), _Handler, self)
                break
            except OSError:
                if self.port is None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # our old port is still being released
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and every open connection: from now on
        the port refuses connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                conn.close()
            except OSError:
                pass
        self._server = None
        if self._thread is not None:
            self._thread.join(5)
        self._thread = None

    def restart(self) -> "CallbackReceiver":
        """Stop (if running), then listen again on the same port."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self._server is not None

    def url(self, path: str) -> str:
        assert self.port is not None, "receiver was never started"
        return f"http://127.0.0.1:{self.port}{path}"

    # -- programming the answers -------------------------------------------
    def answer(self, path: str, *replies: Responder) -> None:
        """How to answer requests to ``path`` (the path without query string).

        One reply: always that.  Several: one per request in turn, the last
        one repeating.  A callable gets the ``Received`` request and returns
        the ``Reply``."""
        assert replies, "give at least one reply"
        with self._lock:
            self._responders[path] = list(replies)

    def answer_default(self, reply: Responder) -> None:
        with self._lock:
            self._default = reply

    def _reply_for(self, req: Received) -> Reply:
        path = req.path.split("?", 1)[0]
        with self._lock:
            replies = self._responders.get(path)
            if replies is None:
                chosen = self._default
            elif len(replies) > 1:
                chosen = replies.pop(0)
            else:
                chosen = replies[0]
        return chosen(req) if callable(chosen) else chosen

    # -- what was received -------------------------------------------------
    def _record(self, req: Received) -> None:
        with self._cond:
            self._received.append(req)
            self._cond.notify_all()

    def _track(self, conn, alive: bool) -> None:
        with self._lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def requests(self, path: Optional[str] = None) -> List[Received]:
        """Every request received so far (to ``path`` only, if given), oldest first."""
        with self._lock:
            reqs = list(self._received)
        if path is None:
            return reqs
        return [r for r in reqs if r.path.split("?", 1)[0] == path]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(
        self,
        predicate: Callable[[List[Received]], bool],
        path: Optional[str] = None,
        *,
        timeout: float = 10.0,
        what: str = "requests",
    ) -> List[Received]:
        """Wait until ``predicate(requests(path))`` holds; return those requests."""
        deadline = time.monotonic() + timeout
        while True:
            reqs = self.requests(path)
            if predicate(reqs):
                return reqs
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what} on {path or 'any path'}; "
                    f"received: {reqs!r}"
                )
            with self._cond:
                self._cond.wait(min(remaining, 0.1))

    def wait_count(self, path: str, count: int, *, timeout: float = 10.0) -> List[Received]:
        """Wait until at least ``count`` requests reached ``path``; return them all."""
        return self.wait_for(lambda rs: len(rs) >= count, path, timeout=timeout,
                             what=f"{count} request(s)")

    def assert_quiet(self, path: str, count: int, duration: float) -> None:
        """Check that ``path`` does not get more than ``count`` requests during
        the next ``duration`` seconds."""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            got = self.requests(path)
            assert len(got) <= count, f"expected at most {count} request(s) to {path}, got {got!r}"
            with self._cond:
                self._cond.wait(0.05)
        got = self.requests(path)
        assert len(got) <= count, f"expected at most {count} request(s) to {path}, got {got!r}"

    def summary(self, limit: int = 40) -> str:
        reqs = self.requests()
        lines = [f"{len(reqs)} request(s) received on port {self.port}"]
        for r in reqs[-limit:]:
            status = "closed" if r.reply is None or r.reply.close else r.reply.status
            lines.append(f"  {r.wall:.3f} {r!r} -> {status}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------


def signature_is_valid(auth_token: str, url: str, req: Received) -> bool:
    """What an application does with Twilio's helper library: validate
    ``X-Twilio-Signature`` against the URL it configured and the POST params."""
    sig = req.header("X-Twilio-Signature")
    if not sig:
        return False
    return RequestValidator(auth_token).validate(url, req.params, sig)


def assert_signed(auth_token: str, url: str, req: Received) -> None:
    assert req.header("X-Twilio-Signature"), f"no X-Twilio-Signature on {req!r}"
    assert signature_is_valid(auth_token, url, req), (
        f"X-Twilio-Signature {req.header('X-Twilio-Signature')!r} does not validate for {url} "
        f"with params {req.params!r}"
    )


def camel_case(snake: str) -> str:
    """``task_queue_sid`` → ``TaskQueueSid`` (how callbacks name event_data keys)."""
    return "".join(w[:1].upper() + w[1:] for w in snake.split("_") if w)


def dedupe_by(reqs: Iterable[Received], key: str) -> List[Received]:
    """First occurrence of each value of parameter ``key``, in arrival order."""
    seen = set()
    out = []
    for r in reqs:
        k = r.params.get(key)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


# ---------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------


@dataclass
class SseMessage:
    id: Optional[str]
    event: Optional[str]
    data: str
    fields: Dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.data)


class SseStream:
    """Reads ``text/event-stream`` messages from an open ``requests`` response
    in a background thread.  ``next(timeout)`` returns the next message."""

    def __init__(self, response):
        self.response = response
        self.messages: "queue.Queue[Union[SseMessage, BaseException, None]]" = queue.Queue()
        self.received: List[SseMessage] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = b""
        current: Dict[str, List[str]] = {}
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                buf += chunk
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    line = raw.rstrip(b"\r").decode("utf-8")
                    if line == "":
                        if current:
                            self.messages.put(self._message(current))
                        current = {}
                    elif line.startswith(":"):
                        continue  # comment / keep-alive
                    else:
                        name, _, value = line.partition(":")
                        if value.startswith(" "):
                            value = value[1:]
                        current.setdefault(name, []).append(value)
            self.messages.put(None)  # end of stream
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            self.messages.put(e)

    @staticmethod
    def _message(fields_: Dict[str, List[str]]) -> SseMessage:
        return SseMessage(
            id=fields_.get("id", [None])[-1],
            event=fields_.get("event", [None])[-1],
            data="\n".join(fields_.get("data", [])),
            fields={k: "\n".join(v) for k, v in fields_.items()},
        )

    def next(self, timeout: float = 5.0) -> SseMessage:
        try:
            item = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no SSE message within {timeout}s; received so far: "
                f"{[(m.id, m.event) for m in self.received]}"
            ) from None
        if item is None:
            raise AssertionError("the event stream ended")
        if isinstance(item, BaseException):
            raise AssertionError(f"reading the event stream failed: {item!r}")
        self.received.append(item)
        return item

    def until(self, predicate: Callable[[SseMessage], bool], timeout: float = 5.0) -> List[SseMessage]:
        """Messages up to and including the first one matching ``predicate``."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            msg = self.next(max(0.01, deadline - time.monotonic()))
            got.append(msg)
            if predicate(msg):
                return got

    def close(self) -> None:
        # Shut the socket down first: the reader thread is blocked in a read,
        # and closing the response alone would wait for the next keep-alive.
        conn = getattr(self.response.raw, "connection", None) or getattr(self.response.raw, "_connection", None)
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(2)
        try:
            self.response.close()
        except Exception:
            pass
