"""A real, hostile OpenAI-compatible server for the `llm` backend's tests: raw HTTP/1.1 on a
socket of 127.0.0.1, so its status line, headers and encodings can be anything http.server would
not send. Modes (the answer to every POST):

- ``answer``: ``body`` at once (a chat completion, see :func:`completion`);
- ``driphead``: the status line and headers one byte every ``interval`` seconds (then ``body``);
- ``gzip2``: ``body`` declared ``Content-Encoding: gzip, gzip`` (see :func:`gzip_bomb`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import zlib

GOOD = {"stance": {"label": "pro", "explanation": "e"},
        "affect": {"label": "no", "explanation": "e"},
        "agreement": {"label": "agree", "explanation": "e"},
        "emotion": "anger", "intensity": "low"}


def completion(content: str) -> bytes:
    return json.dumps({"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content},
         "finish_reason": "stop"}]}).encode()


def gzip_bomb(megabytes: int) -> bytes:
    """gzip(gzip(`megabytes` MB of zeros)): a few KB that inflate to `megabytes` MB."""
    inner, outer = zlib.compressobj(9, zlib.DEFLATED, 31), zlib.compressobj(9, zlib.DEFLATED, 31)
    block, out = bytes(1 << 20), []
    for _ in range(megabytes):
        out.append(outer.compress(inner.compress(block)))
    out += [outer.compress(inner.flush()), outer.flush()]
    return b"".join(out)


class HostileLLM:
    """The server; :attr:`heads` holds each request's head, :attr:`url` its ``…/v1``."""

    def __init__(self, mode: str, body: bytes = b"", interval: float = 0.2) -> None:
        self.mode, self.body, self.interval = mode, body, interval
        self.heads: list[str] = []
        self._closed = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                got = conn.recv(65536)
                if not got:
                    return
                data += got
            head, _, rest = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                got = conn.recv(65536)
                if not got:
                    return
                rest += got
            self.heads.append(head.decode("latin-1"))
            extra = "Content-Encoding: gzip, gzip\r\n" if self.mode == "gzip2" else ""
            answer = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                      f"{len(self.body)}\r\n{extra}Connection: close\r\n\r\n").encode() + self.body
            if self.mode == "driphead":
                head_len = answer.index(b"\r\n\r\n") + 4
                for i in range(head_len):
                    if self._closed.is_set():
                        return
                    conn.sendall(answer[i:i + 1])
                    time.sleep(self.interval)
                answer = answer[head_len:]
            conn.sendall(answer)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
