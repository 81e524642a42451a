"""Hostile and careless input against the OpenAI-compatible server, on 127.0.0.1 only.

Each case is sent to a live server (the real app under uvicorn in a thread) over a scripted engine,
with the official `openai` client or raw httpx/sockets: lone surrogates in requests and in the model's
output, output JSON cannot hold, client mistakes that must be a 400 naming the field, broken upstream
replies (502), slow and idle connections (timeouts, 408, the connection limit's 503) and the docs
routes behind the API key. Every response body is checked to be strict JSON in valid UTF-8.
"""
from __future__ import annotations

import importlib
import itertools
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import httpx  # noqa: E402

from conftest import RecordingEngine, build_chatml_tokenizer  # noqa: E402
from toolace_r.calls import ParseResult, ToolCall  # noqa: E402
from toolace_r.engines import get_engine  # noqa: E402
from toolace_r.serve import ServeConfig, ServerThread, create_app  # noqa: E402
from toolace_r.serve.responses import guarded_stream  # noqa: E402

KEY = "hostile-key"
MODEL = "scripted"
AUTH = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class HostileEngine(RecordingEngine):
    """Answers by keyword in the prompt; records every prompt.

    SURROGATE-TEXT: prose with a lone surrogate. SURROGATE-CALL: a JSON call whose argument holds
    one. INFINITE: a call with 1e999 and NaN arguments. TOOLONG: refuses the prompt (ValueError), as
    an engine does with a prompt longer than its context. Else a call if tools are shown, or prose.
    """

    name = "hostile"

    def answer(self, prompt: str, params) -> str:
        if "TOOLONG" in prompt:
            raise ValueError("prompt of 9999 tokens does not fit the model's context of 10")
        if "SURROGATE-TEXT" in prompt:
            return "caf\ud800 au lait"
        if "SURROGATE-CALL" in prompt:
            return '[{"name": "get_weather", "arguments": {"city": "Par\ud800is"}}]'
        if "INFINITE" in prompt:
            return '[{"name": "get_weather", "arguments": {"city": 1e999, "unit": NaN}}]'
        if "get_weather" in prompt:
            return '[get_weather(city="Paris")]'
        return "fine, thanks"


@pytest.fixture(scope="module")
def served():
    engine = HostileEngine()
    app = create_app(engine, ServeConfig(served_model_name=MODEL, api_key=KEY, max_body_bytes=400_000,
                                         batch_wait_ms=1))
    with ServerThread(app) as server:
        yield server, engine
    app.state.engine.close()


@pytest.fixture
def client(served):
    server, _ = served
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


def strict(raw: bytes) -> Any:
    """The body as strict JSON: valid UTF-8 (no raw surrogate) and no bare NaN/Infinity."""
    text = raw.decode("utf-8")

    def bare(name: str) -> Any:
        raise AssertionError(f"bare {name} in {text[:300]}")

    return json.loads(text, parse_constant=bare)


def events(raw: bytes) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    text = raw.decode("utf-8")
    return [block[len("data: "):] for block in text.split("\n\n") if block.startswith("data: ")]


def post_chat(server, body: Any = None, *, raw: bytes | str | None = None, timeout: float = 60) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body)
    return httpx.post(server.base_url + "/chat/completions", content=content, headers=AUTH, timeout=timeout)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def api_error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = strict(r.content)["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


# --- 1. lone surrogates ------------------------------------------------------------------------------

def test_lone_surrogate_in_request_content_is_answered_and_reaches_the_model_as_replacement(served):
    server, engine = served
    body = '{"model": "scripted", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'
    r = post_chat(server, raw=body)
    assert r.status_code == 200, r.text
    assert strict(r.content)["choices"][0]["message"]["content"] == "fine, thanks"
    prompt = next(p for p in reversed(engine.prompts) if "there" in p)
    assert "hi \ufffd there" in prompt
    prompt.encode("utf-8")  # nothing the tokenizer or an upstream request body could not encode

    streamed = post_chat(server, raw=body[:-1] + ', "stream": true}')
    assert streamed.status_code == 200
    payloads = events(streamed.content)
    assert payloads[-1] == "[DONE]"
    assert "".join(strict(p.encode())["choices"][0]["delta"].get("content") or ""
                   for p in payloads[:-1] if strict(p.encode())["choices"]) == "fine, thanks"


def test_lone_surrogate_in_model_output_is_escaped_not_a_500(served, client):
    server, _ = served
    r = post_chat(server, {"messages": user("SURROGATE-TEXT")})
    assert r.status_code == 200, r.text
    assert b"\\ud800" in r.content  # escaped in the JSON text, which json reads back as the same string
    assert strict(r.content)["choices"][0]["message"]["content"] == "caf\ud800 au lait"
    assert client.chat.completions.create(model=MODEL, messages=user("SURROGATE-TEXT")).choices[0].message.content \
        == "caf\ud800 au lait"

    streamed = post_chat(server, {"messages": user("SURROGATE-TEXT"), "stream": True})
    assert streamed.status_code == 200
    payloads = events(streamed.content)
    assert payloads[-1] == "[DONE]"
    text = "".join(strict(p.encode())["choices"][0]["delta"].get("content") or "" for p in payloads[:-1])
    assert text == "caf\ud800 au lait"

    call = post_chat(server, {"messages": user("SURROGATE-CALL"), "tools": [WEATHER]})
    assert call.status_code == 200, call.text
    message = strict(call.content)["choices"][0]["message"]
    # The parser may decode the call or refuse the surrogate (then the answer is content): both are
    # the model's answer, sent as strict JSON either way.
    if message.get("tool_calls"):
        [tool_call] = message["tool_calls"]
        tool_call["function"]["arguments"].encode("utf-8")  # the arguments string itself is escaped JSON
        assert json.loads(tool_call["function"]["arguments"]) == {"city": "Par\ud800is"}
    else:
        assert message["content"] == '[{"name": "get_weather", "arguments": {"city": "Par\ud800is"}}]'


def test_a_stream_failing_after_it_started_ends_with_an_error_chunk_and_done(served, client, monkeypatch):
    server, _ = served
    app_module = importlib.import_module("toolace_r.serve.app")
    real = app_module.chat_chunks

    def breaks_after_one(*args: Any, **kwargs: Any):
        yield from itertools.islice(real(*args, **kwargs), 1)
        raise RuntimeError("the answer was lost")

    monkeypatch.setattr(app_module, "chat_chunks", breaks_after_one)
    r = post_chat(server, {"messages": user("hello"), "stream": True})
    assert r.status_code == 200
    payloads = events(r.content)
    assert payloads[-1] == "[DONE]" and len(payloads) == 3
    assert strict(payloads[0].encode())["object"] == "chat.completion.chunk"
    error = strict(payloads[1].encode())["error"]
    assert error["type"] == "server_error" and "the answer was lost" in error["message"]
    with pytest.raises(openai.APIError, match="the answer was lost"):
        for _ in client.chat.completions.create(model=MODEL, messages=user("hello"), stream=True):
            pass
    monkeypatch.undo()
    assert client.chat.completions.create(model=MODEL, messages=user("hello")).choices[0].message.content


def test_guarded_stream_passes_a_whole_stream_through_unchanged():
    chunks = ['data: {"a": 1}\n\n', "data: [DONE]\n\n"]
    assert list(guarded_stream(iter(chunks))) == [c.encode() for c in chunks]


# --- 2 and 6. the model's output: never the client's fault, never a bare NaN -------------------------

def test_non_finite_call_arguments_are_null_in_strict_json(served):
    server, _ = served
    r = post_chat(server, {"messages": user("INFINITE"), "tools": [WEATHER]})
    assert r.status_code == 200, r.text
    body = strict(r.content)
    [call] = body["choices"][0]["message"]["tool_calls"]
    assert b"Infinity" not in r.content and b"NaN" not in r.content
    assert strict(call["function"]["arguments"].encode()) == {"city": None, "unit": None}
    streamed = post_chat(server, {"messages": user("INFINITE"), "tools": [WEATHER], "stream": True})
    arguments = "".join(tc["function"].get("arguments") or ""
                        for p in events(streamed.content)[:-1] for c in strict(p.encode())["choices"]
                        for tc in c["delta"].get("tool_calls") or [])
    assert strict(arguments.encode()) == {"city": None, "unit": None}


def test_a_call_json_cannot_write_comes_back_as_content_not_an_error(served, monkeypatch):
    server, _ = served
    responses = importlib.import_module("toolace_r.serve.responses")
    # A decoded value no JSON writer takes (an int past Python's str-conversion limit).
    huge = ParseResult("pythonic", [ToolCall("get_weather", {"city": 10 ** 5000})])
    monkeypatch.setattr(responses, "parse", lambda text, *a, **k: huge)
    r = post_chat(server, {"messages": user("Weather?"), "tools": [WEATHER]})
    assert r.status_code == 200, r.text
    choice = strict(r.content)["choices"][0]
    assert choice["message"]["content"] == '[get_weather(city="Paris")]' and choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]


def test_a_value_error_while_handling_the_model_output_is_a_500_not_a_400(served, monkeypatch):
    server, _ = served
    app_module = importlib.import_module("toolace_r.serve.app")

    def broken_refine(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("an answer the server could not handle")

    monkeypatch.setattr(app_module, "refine", broken_refine)
    err = api_error(post_chat(server, {"messages": user("hello")}), 500)
    assert err["type"] == "server_error" and "could not handle" in err["message"]


def test_a_prompt_the_engine_refuses_is_the_clients_400(served):
    server, _ = served
    err = api_error(post_chat(server, {"messages": user("TOOLONG")}), 400)
    assert "does not fit" in err["message"]
    r = httpx.post(server.base_url + "/completions", json={"prompt": "TOOLONG"}, headers=AUTH, timeout=60)
    assert "does not fit" in api_error(r, 400)["message"]


# --- 3. client mistakes: 400 naming the field -----------------------------------------------------------

def _history(name: str, arguments: str) -> dict:
    return {"messages": [{"role": "user", "content": "q"},
                         {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                               "function": {"name": name, "arguments": arguments}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "done"},
                         {"role": "user", "content": "again"}]}


def _tool_with(parameters_json: str) -> str:
    return ('{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": '
            '{"name": "f", "parameters": ' + parameters_json + '}}]}')


HISTORY_MISTAKES = {
    "odd function name": (_history("get weather(", "{}"), "messages[1].tool_calls[0].function"),
    "empty function name": (_history("", "{}"), "messages[1].tool_calls[0].function"),
    "odd argument name": (_history("f", '{"a b(": 1}'), "messages[1].tool_calls[0].function"),
    "empty argument name": (_history("f", '{"": 1}'), "messages[1].tool_calls[0].function"),
    "deep arguments": (_history("f", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"),
                       "messages[1].tool_calls[0].function.arguments"),
    "huge int arguments": (_history("f", '{"a": ' + "9" * 5000 + "}"), "messages[1].tool_calls[0].function.arguments"),
    "arguments not JSON": (_history("f", "{a: 1"), "messages[1].tool_calls[0].function.arguments"),
    "arguments not an object": (_history("f", "[1, 2]"), "messages[1].tool_calls[0].function.arguments"),
}


@pytest.mark.parametrize("case", sorted(HISTORY_MISTAKES))
def test_mistakes_in_the_message_history_are_400_naming_the_field(served, case):
    server, _ = served
    body, field = HISTORY_MISTAKES[case]
    err = api_error(post_chat(server, body), 400)
    assert err["param"] == "messages" and err["message"].startswith(field), err


SCHEMA_MISTAKES = {
    "deep under $defs": _tool_with('{"type": "object", "$defs": {"d": ' + '{"$defs": {"a": ' * 40 + "{}"
                                   + "}}" * 40 + "}}"),
    "deep under any key": _tool_with('{"type": "object", "x-meta": ' + '{"k": ' * 500 + "1" + "}" * 500 + "}"),
    "deep properties": _tool_with('{"type": "object", "properties": {"a": ' + '{"type": "object", "properties": {"a": '
                                  * 20 + "{}" + "}}" * 20 + "}}"),
    "deep items": _tool_with('{"type": "object", "properties": {"a": ' + '{"type": "array", "items": ' * 70
                             + '{"type": "string"}' + "}" * 70 + "}}"),
}


@pytest.mark.parametrize("case", sorted(SCHEMA_MISTAKES))
def test_tool_schemas_nested_too_deep_are_400_naming_the_tool(served, case):
    server, _ = served
    err = api_error(post_chat(server, raw=SCHEMA_MISTAKES[case]), 400)
    assert err["param"] == "tools" and err["message"].startswith("tools[0]: function 'f': parameters"), err


@pytest.mark.parametrize("name", ["get weather", "", "f" * 65, "f(x)", "caf\u00e9", "a\ud800"])
def test_unusual_tool_names_are_400_naming_the_field(served, name):
    server, _ = served
    tool = {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    err = api_error(post_chat(server, {"messages": user("hi"), "tools": [tool]}), 400)
    assert err["param"] == "tools" and "tools.0.function.name" in err["message"], err
    choice = {"type": "function", "function": {"name": name}}
    err = api_error(post_chat(server, {"messages": user("hi"), "tools": [WEATHER], "tool_choice": choice}), 400)
    assert err["param"] == "tool_choice", err


def test_unparsable_bodies_are_400_saying_why(served, client):
    server, _ = served
    err = api_error(post_chat(server, raw='{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}"), 400)
    assert "nested too deeply" in err["message"]
    err = api_error(post_chat(server, raw='{"messages": [], "seed": ' + "9" * 5000 + "}"), 400)
    assert "not valid JSON" in err["message"]
    assert "not valid JSON" in api_error(post_chat(server, raw=b'{"messages": "\xff\xfe"}'), 400)["message"]
    # odd names a schema may hold are fine: a keyword as the tool name, a space or a keyword as a property
    odd = {"type": "function", "function": {"name": "class", "parameters": {
        "type": "object", "properties": {"a b": {"type": "string"}, "if": {}}}}}
    assert post_chat(server, {"messages": user("hi"), "tools": [odd]}).status_code == 200
    assert client.chat.completions.create(model=MODEL, messages=user("hi")).choices[0].message.content


# --- 3. a broken upstream: 502 ----------------------------------------------------------------------

CHAT_OK = {"id": "u", "object": "chat.completion", "model": "up", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "upstream says hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
COMPLETION_OK = {"id": "u", "object": "text_completion", "model": "up", "choices": [
    {"index": 0, "text": "upstream says hi", "finish_reason": "stop"}]}

BROKEN_REPLIES = {
    "not JSON": (b"<html>bad gateway</html>", "text/html", "not JSON"),
    "truncated JSON": (b'{"choices": [', "application/json", "not JSON"),
    "null": (b"null", "application/json", "not a JSON object"),
    "an array": (b"[1, 2]", "application/json", "not a JSON object"),
    "no choices": (b'{"id": "u"}', "application/json", "has no choices"),
    "empty choices": (b'{"id": "u", "choices": []}', "application/json", "has no choices"),
    "a choice that is a string": (b'{"choices": ["hi"]}', "application/json", "choices[0] is not an object"),
    "non-string content": (b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": 5}, '
                           b'"text": 5}]}', "application/json", "is not a string"),
    "missing message and text": (b'{"choices": [{"index": 0, "finish_reason": "stop"}]}', "application/json",
                                 "choices[0]"),
}


class FakeUpstream:
    """An OpenAI-compatible upstream on 127.0.0.1 answering every POST with `self.reply`."""

    def __init__(self) -> None:
        self.reply: tuple[bytes, str] = (json.dumps(CHAT_OK).encode(), "application/json")
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("content-length") or 0))
                fake.paths.append(self.path)
                body, kind = fake.reply
                self.send_response(200)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeUpstream":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def proxied():
    """Two front servers on one fake upstream: chat mode (no tokenizer) and completions mode."""
    with FakeUpstream() as upstream:
        fronts = []
        for tokenizer in (None, build_chatml_tokenizer()):
            engine = get_engine("openai", base_url=upstream.url, model="up", max_retries=0, timeout=30)
            app = create_app(engine, ServeConfig(served_model_name="front"), tokenizer=tokenizer, batching=False)
            fronts.append((ServerThread(app).start(), engine))
        yield upstream, [server for server, _ in fronts]
        for server, engine in fronts:
            server.stop()
            engine.close()


@pytest.mark.parametrize("case", sorted(BROKEN_REPLIES))
def test_a_broken_upstream_reply_is_a_502(proxied, case):
    upstream, (chat_front, completions_front) = proxied
    body, kind, says = BROKEN_REPLIES[case]
    upstream.reply = (body, kind)
    for front in (chat_front, completions_front):
        r = httpx.post(front.base_url + "/chat/completions", json={"messages": user("hi")}, timeout=60)
        err = api_error(r, 502)
        assert err["type"] == "upstream_error" and says in err["message"] and upstream.url in err["message"], err
    r = httpx.post(completions_front.base_url + "/completions", json={"prompt": "hi"}, timeout=60)
    assert says in api_error(r, 502)["message"]


def test_token_ids_are_bounded_even_without_a_vocabulary(proxied):
    upstream, (chat_front, _) = proxied  # no tokenizer on this front: the vocabulary is unknown
    sent = len(upstream.paths)
    for ids in ([2**40], [-1], []):
        r = httpx.post(chat_front.base_url + "/completions", json={"prompt": ids}, timeout=60)
        assert api_error(r, 400)["param"] == "prompt"
    assert len(upstream.paths) == sent  # nothing was forwarded


def test_a_sound_upstream_reply_still_works_and_its_surrogates_are_replaced(proxied):
    upstream, (chat_front, completions_front) = proxied
    upstream.reply = (json.dumps(CHAT_OK).encode(), "application/json")
    r = httpx.post(chat_front.base_url + "/chat/completions", json={"messages": user("hi")}, timeout=60)
    assert strict(r.content)["choices"][0]["message"]["content"] == "upstream says hi"
    upstream.reply = (json.dumps(COMPLETION_OK).encode(), "application/json")
    r = httpx.post(completions_front.base_url + "/chat/completions", json={"messages": user("hi")}, timeout=60)
    assert strict(r.content)["choices"][0]["message"]["content"] == "upstream says hi"
    assert upstream.paths[-1] == "/v1/completions"
    # "\ud800" from the upstream: the refinement rounds send it back, which no UTF-8 body can carry
    upstream.reply = (b'{"choices": [{"index": 0, "message": {"role": "assistant", "content": "a\\ud800b"}}]}',
                      "application/json")
    r = httpx.post(chat_front.base_url + "/chat/completions", json={"messages": user("hi"), "tools": [WEATHER]},
                   timeout=60)
    assert strict(r.content)["choices"][0]["message"]["content"] == "a\ufffdb"


# --- 4. slow and idle connections -------------------------------------------------------------------

def read_until_closed(sock: socket.socket, wait: float = 60.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes the connection (True), or `wait` runs out (False)."""
    sock.settimeout(wait)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        pass
    return data, True


class Trickle(threading.Thread):
    """Sends `data` one byte at a time, `gap` seconds apart, until done or the server closes."""

    def __init__(self, sock: socket.socket, data: bytes, gap: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.sock, self.data, self.gap, self.sent = sock, data, gap, 0

    def run(self) -> None:
        try:
            for i in range(len(self.data)):
                self.sock.sendall(self.data[i: i + 1])
                self.sent += 1
                time.sleep(self.gap)
        except OSError:
            pass


@pytest.fixture(scope="module")
def impatient():
    cfg = ServeConfig(served_model_name=MODEL, keep_alive_timeout=0.3, header_timeout=0.5, body_timeout=0.5,
                      batch_wait_ms=1)
    app = create_app(HostileEngine(), cfg)
    with ServerThread(app) as server:
        yield server
    app.state.engine.close()


def _valid(server) -> None:
    """A valid request on a fresh connection (the server closes idle ones quickly here)."""
    r = httpx.post(server.base_url + "/chat/completions", json={"messages": user("hello")},
                   headers={"Connection": "close"}, timeout=60)
    assert r.status_code == 200 and strict(r.content)["choices"][0]["message"]["content"] == "fine, thanks"


def test_an_idle_connection_is_closed(impatient):
    with socket.create_connection((impatient.host, impatient.port)) as fresh:
        assert read_until_closed(fresh) == (b"", True)  # never sent a byte
    with socket.create_connection((impatient.host, impatient.port)) as used:
        used.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_until_closed(used)  # answered, then idle
        assert closed and data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1


def test_a_head_sent_byte_by_byte_gets_408_and_is_closed(impatient):
    with socket.create_connection((impatient.host, impatient.port)) as slow:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 2000 + b"\r\n\r\n"
        sender = Trickle(slow, head)
        sender.start()
        _valid(impatient)  # the server serves others meanwhile
        data, closed = read_until_closed(slow)
        assert closed and data.startswith(b"HTTP/1.1 408"), data
        assert "head not received" in strict(data.split(b"\r\n\r\n", 1)[1])["error"]["message"]
        sender.join(60)
        assert sender.sent < len(head)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/nowhere"])
def test_a_body_sent_byte_by_byte_is_cut_off(impatient, path):
    with socket.create_connection((impatient.host, impatient.port)) as slow:
        body = b'{"messages": [{"role": "user", "content": "' + b"a" * 2000 + b'"}]}'
        slow.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode())
        sender = Trickle(slow, body)
        sender.start()
        _valid(impatient)
        data, closed = read_until_closed(slow)
        assert closed, data
        sender.join(60)
        assert sender.sent < len(body)
        if path == "/nowhere":  # answered at once (404); the rest of the body is not waited for
            assert data.startswith(b"HTTP/1.1 404")
        else:
            assert data.startswith(b"HTTP/1.1 408"), data
            assert "body not received" in strict(data.split(b"\r\n\r\n", 1)[1])["error"]["message"]


def test_a_head_over_the_size_limit_is_refused_and_closed(impatient):
    with socket.create_connection((impatient.host, impatient.port)) as big:
        # Still incomplete past the limit (h11 bounds the part of a head it is waiting to complete).
        big.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (ServeConfig().max_header_bytes + 1000))
        data, closed = read_until_closed(big)
        assert closed and data.startswith(b"HTTP/1.1 400"), data
    _valid(impatient)


def test_over_the_connection_limit_gets_503_and_valid_requests_work_again():
    cfg = ServeConfig(served_model_name=MODEL, max_connections=2, keep_alive_timeout=60, header_timeout=60,
                      batch_wait_ms=1)
    app = create_app(HostileEngine(), cfg)
    with ServerThread(app) as server:
        connections = server.server.server_state.connections

        def wait_for(count: int) -> None:
            for _ in range(3000):
                if len(connections) == count:
                    return
                time.sleep(0.01)
            raise AssertionError(f"{len(connections)} connections, expected {count}")

        idle = [socket.create_connection((server.host, server.port)) for _ in range(2)]
        wait_for(2)
        r = httpx.get(server.url + "/health", timeout=60)
        assert r.status_code == 503
        for sock in idle:
            sock.close()
        wait_for(0)
        _valid(server)
    app.state.engine.close()


# --- 5. the docs routes ---------------------------------------------------------------------------

def test_docs_are_off_by_default(served):
    server, _ = served
    for path in ("/docs", "/redoc", "/openapi.json"):
        api_error(httpx.get(server.url + path, headers=AUTH, timeout=60), 404)


def test_docs_when_on_need_the_api_key():
    app = create_app(HostileEngine(), ServeConfig(served_model_name=MODEL, api_key=KEY, docs=True))
    with ServerThread(app) as server:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert api_error(httpx.get(server.url + path, timeout=60), 401)["code"] == "invalid_api_key"
            wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}, timeout=60)
            assert wrong.status_code == 401
            assert httpx.get(server.url + path, headers=AUTH, timeout=60).status_code == 200
        schema = strict(httpx.get(server.url + "/openapi.json", headers=AUTH, timeout=60).content)
        assert "/v1/chat/completions" in schema["paths"] and "/docs" not in schema["paths"]
    app.state.engine.close()
