"""An OpenAI-compatible chat server and a chat page for a trained checkpoint (FastAPI, uvicorn).

    POST /v1/chat/completions   OpenAI's request and response shapes; "stream": true sends
                                server-sent events, one chunk per piece of decoded text
    GET  /v1/models             the one model served
    GET  /health                {"status": "ok", "active": ..., "waiting": ...}
    GET  /                      the chat page (minimind/static/chat.html)

Messages become MiniMind's ChatML, tokenized exactly as SFT tokenizes them
(`minimind.dataset.encode_chat`), followed by `<|im_start|>assistant\\n`; the reply is sampled
with `minimind.generate.stream` (KV cache) and ends at `<|im_end|>` (or any other special token)
or after `max_tokens`.

Rules a client can rely on:
- Bad requests get status 400 (413 for a body over 4 MiB, 503 when the server is full) and an
  OpenAI error body, {"error": {"message", "type", "param", "code"}}, whose `param` names the
  field (`messages[1].role`, `max_tokens`, ...). `temperature` is in [0, 2] (0: greedy),
  `top_p` in (0, 1], `max_tokens` in [1, context - 1]. Fields of OpenAI's API this server does
  not implement (stop, tools, logprobs, penalties, n > 1, ...) are refused, not ignored; the
  `model` field is accepted and ignored, since one model is served.
- Context: the prompt plus `max_tokens` (when not given: the smaller of --max-tokens and a
  quarter of the context is kept free) must fit in the model's context. If it does not, the
  oldest messages are dropped whole, never a system message and never the last message; if the
  prompt still does not fit, the request is refused (400, code `context_length_exceeded`,
  param `messages`). `usage.prompt_tokens` counts what the model saw; the response header
  `X-Dropped-Messages` says how many messages were dropped.
- Concurrency: at most `max_active` replies are generated at once, interleaved one token at a
  time (a lock admits one forward pass at a time, so no reply waits for another to finish and
  each reply is computed exactly as if it were alone); up to `max_waiting` more wait in line in
  arrival order; beyond that the server answers 503 at once. A client that disconnects
  (mid-stream or while waiting) frees its place and its KV cache before the next token.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import anyio
import torch
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException

from minimind.dataset import encode_chat
from minimind.generate import stream
from minimind.tokenizer import BOS_ID, EOS_ID, PAD_ID, Tokenizer

log = logging.getLogger("minimind.serve")
DEFAULT_MAX_TOKENS = 256
MAX_BODY_BYTES = 4 << 20
MAX_TEMPERATURE = 2.0  # OpenAI's range; past it sampling is noise
# <|im_end|> ends the assistant's turn; <|im_start|> or <|endoftext|> mean the same thing from a
# model that skipped it, and printing them would only confuse a chat client.
END_OF_TURN = frozenset({PAD_ID, BOS_ID, EOS_ID})
# OpenAI fields whose meaning this server does not implement: a request that sets one (to
# anything but its neutral value) is refused rather than silently answered without it.
UNSUPPORTED = ("stop", "tools", "tool_choice", "functions", "function_call", "response_format",
               "logprobs", "top_logprobs", "logit_bias", "presence_penalty",
               "frequency_penalty", "audio", "modalities", "prediction")
NEUTRAL: tuple[Any, ...] = (None, False, 0, [], {})


class ServeError(ValueError):
    """A server that cannot be started as asked (bad address, port in use, wrong checkpoint)."""


class RequestError(Exception):
    """A request refused with an OpenAI-style error body; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str | None = None, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.param, self.status, self.code, self.kind = (
            message, param, status, code, kind)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}


# --- the request -------------------------------------------------------------------------------

class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str

    @field_validator("content", mode="before")
    @classmethod
    def _join_text_parts(cls, value: Any) -> Any:
        """OpenAI also allows content as [{"type": "text", "text": ...}, ...]: text only here."""
        if isinstance(value, list):
            parts = []
            for part in value:
                if not (isinstance(part, dict) and part.get("type") == "text"
                        and isinstance(part.get("text"), str)):
                    raise ValueError("content parts must be {'type': 'text', 'text': str}; "
                                     "this model reads text only")
                parts.append(part["text"])
            return "".join(parts)
        return value


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The fields of OpenAI's chat completion request this server reads."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0, le=MAX_TEMPERATURE)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    seed: int | None = Field(None, ge=0, lt=1 << 63)
    n: int = Field(1, ge=1, le=1)
    user: str | None = None

    @property
    def reply_limit(self) -> int | None:
        return self.max_completion_tokens if self.max_tokens is None else self.max_tokens


def field_path(loc: tuple[Any, ...]) -> str | None:
    """pydantic's ('messages', 0, 'role') -> 'messages[0].role'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def parse_chat_request(body: bytes) -> ChatRequest:
    """The request in `body`, or RequestError naming the first field that is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise RequestError(f"the body is {len(body):,} bytes; at most {MAX_BODY_BYTES:,}",
                           "body", status=413)
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(f"the body is not valid JSON ({err})", "body") from None
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}", "body")
    for name in UNSUPPORTED:
        if not any(data.get(name) is v or data.get(name) == v for v in NEUTRAL):
            raise RequestError(f"{name} is not supported by this server; leave it out", name)
    if data.get("max_tokens") is not None and data.get("max_completion_tokens") is not None:
        raise RequestError("give max_tokens or max_completion_tokens, not both",
                           "max_completion_tokens")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        param = field_path(first["loc"]) or "body"
        if first["type"] == "too_short" and param == "messages":
            message = "messages is empty; give at least one message"
        elif first["type"] == "missing":
            message = f"{param} is required"
        else:
            message = f"{param}: {first['msg']}"
            if first["type"] not in ("missing", "literal_error") and "input" in first:
                message += f", got {json.dumps(first['input'])[:80]}"
        raise RequestError(message, param) from None
    return request


# --- the prompt --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """Token ids the model reads, how many tokens it may add, and how many messages were cut."""

    ids: list[int]
    max_new_tokens: int
    dropped: int


def generation_prompt(tokenizer: Tokenizer) -> list[int]:
    """`<|im_start|>assistant\\n`: the assistant's turn, which the model then writes."""
    return [BOS_ID, *tokenizer.encode("assistant\n")]


def fit_prompt(
    tokenizer: Tokenizer, messages: list[dict[str, str]], context: int,
    max_tokens: int | None, default_max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Prompt:
    """ChatML ids of `messages` that leave room for the reply (the rule in the module doc)."""
    if max_tokens is not None and max_tokens > context - 1:
        raise RequestError(f"max_tokens {max_tokens} is past the model's context of {context} "
                           f"positions (at most {context - 1}, leaving one for the prompt)",
                           "max_tokens")
    reserve = max_tokens if max_tokens is not None else max(1, min(default_max_tokens,
                                                                   context // 4))
    pieces = [encode_chat(tokenizer, [m])[0] for m in messages]
    tail = generation_prompt(tokenizer)
    keep = list(range(len(messages)))
    dropped = 0

    def length() -> int:
        return sum(len(pieces[i]) for i in keep) + len(tail)

    while length() + reserve > context:
        oldest = next((i for i in keep[:-1] if messages[i]["role"] != "system"), None)
        if oldest is None:
            raise RequestError(
                f"the prompt is {length()} tokens after dropping {dropped} old message(s); with "
                f"{reserve} for the reply it does not fit the model's context of {context} "
                "(system messages and the last message are never dropped)",
                "messages", code="context_length_exceeded")
        keep.remove(oldest)
        dropped += 1
    ids = [t for i in keep for t in pieces[i]] + tail
    budget = max_tokens if max_tokens is not None else min(default_max_tokens,
                                                           context - len(ids))
    return Prompt(ids, budget, dropped)


class TextStream:
    """Decoded text piece by piece as tokens arrive, holding back a half-received character."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.tokens: list[int] = []
        self.sent = 0

    def push(self, token: int) -> str:
        self.tokens.append(token)
        text = self.tokenizer.decode(self.tokens)
        if text.endswith("\ufffd"):  # a multi-byte character still arriving
            return ""
        return self._take(text)

    def flush(self) -> str:
        return self._take(self.tokenizer.decode(self.tokens))

    def _take(self, text: str) -> str:
        piece, self.sent = text[self.sent:], len(text)
        return piece


# --- generation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Piece:
    text: str
    finish_reason: str | None = None


class Busy(RequestError):
    def __init__(self, active: int, waiting: int):
        super().__init__(f"the server is full ({active} replies generating, {waiting} waiting); "
                         "retry shortly", None, status=503, code="server_busy",
                         kind="server_error")


class ChatEngine:
    """The model, its tokenizer, and the line of requests waiting for it."""

    def __init__(self, model: Any, tokenizer: Tokenizer, *, model_id: str = "minimind",
                 max_active: int = 8, max_waiting: int = 32,
                 default_max_tokens: int = DEFAULT_MAX_TOKENS):
        if getattr(tokenizer, "kind", None) != "bpe":
            raise ServeError("serving needs a BPE tokenizer with ChatML's special tokens "
                             "(<|im_start|>, <|im_end|>); this checkpoint has a "
                             f"{getattr(tokenizer, 'kind', '?')} tokenizer")
        for name, value, low in (("max_active", max_active, 1), ("max_waiting", max_waiting, 0),
                                 ("default_max_tokens", default_max_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ServeError(f"{name} must be an int >= {low}, got {value!r}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.max_active, self.max_waiting = max_active, max_waiting
        self.default_max_tokens = default_max_tokens
        self.created = int(time.time())
        self.lock = threading.Lock()  # one forward pass at a time
        self.active = 0
        self.waiting = 0
        self.peak_active = 0  # the most replies ever generated at once
        self.steps = 0  # tokens generated since start (the tests watch it stop on disconnect)
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def context(self) -> int:
        return int(self.model.config.max_position_embeddings)

    def prepare(self, request: ChatRequest) -> Prompt:
        messages = [m.model_dump(include={"role", "content"}) for m in request.messages]
        return fit_prompt(self.tokenizer, messages, self.context, request.reply_limit,
                          self.default_max_tokens)

    def job(self, prompt: Prompt, request: ChatRequest) -> Job:
        """A place in line for one reply, or Busy when the line is full."""
        if self.active + self.waiting >= self.max_active + self.max_waiting:
            raise Busy(self.active, self.waiting)
        return Job(self, prompt, request)

    def slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:  # a new server in the same process
            self._slots, self._loop = asyncio.Semaphore(self.max_active), loop
        return self._slots

    def tokens(self, prompt: Prompt, request: ChatRequest) -> Iterator[tuple[torch.Tensor, Any]]:
        greedy = request.temperature == 0
        generator = torch.Generator()
        if request.seed is not None:
            generator.manual_seed(request.seed)
        else:
            generator.seed()
        return stream(self.model, torch.tensor([prompt.ids]), prompt.max_new_tokens,
                      temperature=request.temperature if not greedy else 1.0, greedy=greedy,
                      top_p=request.top_p if request.top_p < 1 else None, generator=generator)


class Job:
    """One reply: waits for a slot, then steps the KV-cached generator one token per turn of
    the lock; close() frees the slot and the cache, whatever state the job is in."""

    def __init__(self, engine: ChatEngine, prompt: Prompt, request: ChatRequest):
        self.engine, self.prompt, self.request = engine, prompt, request
        self.generated = 0
        self.state = "waiting"  # -> active -> closed
        self._tokens: Iterator[tuple[torch.Tensor, Any]] | None = None
        self._slots: asyncio.Semaphore | None = None
        engine.waiting += 1

    async def pieces(self) -> AsyncIterator[Piece]:
        engine = self.engine
        slots = engine.slots()
        await slots.acquire()
        if self.state == "closed":  # closed while waiting: hand the slot straight back
            slots.release()
            return
        self._slots = slots
        engine.waiting -= 1
        engine.active += 1
        engine.peak_active = max(engine.peak_active, engine.active)
        self.state = "active"
        self._tokens = engine.tokens(self.prompt, self.request)
        text = TextStream(engine.tokenizer)
        while True:
            # Not cancellable: a cancelled request waits out its current step, so close() never
            # meets a generator that a worker thread is still running.
            token = await anyio.to_thread.run_sync(self._step)
            if token is None:
                yield Piece(text.flush(), "length")
                return
            if token in END_OF_TURN:
                yield Piece(text.flush(), "stop")
                return
            piece = text.push(token)
            if piece:
                yield Piece(piece)

    def _step(self) -> int | None:
        with self.engine.lock:
            if self.state != "active" or self._tokens is None:
                return None
            item = next(self._tokens, None)
            if item is None:
                return None
            self.engine.steps += 1
            self.generated += 1
            return int(item[0])

    def close(self) -> None:
        if self.state == "closed":
            return
        if self.state == "waiting":
            self.engine.waiting -= 1
        else:
            self.engine.active -= 1
            if self._slots is not None:
                self._slots.release()
        self.state = "closed"
        if self._tokens is not None:
            close = getattr(self._tokens, "close", None)
            if close is not None:
                close()
            self._tokens = None  # the KV cache lives in the generator's frame


# --- the HTTP application ----------------------------------------------------------------------

def chat_page() -> str:
    return resources.files("minimind").joinpath("static/chat.html").read_text("utf-8")


def _usage(job: Job) -> dict[str, int]:
    prompt = len(job.prompt.ids)
    return {"prompt_tokens": prompt, "completion_tokens": job.generated,
            "total_tokens": prompt + job.generated}


def create_app(engine: ChatEngine) -> Any:
    """The FastAPI application serving `engine` (run it with uvicorn, or `server`)."""

    # No /docs: FastAPI's page loads its scripts from a CDN, which an offline learner lacks.
    app = FastAPI(title="MiniMind", description="An OpenAI-compatible chat API for a MiniMind "
                  "checkpoint.", docs_url=None, redoc_url=None)

    def error(err: RequestError, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error(RequestError(f"{request.method} {request.url.path}: {exc.detail}", None,
                                  status=exc.status_code, kind=kind))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        return error(RequestError(f"internal error: {type(exc).__name__}: {exc}", None,
                                  status=500, kind="server_error"))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(chat_page())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": engine.model_id, "context": engine.context,
                "active": engine.active, "waiting": engine.waiting,
                "peak_active": engine.peak_active, "tokens_generated": engine.steps,
                "max_active": engine.max_active, "max_waiting": engine.max_waiting}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{
            "id": engine.model_id, "object": "model", "created": engine.created,
            "owned_by": "minimind", "context_length": engine.context}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return error(RequestError(f"the body is {int(length):,} bytes; at most "
                                      f"{MAX_BODY_BYTES:,}", "body", status=413))
        try:
            body = parse_chat_request(await request.body())
            # Tokenizing up to 4 MiB of text takes a while: not on the event loop.
            prompt = await anyio.to_thread.run_sync(engine.prepare, body)
            job = engine.job(prompt, body)
        except Busy as err:
            return error(err, {"Retry-After": "1"})
        except RequestError as err:
            return error(err)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()),
                "model": engine.model_id}
        headers = {"X-Dropped-Messages": str(prompt.dropped)}
        if body.stream:
            usage = body.stream_options is not None and body.stream_options.include_usage
            return _JobResponse(job, _events(job, meta, usage),
                                headers={**headers, "Cache-Control": "no-cache"})
        try:
            reply = await _collect(job, request.receive)
        finally:
            job.close()
        if reply is None:  # nobody is listening any more
            return JSONResponse({}, status_code=499)
        text, finish = reply
        return JSONResponse({**meta, "object": "chat.completion", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": text},
            "logprobs": None, "finish_reason": finish}], "usage": _usage(job)}, headers=headers)

    return app


class _JobResponse(StreamingResponse):
    """Server-sent events whose job is closed however the response ends (finished,
    client gone, cancelled before the first event)."""

    def __init__(self, job: Job, events: AsyncIterator[str], headers: dict[str, str]):
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self.job = job

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.job.close()


async def _collect(job: Job, receive: Callable[[], Awaitable[dict[str, Any]]]
                   ) -> tuple[str, str] | None:
    """The whole reply and its finish reason; None if the client leaves first (while in line
    or while its reply is generated: a listener for the disconnect cancels the wait)."""
    reply: tuple[str, str] | None = None
    async with anyio.create_task_group() as group:
        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        group.start_soon(listen)
        parts: list[str] = []
        finish = "length"  # if closed while waiting
        failure: Exception | None = None
        try:
            async for piece in job.pieces():
                parts.append(piece.text)
                finish = piece.finish_reason or finish
            reply = "".join(parts), finish
        except Exception as err:  # noqa: BLE001 - raised below, outside the task group
            failure = err  # (inside it, anyio would wrap it in an ExceptionGroup)
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return reply


async def _events(job: Job, meta: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    def event(delta: dict[str, str], finish: str | None = None, **extra: Any) -> str:
        chunk = {**meta, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    try:
        yield event({"role": "assistant", "content": ""})
        try:
            async for piece in job.pieces():
                if piece.text:
                    yield event({"content": piece.text})
                if piece.finish_reason:
                    yield event({}, piece.finish_reason)
        except Exception as err:  # noqa: BLE001 - the status line is gone; tell the client
            log.exception("generation failed")
            failure = RequestError(f"internal error: {type(err).__name__}: {err}", None,
                                   status=500, kind="server_error")
            yield f"data: {json.dumps(failure.body())}\n\n"
            return
        if include_usage:
            chunk = {**meta, "object": "chat.completion.chunk", "choices": [],
                     "usage": _usage(job)}
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        job.close()


# --- running it --------------------------------------------------------------------------------

def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ServeError saying why not (port 0: any free one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeError(f"port must be an int in [0, 65535], got {port!r}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ServeError(f"cannot resolve host {host!r}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror}"
                         + ("; choose another --port" if err.errno == 98 else "")) from None
    sock.set_inheritable(True)
    return sock


def server(engine: ChatEngine, log_level: str = "info") -> Any:
    """A uvicorn.Server for `engine`; run it with `.run(sockets=[bind(host, port)])`."""
    import uvicorn

    config = uvicorn.Config(create_app(engine), log_level=log_level, timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
