"""Tests of the openai engine against a fake OpenAI-compatible server started by the fixture.

The fake server (FastAPI + uvicorn on 127.0.0.1, a free port, in a thread) answers /v1/models,
/v1/completions and /v1/chat/completions deterministically, records what it received, can be told
to fail with given HTTP statuses a number of times, and to be slow, and counts concurrent requests.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import pytest

pytest.importorskip("openai")
fastapi = pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from fastapi.responses import JSONResponse, Response  # noqa: E402

from toolace_r.engines import EngineError, GenerationRequest, SamplingParams, get_engine  # noqa: E402
from toolace_r.engines.openai import OpenAIEngine  # noqa: E402


class FakeState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.failures: list[int] = []  # statuses to answer with, one per request, before succeeding
        self.retry_after: str | None = None
        self.raw: tuple[bytes, str] | None = None  # (body, content type) every POST answers with, status 200
        self.delay = 0.0
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()


def make_app(state: FakeState):
    app = fastapi.FastAPI()

    def enter(path: str, body: dict[str, Any]):
        with state.lock:
            state.received.append((path, body))
            if state.raw is not None:
                return Response(state.raw[0], 200, media_type=state.raw[1])
            if state.failures:
                status = state.failures.pop(0)
                headers = {"retry-after": state.retry_after} if state.retry_after else {}
                return JSONResponse({"error": {"message": f"fake failure {status}"}}, status, headers=headers)
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        return None

    def leave() -> None:
        with state.lock:
            state.in_flight -= 1

    def answer(seed_text: str, body: dict[str, Any], i: int) -> tuple[str, str]:
        text = f"[f(x={i})]<<{seed_text[-12:]}>>"
        for stop in body.get("stop") or []:
            if stop in text:
                return text[: text.index(stop)], "stop"
        limit = body.get("max_tokens") or 10**6
        if len(text) > limit:
            return text[:limit], "length"
        return text, "stop"

    @app.get("/v1/models")
    def models():
        if state.raw is not None:
            return Response(state.raw[0], 200, media_type=state.raw[1])
        return {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "me"}]}

    @app.post("/v1/completions")
    async def completions(body: dict[str, Any]):
        failed = enter("completions", body)
        if failed is not None:
            return failed
        try:
            if state.delay:
                import asyncio

                await asyncio.sleep(state.delay)
            prompt = body["prompt"]
            seed_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
            choices = []
            for i in range(body.get("n") or 1):
                text, reason = answer(seed_text, body, i)
                choices.append({"index": i, "text": text, "finish_reason": reason, "logprobs": None})
            usage = {"prompt_tokens": 11, "completion_tokens": 7 * len(choices), "total_tokens": 11 + 7 * len(choices),
                     "prompt_tokens_details": {"cached_tokens": 4}}
            return {"id": "c1", "object": "text_completion", "created": 0, "model": body["model"],
                    "choices": list(reversed(choices)), "usage": usage}
        finally:
            leave()

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]):
        failed = enter("chat", body)
        if failed is not None:
            return failed
        try:
            choices = []
            for i in range(body.get("n") or 1):
                if body.get("tools"):
                    name = body["tools"][0]["function"]["name"]
                    message = {"role": "assistant", "content": None, "tool_calls": [{
                        "id": f"call{i}", "type": "function",
                        "function": {"name": name, "arguments": '{"city": "Paris"}'}}]}
                    reason = "tool_calls"
                else:
                    message = {"role": "assistant", "content": answer(body["messages"][-1]["content"], body, i)[0]}
                    reason = "stop"
                choices.append({"index": i, "message": message, "finish_reason": reason})
            usage = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
            return {"id": "c2", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": choices, "usage": usage}
        finally:
            leave()

    return app


@pytest.fixture(scope="module")
def server():
    state = FakeState()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", state
    srv.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def fake(server):
    url, state = server
    state.reset()
    return url, state


def make(url: str, **kw) -> OpenAIEngine:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return get_engine("openai", base_url=url, **kw)


def test_completions_with_prompt_and_sampling_params(fake):
    url, state = fake
    eng = make(url)
    params = SamplingParams(n=3, temperature=0.7, top_p=0.9, top_k=20, max_new_tokens=64, stop=(">>",), seed=5)
    [result] = eng.generate([GenerationRequest(prompt="<|im_start|>user\nhello", params=params)])
    path, body = state.received[-1]
    assert path == "completions" and body["prompt"] == "<|im_start|>user\nhello"
    assert body["model"] == "fake-model"  # asked from /v1/models
    assert (body["n"], body["temperature"], body["top_p"], body["top_k"], body["max_tokens"], body["seed"]) == (
        3, 0.7, 0.9, 20, 64, 5)
    assert body["stop"] == [">>"]
    # Choices come back in index order even though the server sent them reversed; stop trimmed.
    assert result.texts == [f"[f(x={i})]<<|>user\nhello" for i in range(3)]
    assert all(c.finish_reason == "stop" for c in result.completions)
    assert [c.prompt_tokens for c in result.completions] == [7, 0, 0]
    assert [c.cached_tokens for c in result.completions] == [4, 11, 11]
    assert result.completion_tokens == 21


def test_prompt_ids_length_finish_and_defaults(fake):
    url, state = fake
    [result] = make(url, model="served").generate(
        [GenerationRequest(prompt_ids=[1, 2, 3], params=SamplingParams(max_new_tokens=4))])
    body = state.received[-1][1]
    assert body["prompt"] == [1, 2, 3] and body["model"] == "served"
    assert "seed" not in body and "top_k" not in body and body.get("stop") is None
    assert result.completions[0].finish_reason == "length" and result.texts == ["[f(x"]


def test_chat_with_tools_returns_calls_as_json(fake):
    url, state = fake
    tool = {"name": "get_weather", "description": "weather",
            "parameters": {"type": "dict", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    req = GenerationRequest(messages=[{"role": "user", "content": "Paris?"}], tools=[tool],
                            params=SamplingParams(n=2))
    [result] = make(url).generate([req])
    path, body = state.received[-1]
    assert path == "chat" and body["messages"] == req.messages
    assert body["tools"][0]["type"] == "function"
    assert body["tools"][0]["function"]["parameters"]["type"] == "object"  # BFCL "dict" normalised
    assert result.texts == ['[{"name": "get_weather", "arguments": {"city": "Paris"}}]'] * 2
    plain = make(url).generate([GenerationRequest(messages=[{"role": "user", "content": "hi there"}])])
    assert plain[0].texts == ["[f(x=0)]<<hi there>>"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retries_with_backoff_then_succeeds(fake, status):
    url, state = fake
    state.failures = [status, status]
    eng = make(url, model="m", max_retries=3)
    started = time.time()
    [result] = eng.generate([GenerationRequest(prompt="abc")])
    assert result.texts and eng.retries == 2
    assert len(state.received) == 3
    assert time.time() - started < 2


def test_retry_after_header_is_honoured(fake):
    url, state = fake
    state.failures, state.retry_after = [429], "0.4"
    eng = make(url, model="m", max_retries=2)
    started = time.time()
    eng.generate([GenerationRequest(prompt="abc")])
    assert time.time() - started >= 0.4


def test_gives_up_after_max_retries(fake):
    url, state = fake
    state.failures = [500] * 10
    eng = make(url, model="m", max_retries=2)
    with pytest.raises(EngineError, match="after 3 attempts: HTTP 500"):
        eng.generate([GenerationRequest(prompt="abc")])
    assert len(state.received) == 3


def test_authentication_failure_is_clear_and_not_retried(fake):
    url, state = fake
    state.failures = [401] * 5
    with pytest.raises(EngineError) as err:
        make(url, model="m").generate([GenerationRequest(prompt="abc")])
    assert url in str(err.value) and "OPENAI_API_KEY" in str(err.value) and "api_key" in str(err.value)
    assert len(state.received) == 1


def test_bad_request_is_not_retried(fake):
    url, state = fake
    state.failures = [400]
    with pytest.raises(EngineError, match="HTTP 400.*fake failure 400"):
        make(url, model="m").generate([GenerationRequest(prompt="abc")])
    assert len(state.received) == 1


def test_timeout_is_retried_then_reported(fake):
    url, state = fake
    state.delay = 1.5
    eng = make(url, model="m", timeout=0.2, max_retries=1)
    started = time.time()
    with pytest.raises(EngineError, match="after 2 attempts.*Timeout"):
        eng.generate([GenerationRequest(prompt="abc")])
    assert time.time() - started < 1.4
    assert len(state.received) == 2


def test_concurrency_is_bounded(fake):
    url, state = fake
    state.delay = 0.15
    eng = make(url, model="m", concurrency=3)
    started = time.time()
    results = eng.generate([GenerationRequest(prompt=f"p{i}") for i in range(9)])
    elapsed = time.time() - started
    assert [r.texts[0] for r in results] == [f"[f(x=0)]<<p{i}>>" for i in range(9)]  # request order kept
    assert 2 <= state.max_in_flight <= 3
    assert elapsed < 9 * 0.15  # ran in parallel


MALFORMED = {
    "not JSON": (b"<html>proxy error</html>", "text/html", "is not JSON"),
    "truncated": (b'{"choices": [{"index": 0', "application/json", "is not JSON"),
    "null": (b"null", "application/json", "is not a JSON object (got null)"),
    "no choices": (b'{"id": "x"}', "application/json", "has no choices (got null)"),
    "empty choices": (b'{"choices": []}', "application/json", "has no choices (got an empty array)"),
    "choice not an object": (b'{"choices": [3]}', "application/json", "choices[0] is not an object"),
    "bad index": (b'{"choices": [{"index": "0", "text": "a", "message": {"content": "a"}}]}', "application/json",
                  "choices[0].index is not an integer"),
    "non-string text": (b'{"choices": [{"index": 0, "text": 5, "message": {"content": 5}}]}', "application/json",
                        "is not a string"),
    "missing text/message": (b'{"choices": [{"index": 0, "finish_reason": "stop"}]}', "application/json",
                             "choices[0]"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("api", ["completions", "chat"])
def test_a_malformed_reply_is_an_engine_error_and_not_retried(fake, case, api):
    url, state = fake
    body, kind, says = MALFORMED[case]
    state.raw = (body, kind)
    request = (GenerationRequest(prompt="abc") if api == "completions"
               else GenerationRequest(messages=[{"role": "user", "content": "abc"}]))
    with pytest.raises(EngineError, match=re.escape(says)) as err:
        make(url, model="m", max_retries=3).generate([request])
    assert url in str(err.value)
    assert len(state.received) == 1


def test_a_malformed_reply_to_chat_tool_calls_is_an_engine_error(fake):
    url, state = fake
    state.raw = (b'{"choices": [{"index": 0, "message": {"content": null, "tool_calls": [{"function": '
                 b'{"name": 5, "arguments": 7}}]}}]}', "application/json")
    with pytest.raises(EngineError, match=r"tool_calls\[0\] has no function name"):
        make(url, model="m").generate([GenerationRequest(messages=[{"role": "user", "content": "abc"}])])


@pytest.mark.parametrize("reply, says", [(b"null", "is not a JSON object"), (b'{"data": []}', "lists no models"),
                                         (b'{"data": [{"object": "model"}]}', "without an id")])
def test_a_broken_model_list_is_an_engine_error(fake, reply, says):
    url, state = fake
    state.raw = (reply, "application/json")
    with pytest.raises(EngineError, match=says):
        make(url).model_name()


def test_lone_surrogates_are_replaced_in_what_is_sent_and_received(fake):
    url, state = fake
    [result] = make(url, model="m").generate([GenerationRequest(prompt="x\ud800y")])
    assert state.received[-1][1]["prompt"] == "x\ufffdy"
    assert "\ufffd" in result.texts[0]
    state.raw = (b'{"choices": [{"index": 0, "message": {"content": "a\\ud800b"}}]}', "application/json")
    [result] = make(url, model="m").generate([GenerationRequest(messages=[{"role": "user", "content": "\udfff"}])])
    assert result.texts == ["a\ufffdb"]
    assert state.received[-1][1]["messages"] == [{"role": "user", "content": "\ufffd"}]


def test_config_validation():
    with pytest.raises(ValueError, match="unknown api"):
        get_engine("openai", api="grpc")
    with pytest.raises(ValueError, match="unknown option"):
        get_engine("openai", base_ur="x")
