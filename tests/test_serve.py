"""Tests of the OpenAI-compatible server with the official `openai` client against live servers.

A scripted engine (fixed answers chosen by what the rendered prompt contains) sits behind the real
FastAPI app and uvicorn, so "tools in, tool_calls out", refinement, streaming and the error paths are
deterministic; the tiny random-weight model runs the real hf engine end to end, and as the upstream
of a second server (`--upstream` mode).
"""
from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import httpx  # noqa: E402

from conftest import RecordingEngine  # noqa: E402
from toolace_r.prompts import DEFAULT_REFINE_INSTRUCTION  # noqa: E402
from toolace_r.serve import ServeConfig, ServerThread, create_app  # noqa: E402

KEY = "test-key"
MODEL = "scripted"

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


class ScriptedEngine(RecordingEngine):
    """Answers by keyword in the last user turn; records every prompt it was given.

    "Paris": a call at once, repeated when refined (adaptive converges after one refinement).
    "Tokio": a misspelt city first, corrected when asked to refine, then repeated.
    "BOOM": raises, to test that one failing request does not stop the server.
    anything else: prose.
    """

    name = "scripted"
    chars_per_token = 4

    def answer(self, prompt: str, params) -> str:
        if "BOOM" in prompt:
            raise RuntimeError("scripted failure")
        refining = DEFAULT_REFINE_INSTRUCTION in prompt
        if "Paris" in prompt:
            text = '[get_weather(city="Paris", unit="c")]'
        elif "Tokio" in prompt:
            text = '[get_weather(city="Tokyo")]' if refining else '[get_weather(city="Tokio")]'
        elif "time" in prompt and "get_time" in prompt:
            text = '[get_time(city="Rome")]'
        else:
            text = "I cannot help with that."
        return text[: params.max_new_tokens * 4]


@pytest.fixture(scope="module")
def scripted():
    engine = ScriptedEngine()
    cfg = ServeConfig(served_model_name=MODEL, api_key=KEY, max_body_bytes=20_000, max_tokens_cap=512,
                      batch_wait_ms=2)
    app = create_app(engine, cfg)
    with ServerThread(app) as server:
        yield server, engine
    app.state.engine.close()


@pytest.fixture
def client(scripted):
    server, _ = scripted
    return openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)


def ask(client, text: str, **kw):
    return client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": text}], **kw)


# --- tools in, tool_calls out ------------------------------------------------------------------

def test_tools_in_tool_calls_out(client):
    r = ask(client, "Weather in Paris?", tools=[WEATHER, TIME])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
    # adaptive: round 0, one refinement that repeats it -> converged
    assert r.model_extra["refinement"] == {"policy": "adaptive", "rounds": 1, "stop_reason": "converged"}
    assert r.usage.completion_tokens > 0 and r.model == MODEL


def test_refinement_corrects_the_first_answer(client, scripted):
    r = ask(client, "Weather in Tokio?", tools=[WEATHER])
    call = r.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"city": "Tokyo"}
    assert r.model_extra["refinement"]["rounds"] == 2  # changed in round 1, repeated in round 2


def test_refine_per_request(client):
    r = ask(client, "Weather in Tokio?", tools=[WEATHER], extra_body={"refine": "none"})
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"city": "Tokio"}
    assert r.model_extra["refinement"] == {"policy": "none", "rounds": 0, "stop_reason": "single_pass"}
    r = ask(client, "Weather in Tokio?", tools=[WEATHER], extra_body={"max_rounds": 1})
    assert r.model_extra["refinement"]["stop_reason"] == "max_rounds"
    with pytest.raises(openai.BadRequestError, match="max_rounds"):
        ask(client, "Weather in Paris?", tools=[WEATHER], extra_body={"max_rounds": 9})
    with pytest.raises(openai.BadRequestError, match="unknown stop policy"):
        ask(client, "Weather in Paris?", tools=[WEATHER], extra_body={"refine": "sometimes"})


def test_checked_refinement_per_request_refines_only_what_fails_the_schema(client, scripted):
    _, engine = scripted
    # "Tokio" fits the schema: final after round 0 (the check cannot see a misspelt city)
    r = ask(client, "Weather in Tokio?", tools=[WEATHER], extra_body={"refine": "checked"})
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"city": "Tokio"}
    assert r.model_extra["refinement"] == {"policy": "checked", "rounds": 0, "stop_reason": "checked"}
    # "Paris" calls get_weather, which this request does not offer: refined once, told why, repeated -> converged
    r = ask(client, "Weather in Paris?", tools=[TIME], extra_body={"refine": "checked"})
    assert r.model_extra["refinement"] == {"policy": "checked", "rounds": 1, "stop_reason": "converged"}
    refine_prompt = [p for p in engine.prompts if "Paris" in p and DEFAULT_REFINE_INSTRUCTION in p][-1]
    assert ("A check of your answer against the function list found: no tool named 'get_weather' (tools: get_time)"
            in refine_prompt)


def test_prose_answer_is_content(client):
    r = ask(client, "Tell me a joke", tools=[WEATHER])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content == "I cannot help with that."


def test_tool_choice(client, scripted):
    _, engine = scripted
    r = ask(client, "Weather in Paris?", tools=[WEATHER, TIME], tool_choice="none")
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls
    assert "get_weather" not in engine.prompts[-1]  # no tools offered at all
    assert r.model_extra["refinement"]["policy"] == "none"
    r = ask(client, "What time is it in Rome?", tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert r.choices[0].message.tool_calls[0].function.name == "get_time"
    assert "get_weather" not in engine.prompts[-1] and "get_time" in engine.prompts[-1]
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        ask(client, "hi", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}})
    # "required" with an answer that has no call: reported honestly as content, finish "stop"
    r = ask(client, "Tell me a joke", tools=[WEATHER], tool_choice="required")
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content


def test_call_to_a_tool_not_offered_is_content(client):
    r = ask(client, "Weather in Paris?", tools=[TIME])  # the script calls get_weather anyway
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content.startswith("[get_weather(")


def test_history_with_tool_calls_and_n(client, scripted):
    _, engine = scripted
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "user", "content": [{"type": "text", "text": "And in Paris again?"}]},
    ]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER], n=2)
    assert len(r.choices) == 2 and [c.index for c in r.choices] == [0, 1]
    assert '[get_weather(city="Paris")]' in engine.prompts[-1] and "18 C" in engine.prompts[-1]


# --- streaming ---------------------------------------------------------------------------------

def test_stream_tool_calls(client):
    stream = ask(client, "Weather in Paris?", tools=[WEATHER], stream=True,
                 stream_options={"include_usage": True})
    calls: dict[int, dict] = {}
    finish, usage, roles = None, None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            for tc in choice.delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    assert roles == ["assistant"] and finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "Paris", "unit": "c"}
    assert usage is not None and usage.total_tokens > 0


def test_stream_content(client):
    text = "".join(c.choices[0].delta.content or "" for c in ask(client, "Tell me a joke", stream=True)
                   if c.choices)
    assert text == "I cannot help with that."


# --- auth, bad requests, failures -----------------------------------------------------------------

def test_rejected_without_the_key(scripted):
    server, _ = scripted
    bad = openai.OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        ask(bad, "Weather in Paris?", tools=[WEATHER])
    r = httpx.get(server.base_url + "/models")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # health needs no key


def _post(server, path: str, **kw) -> httpx.Response:
    return httpx.post(server.base_url + path, headers={"Authorization": f"Bearer {KEY}",
                                                       "Content-Type": "application/json"}, **kw)


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def test_bad_requests_get_4xx_and_the_server_keeps_serving(scripted, client):
    server, _ = scripted
    msg = [{"role": "user", "content": "hi"}]
    assert "not valid JSON" in _error(_post(server, "/chat/completions", content=b'{"messages": [}'), 400)["message"]
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                                                             "properties": {"a": {"type": "banana"}}}}}
    assert _error(_post(server, "/chat/completions", json={"messages": msg, "tools": [bad_tool]}), 400)["param"] == "tools"
    no_name = {"type": "function", "function": {"description": "x"}}
    _error(_post(server, "/chat/completions", json={"messages": msg, "tools": [no_name]}), 400)
    missing_req = {"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {}, "required": ["a"]}}}
    _error(_post(server, "/chat/completions", json={"messages": msg, "tools": [missing_req]}), 400)
    _error(_post(server, "/chat/completions", json={"messages": []}), 400)
    _error(_post(server, "/chat/completions", json={"messages": msg, "max_tokens": 10_000}), 400)
    _error(_post(server, "/chat/completions", json={"messages": msg, "temperature": -1}), 400)
    assert _error(_post(server, "/chat/completions", json={"model": "gpt-9", "messages": msg}), 404)["code"] == "model_not_found"
    big = {"messages": [{"role": "user", "content": "x" * 50_000}]}
    assert "too large" in _error(_post(server, "/chat/completions", json=big), 413)["message"]

    def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(30):
            yield b" " * 1000
    _error(_post(server, "/chat/completions", content=chunks()), 413)
    _error(httpx.get(server.base_url + "/nowhere", headers={"Authorization": f"Bearer {KEY}"}), 404)
    # and it still answers
    assert ask(client, "Weather in Paris?", tools=[WEATHER]).choices[0].finish_reason == "tool_calls"


def test_a_failing_request_does_not_stop_the_server(client):
    with pytest.raises(openai.InternalServerError):
        ask(client, "BOOM", tools=[WEATHER])
    assert ask(client, "Weather in Paris?", tools=[WEATHER]).choices[0].finish_reason == "tool_calls"


def test_concurrent_requests_are_batched(scripted, client):
    server, _ = scripted
    from concurrent.futures import ThreadPoolExecutor

    stats = server.server.config.app.state.engine.stats
    before = (stats.engine_calls, stats.requests)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: ask(client, "Weather in Paris?", tools=[WEATHER]), range(8)))
    assert all(r.choices[0].finish_reason == "tool_calls" for r in replies)
    calls, requests = stats.engine_calls - before[0], stats.requests - before[1]
    assert requests == 16  # 8 requests x (round 0 + one refinement)
    assert calls >= 2  # rounds of one request are never in the same call


def test_models_and_completions(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    r = client.completions.create(model=MODEL, prompt=["about Paris", "other"], n=2, max_tokens=50)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text.startswith("[get_weather") and r.choices[2].text == "I cannot help with that."
    text = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="other", stream=True) if c.choices)
    assert text == "I cannot help with that."
    with pytest.raises(openai.BadRequestError, match="echo"):
        client.completions.create(model=MODEL, prompt="x", echo=True)


# --- the real hf engine, and --upstream ---------------------------------------------------------

def test_hf_engine_end_to_end_and_as_upstream(tiny_model_dir):
    import torch

    from toolace_r.engines import get_engine
    from toolace_r.serve.server import build_backend

    torch.set_num_threads(2)
    hf = get_engine("hf", model=str(tiny_model_dir), batch_size=8)
    local = create_app(hf, ServeConfig(served_model_name="tiny", max_tokens_cap=16, default_max_tokens=8))
    with ServerThread(local) as lower:
        c = openai.OpenAI(base_url=lower.base_url, api_key="unused", max_retries=0)
        r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Weather in Paris?"}],
                                      tools=[WEATHER], max_tokens=8)
        choice = r.choices[0]
        assert choice.finish_reason in ("stop", "length", "tool_calls")
        assert r.model_extra["refinement"]["rounds"] <= 3 and r.usage.prompt_tokens > 100
        done = c.completions.create(model="tiny", prompt="Hello", max_tokens=5)
        assert 1 <= done.usage.completion_tokens <= 5
        ids = c.completions.create(model="tiny", prompt=[5, 6, 7], max_tokens=3, n=2)
        assert len(ids.choices) == 2 and ids.usage.prompt_tokens == 3
        with pytest.raises(openai.BadRequestError, match="token ids"):
            c.completions.create(model="tiny", prompt=[10**6], max_tokens=3)
        with pytest.raises(openai.BadRequestError, match="does not fit"):  # longer than the context
            c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x" * 5000}])
        served = local.state.engine.stats.requests

        # A second server that refines here and generates on the first one.
        engine, tokenizer, batching = build_backend(str(tiny_model_dir), upstream=lower.base_url)
        front = create_app(engine, ServeConfig(served_model_name="front", max_tokens_cap=16, default_max_tokens=8),
                           tokenizer=tokenizer, batching=batching)
        with ServerThread(front) as upper:
            u = openai.OpenAI(base_url=upper.base_url, api_key="unused", max_retries=0)
            r2 = u.chat.completions.create(model="front", tools=[WEATHER], max_tokens=8,
                                           messages=[{"role": "user", "content": "Weather in Paris?"}],
                                           extra_body={"refine": "fixed:1"})
            # greedy: the same rounds as asking the lower server directly with fixed:1
            direct = c.chat.completions.create(model="tiny", tools=[WEATHER], max_tokens=8,
                                               messages=[{"role": "user", "content": "Weather in Paris?"}],
                                               extra_body={"refine": "fixed:1"})
        engine.close()
        assert r2.model_extra["refinement"] == {"policy": "fixed:1", "rounds": 1, "stop_reason": "fixed"}
        assert local.state.engine.stats.requests >= served + 2  # both rounds were generated upstream
        assert r2.choices[0].message.content == direct.choices[0].message.content
    local.state.engine.close()


def test_cli_serve_with_key_from_the_environment(tiny_model_dir):
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TOOLACE_R_API_KEY": "env-key", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolace_r.cli", "serve", "--model", str(tiny_model_dir), "--port", str(port),
         "--served-model-name", "tiny", "--max-tokens", "4", "--engine-option", "num_threads=1",
         "--log-level", "warning"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
            time.sleep(0.2)
        assert httpx.get(url + "/v1/models").status_code == 401
        c = openai.OpenAI(base_url=url + "/v1", api_key="env-key", max_retries=0)
        assert [m.id for m in c.models.list().data] == ["tiny"]
        r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}], tools=[WEATHER])
        assert r.usage.completion_tokens <= 4 * 4  # round 0 + up to 3 refinements, 4 tokens each
    finally:
        proc.terminate()
        proc.wait(30)


# --- a model trained in its native format --------------------------------------------------------

class HermesEngine(RecordingEngine):
    """A Qwen2.5-like tokenizer (tests/chat_templates.py) and answers in Hermes <tool_call> blocks."""

    name = "hermes"

    def __init__(self) -> None:
        from chat_templates import build_hermes_tokenizer

        super().__init__()
        self.tokenizer = build_hermes_tokenizer()

    def answer(self, prompt: str, params) -> str:
        return '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}\n</tool_call>'


@pytest.mark.parametrize("answer_format", ["auto", "pythonic"])
def test_native_answers_and_history_are_served_in_the_models_own_format(answer_format):
    engine = HermesEngine()
    app = create_app(engine, ServeConfig(served_model_name=MODEL, answer_format=answer_format, batch_wait_ms=2))
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
        {"role": "user", "content": "And in Paris?"},
    ]
    with ServerThread(app) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
        r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    app.state.engine.close()
    first = engine.prompts[0]
    if answer_format == "auto":  # native: the template's tools section and its own call syntax
        assert "# Tools" in first and "func_name1" not in first
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>' in first
        assert "<tool_response>\n18 C\n</tool_response>" in first
        [call] = r.choices[0].message.tool_calls
        assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "c"}
        # the refinement round repeated the call: the second prompt extends the first by the answer
        assert engine.prompts[1].startswith(first + engine.answer(first, None))
        assert r.model_extra["refinement"]["stop_reason"] == "converged"
    else:  # pythonic: one instruction, ToolACE's, and the history in pythonic syntax
        assert "func_name1" in first and "# Tools" not in first
        assert '[get_weather(city="Rome")]' in first
