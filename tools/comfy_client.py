"""Talks to a ComfyUI server over its HTTP API, with the standard library only.

`ComfyClient(url)` is what the tools use against a ComfyUI the user runs
(`python -m tools.batch_edit --url ...`); `tools.comfy_host.ComfyHost` is the same client for a
server it starts itself. Prompts go in API format ({node_id: {"class_type", "inputs"}});
every failure the server reports comes back as a `HostError` naming the node and the
server's own message.
"""
from __future__ import annotations

import json
import mimetypes
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Mapping


class HostError(RuntimeError):
    """A prompt was rejected or failed in the host, or the host itself failed.

    ``str(err)`` always carries the node type(s) and the host's messages verbatim.
    Attributes (None when not applicable):

    * ``kind``: "validation", "execution", "interrupted", "timeout", "startup", "http"
    * ``node_id``, ``node_type``, ``exception_type``, ``exception_message``,
      ``traceback`` (str): for execution errors
    * ``node_errors``: the raw ``node_errors`` dict of a validation error
    * ``payload``: the raw JSON the host sent (error body or history entry)
    * ``log_tail``: the tail of the server log, when relevant
    """

    def __init__(self, message: str, *, kind: str, node_id: str | None = None,
                 node_type: str | None = None, exception_type: str | None = None,
                 exception_message: str | None = None, traceback: str | None = None,
                 node_errors: dict | None = None, payload: Any = None,
                 log_tail: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.node_id = node_id
        self.node_type = node_type
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = traceback
        self.node_errors = node_errors
        self.payload = payload
        self.log_tail = log_tail


class ComfyClient:
    """A ComfyUI server at ``url`` (e.g. ``http://127.0.0.1:8188``), already running."""

    def __init__(self, url: str):
        self._url = url.rstrip("/")
        self.kind = f"running at {self._url}"
        self._object_info: dict | None = None
        self.client_id = uuid.uuid4().hex

    @property
    def url(self) -> str:
        return self._url

    @property
    def running(self) -> bool:
        """Whether the server is up, as far as this side can tell (a server it did not start
        shows that it is gone through failed requests)."""
        return True

    def log_tail(self, n: int = 80) -> str:
        """The server's log: not this side's to read for a server it did not start."""
        return ""

    def check(self) -> "ComfyClient":
        """Fails with a sentence when no ComfyUI answers at the URL."""
        try:
            self.get("/system_stats", timeout=10)
        except HostError as exc:
            raise HostError(f"no ComfyUI answers at {self._url} ({exc})", kind="http") from None
        return self

    # ------------------------------------------------------------------ HTTP
    def _request(self, method: str, path: str, body: Any = None,
                 timeout: float = 60.0) -> tuple[int, Any]:
        """(status, parsed JSON or raw text). HTTP error statuses are returned, not raised."""
        data = None
        headers = {}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, ConnectionError) as e:
            tail = self.log_tail(40)
            state = "exited" if not self.running else "running"
            raise HostError(f"{method} {path} failed ({e}); server {state}; log tail:\n{tail}",
                            kind="http", log_tail=tail) from e
        text = raw.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str, timeout: float = 60.0) -> Any:
        status, payload = self._request("GET", path, timeout=timeout)
        if status != 200:
            raise HostError(f"GET {path}: HTTP {status}: {payload}", kind="http", payload=payload)
        return payload

    def post(self, path: str, body: Any, timeout: float = 60.0) -> tuple[int, Any]:
        return self._request("POST", path, body, timeout=timeout)

    def object_info(self, node_class: str | None = None, *, refresh: bool = False) -> dict:
        """GET /object_info (cached; ``refresh=True`` re-reads, e.g. after adding models,
        whose names appear in the loaders' input lists). With ``node_class``: that
        node's entry only (KeyError if the host does not have it)."""
        if node_class is not None:
            info = self.get("/object_info/" + urllib.parse.quote(node_class, safe=""))
            return info[node_class]
        if self._object_info is None or refresh:
            self._object_info = self.get("/object_info", timeout=300)
        return self._object_info

    def node_types(self) -> set[str]:
        return set(self.object_info())

    # ------------------------------------------------------------------ files
    def upload(self, path: Path, subfolder: str) -> str:
        """Uploads an image into the server's input/<subfolder> (never over a file there); the
        name Load Image takes."""
        return self.upload_bytes(path.name, path.read_bytes(), subfolder)

    def upload_bytes(self, name: str, data: bytes, subfolder: str) -> str:
        """`upload` for an image's bytes named `name` (a worker that has no copy of the file)."""
        boundary = uuid.uuid4().hex
        fields = [("subfolder", subfolder), ("type", "input"), ("overwrite", "false")]
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                        for k, v in fields)
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                 f"Content-Type: {kind}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(self.url + "/upload/image", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise HostError(f"upload of {name} refused: HTTP {exc.code} {exc.read()[:200]!r}",
                            kind="http") from None
        return f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") else answer["name"]

    def download(self, item: Mapping[str, Any]) -> bytes:
        """The bytes of a file a run's outputs name (``filename``, ``subfolder``, ``type``)."""
        query = urllib.parse.urlencode({"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                        "type": item.get("type", "output")})
        with urllib.request.urlopen(f"{self.url}/view?{query}", timeout=120) as response:
            return response.read()

    # ------------------------------------------------------------------ prompts
    def queue(self, prompt: Mapping[str, Any]) -> str:
        """POST /prompt; return the prompt id or raise HostError(kind="validation")."""
        status, payload = self.post("/prompt", {"prompt": prompt, "client_id": self.client_id})
        if status == 200 and isinstance(payload, dict) and "prompt_id" in payload:
            return payload["prompt_id"]
        raise self._validation_error(prompt, status, payload)

    def run(self, prompt: Mapping[str, Any], timeout: float = 600) -> dict:
        """Queue ``prompt`` (API format: {node_id: {"class_type", "inputs"}}), wait for
        it, and return the history entry's ``outputs`` ({node_id: {"images": [...]}}).

        Raises HostError on validation errors (HTTP 400 with node_errors), execution
        errors (history status message ``execution_error``), interruption, a dead
        server, or ``timeout`` seconds passing (the prompt is then interrupted)."""
        prompt_id = self.queue(prompt)
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            history = self.get("/history/" + prompt_id)
            entry = history.get(prompt_id) if isinstance(history, dict) else None
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("completed") or status.get("status_str") in ("success", "error"):
                    self._raise_for_status(prompt, prompt_id, entry)
                    return entry.get("outputs") or {}
            if not self.running:
                tail = self.log_tail(60)
                raise HostError(f"ComfyUI died while running prompt {prompt_id}; log tail:\n{tail}",
                                kind="http", log_tail=tail)
            if time.monotonic() > deadline:
                self.interrupt()
                tail = self.log_tail(40)
                raise HostError(f"prompt {prompt_id} did not finish within {timeout:.0f}s; "
                                f"log tail:\n{tail}", kind="timeout", log_tail=tail)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)

    def interrupt(self) -> None:
        """POST /interrupt: stop the prompt now executing."""
        self._request("POST", "/interrupt", {})

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """POST /free: ask the host to unload models / drop its caches (applied by
        the host's worker after the current prompt)."""
        self._request("POST", "/free", {"unload_models": unload_models,
                                        "free_memory": free_memory})

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _class_type(prompt: Mapping[str, Any], node_id: Any) -> str | None:
        node = prompt.get(str(node_id)) if isinstance(prompt, Mapping) else None
        if isinstance(node, Mapping):
            return node.get("class_type")
        return None

    def _validation_error(self, prompt, status, payload) -> HostError:
        if not isinstance(payload, dict):
            return HostError(f"POST /prompt: HTTP {status}: {payload}", kind="http",
                             payload=payload, log_tail=self.log_tail(40))
        lines = []
        err = payload.get("error")
        if isinstance(err, dict):
            head = err.get("message") or err.get("type") or "invalid prompt"
            details = err.get("details")
            lines.append(f"{head}: {details}" if details else str(head))
        elif err:
            lines.append(str(err))
        node_errors = payload.get("node_errors") or {}
        first_type = None
        first_id = None
        if isinstance(node_errors, dict):
            for node_id, ne in node_errors.items():
                ctype = (ne or {}).get("class_type") or self._class_type(prompt, node_id)
                if first_type is None:
                    first_type, first_id = ctype, node_id
                for e in (ne or {}).get("errors", []):
                    msg = e.get("message", "")
                    details = e.get("details")
                    lines.append(f"  node {node_id} ({ctype}): {msg}"
                                 + (f": {details}" if details else ""))
        text = f"prompt rejected by ComfyUI ({self.kind}, HTTP {status}):\n" + "\n".join(lines)
        return HostError(text, kind="validation", node_id=first_id, node_type=first_type,
                         node_errors=node_errors if isinstance(node_errors, dict) else None,
                         payload=payload)

    def _raise_for_status(self, prompt, prompt_id: str, entry: dict) -> None:
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        for msg in messages:
            if not (isinstance(msg, (list, tuple)) and len(msg) == 2):
                continue
            event, data = msg
            data = data or {}
            if event == "execution_error":
                node_type = data.get("node_type") or self._class_type(prompt, data.get("node_id"))
                # upstream appends "\n" to the message; the raw one stays in ``payload``
                message = data.get("exception_message")
                if isinstance(message, str):
                    message = message.rstrip("\n")
                tb = data.get("traceback")
                tb_text = "".join(tb) if isinstance(tb, list) else (tb or "")
                text = (f"{node_type} (node {data.get('node_id')}) failed in ComfyUI "
                        f"({self.kind}): {data.get('exception_type')}: "
                        f"{message}")
                if tb_text:
                    text += "\n" + tb_text.rstrip()
                raise HostError(text, kind="execution", node_id=data.get("node_id"),
                                node_type=node_type, exception_type=data.get("exception_type"),
                                exception_message=message,
                                traceback=tb_text, payload=entry)
            if event == "execution_interrupted":
                node_type = data.get("node_type") or self._class_type(prompt, data.get("node_id"))
                raise HostError(f"prompt {prompt_id} interrupted at {node_type} "
                                f"(node {data.get('node_id')})", kind="interrupted",
                                node_id=data.get("node_id"), node_type=node_type, payload=entry)
        if status.get("status_str") == "error" or status.get("completed") is False:
            tail = self.log_tail(40)
            raise HostError(f"prompt {prompt_id} ended with status {status}; log tail:\n{tail}",
                            kind="execution", payload=entry, log_tail=tail)
