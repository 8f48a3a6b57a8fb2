"""Wire formats of the four model APIs the executors speak. Each handler reads the offered
tools and the history from the request, asks the scenario for the turn, and encodes it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import scenario as sc


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None
    content_type: str = "application/json"
    events: list[bytes] | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @staticmethod
    def json(status: int, obj) -> "Reply":
        return Reply(status=status, body=json.dumps(obj).encode())


def sse(data, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {payload}\n\n".encode()


@dataclass
class Plan:
    """One model answer: text plus tool calls, or an error."""
    index: int
    text: str
    calls: list[tuple[str, object, str]]
    usage: dict
    error: dict | None
    side: bool


def plan(scn: sc.Scenario, tools: dict, results: int, request_text: str,
         scripted_without_tools: bool = False) -> Plan:
    if scn.error:
        return Plan(-1, "", [], scn.usage, scn.error, False)
    if not tools and not scripted_without_tools:
        # Side requests (titles, quota probes, classifiers) offer no tools: answer them
        # without advancing the script.
        return Plan(-1, scn.side_text, [], {"input_tokens": 1, "output_tokens": 1}, None, True)
    if scripted_without_tools:
        index, turn = sc.pick_text_turn(scn, results)
    else:
        index, turn = sc.pick_turn(scn, results)
    if turn.get("error"):
        return Plan(index, "", [], scn.usage, turn["error"], False)
    cwd = sc.find_cwd(request_text)
    calls = [sc.concrete_call(a, tools, cwd) for a in sc.calls_of(turn)]
    return Plan(index, turn.get("text", ""), calls, {**scn.usage, **turn.get("usage", {})},
                None, False)


def _meta(p: Plan, api: str, results: int) -> dict:
    return {"api": api, "turn": p.index, "tool_results": results, "side": p.side,
            "calls": [c[0] for c in p.calls], "error": bool(p.error)}


def _text_of(obj) -> str:
    return json.dumps(obj)[:400000]


def route(method: str, path: str, query: dict, body: dict, scn: sc.Scenario) -> Reply:
    if method == "POST":
        if path.endswith("/messages/count_tokens"):
            return Reply.json(200, {"input_tokens": scn.usage["input_tokens"]})
        if path.endswith("/messages"):
            return anthropic(body, scn)
        if path.endswith("/responses"):
            return responses(body, scn)
        if path.endswith("/chat/completions"):
            return chat(body, scn)
        if ":countTokens" in path:
            return Reply.json(200, {"totalTokens": scn.usage["input_tokens"]})
        if ":generateContent" in path or ":streamGenerateContent" in path:
            stream = ":streamGenerateContent" in path
            return gemini(body, scn, stream, query.get("alt", [""])[0] == "sse")
    if path.rstrip("/").endswith("/models"):
        return Reply.json(200, {"object": "list", "data": [
            {"id": scn.model, "object": "model", "type": "model", "display_name": scn.model,
             "created_at": "2026-01-01T00:00:00Z", "owned_by": "codencer-mock"}],
            "models": [], "has_more": False})
    return Reply.json(200, {})


# --- Anthropic Messages ------------------------------------------------------------------

def _anthropic_tools(body: dict) -> dict:
    return {t["name"]: {"schema": t.get("input_schema"), "kind": "function"}
            for t in body.get("tools", []) or [] if isinstance(t, dict) and "name" in t}


def _anthropic_results(body: dict) -> int:
    n = 0
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return n


def anthropic(body: dict, scn: sc.Scenario) -> Reply:
    results = _anthropic_results(body)
    p = plan(scn, _anthropic_tools(body), results, _text_of(body.get("system")) +
             _text_of(body.get("messages", [])[:1]))
    meta = _meta(p, "anthropic", results)
    if p.error:
        status = p.error.get("status", 500)
        etype = p.error.get("type", "api_error")
        return Reply(status=status, meta=meta, body=json.dumps({"type": "error", "error": {
            "type": etype, "message": p.error.get("message", "mock error")}}).encode(),
            headers=[("x-should-retry", "false")])
    blocks = []
    if p.text:
        blocks.append({"type": "text", "text": p.text})
    for i, (name, args, _kind) in enumerate(p.calls):
        blocks.append({"type": "tool_use", "id": f"toolu_mock_{p.index}_{results}_{i}", "name": name,
                       "input": args})
    stop = "tool_use" if p.calls else "end_turn"
    usage = {"input_tokens": p.usage["input_tokens"], "output_tokens": p.usage["output_tokens"],
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    msg_id = f"msg_mock_{p.index}"
    model = body.get("model", scn.model)
    if not body.get("stream"):
        return Reply(meta=meta, body=json.dumps({
            "id": msg_id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": usage}).encode())
    ev = [sse({"type": "message_start", "message": {
        "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1}}}, "message_start")]
    for i, block in enumerate(blocks):
        if block["type"] == "text":
            ev.append(sse({"type": "content_block_start", "index": i,
                           "content_block": {"type": "text", "text": ""}}, "content_block_start"))
            ev.append(sse({"type": "content_block_delta", "index": i,
                           "delta": {"type": "text_delta", "text": block["text"]}},
                          "content_block_delta"))
        else:
            ev.append(sse({"type": "content_block_start", "index": i, "content_block": {
                **block, "input": {}}}, "content_block_start"))
            ev.append(sse({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                "content_block_delta"))
        ev.append(sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    ev.append(sse({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                   "usage": {"output_tokens": p.usage["output_tokens"]}}, "message_delta"))
    ev.append(sse({"type": "message_stop"}, "message_stop"))
    return Reply(events=ev, meta=meta)


# --- OpenAI Responses (codex) ------------------------------------------------------------

_RESPONSE_OUTPUTS = {"function_call_output", "custom_tool_call_output", "local_shell_call_output",
                     "tool_search_output", "mcp_tool_call_output"}


def responses(body: dict, scn: sc.Scenario) -> Reply:
    tools = {}
    for t in body.get("tools", []) or []:
        if isinstance(t, dict) and "name" in t:
            kind = "custom" if t.get("type") == "custom" else "function"
            tools[t["name"]] = {"schema": t.get("parameters"), "kind": kind}
    items = body.get("input", []) if isinstance(body.get("input"), list) else []
    results = sum(1 for it in items if isinstance(it, dict) and it.get("type") in _RESPONSE_OUTPUTS)
    p = plan(scn, tools, results, _text_of(body.get("instructions")) + _text_of(items))
    meta = _meta(p, "responses", results)
    rid = f"resp_mock_{p.index}_{int(time.time() * 1000)}"
    if p.error:
        status = p.error.get("status", 500)
        if p.error.get("in_stream"):
            ev = [sse({"type": "response.created", "response": {"id": rid}}, "response.created"),
                  sse({"type": "response.failed", "response": {"id": rid, "error": {
                      "code": p.error.get("type", "server_error"),
                      "message": p.error.get("message", "mock error")}}}, "response.failed")]
            return Reply(events=ev, meta=meta)
        return Reply(status=status, meta=meta, body=json.dumps({"error": {
            "type": p.error.get("type", "server_error"), "code": p.error.get("type"),
            "message": p.error.get("message", "mock error")}}).encode())
    ev = [sse({"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
              "response.created")]
    out = 0
    if p.text:
        item = {"type": "message", "role": "assistant", "id": f"msg_{rid}", "status": "completed",
                "content": [{"type": "output_text", "text": p.text, "annotations": []}]}
        ev.append(sse({"type": "response.output_item.added", "output_index": out,
                       "item": {**item, "content": []}}, "response.output_item.added"))
        ev.append(sse({"type": "response.output_text.delta", "output_index": out,
                       "content_index": 0, "item_id": item["id"], "delta": p.text},
                      "response.output_text.delta"))
        ev.append(sse({"type": "response.output_item.done", "output_index": out, "item": item},
                      "response.output_item.done"))
        out += 1
    for i, (name, args, kind) in enumerate(p.calls):
        call_id = f"call_mock_{p.index}_{results}_{i}"
        if kind == "custom":
            item = {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
                    "name": name, "input": args, "status": "completed"}
        else:
            item = {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                    "name": name, "arguments": json.dumps(args), "status": "completed"}
        ev.append(sse({"type": "response.output_item.done", "output_index": out, "item": item},
                      "response.output_item.done"))
        out += 1
    u = p.usage
    ev.append(sse({"type": "response.completed", "response": {
        "id": rid, "status": "completed", "usage": {
            "input_tokens": u["input_tokens"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u["output_tokens"], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u["input_tokens"] + u["output_tokens"]}}}, "response.completed"))
    return Reply(events=ev, meta=meta)


# --- OpenAI chat completions (qwen, aider, opencode, openclaw) ---------------------------

def chat(body: dict, scn: sc.Scenario) -> Reply:
    tools = {}
    for t in body.get("tools", []) or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict) and "name" in fn:
            tools[fn["name"]] = {"schema": fn.get("parameters"), "kind": "function"}
    messages = body.get("messages", []) or []
    results = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")
    toolless = not tools and scn.toolless == "script"
    if toolless:
        # Count only our own earlier answers: text-only CLIs (aider) put few-shot example
        # exchanges into the history too.
        scripted = {t.get("text", "").strip() for t in scn.turns}
        results = sum(1 for m in messages if isinstance(m, dict)
                      and m.get("role") == "assistant"
                      and str(m.get("content") or "").strip() in scripted)
    p = plan(scn, tools, results, _text_of(messages[:2]), toolless)
    meta = _meta(p, "chat", results)
    if p.error:
        return Reply(status=p.error.get("status", 500), meta=meta, body=json.dumps({"error": {
            "type": p.error.get("type", "server_error"), "code": p.error.get("type"),
            "message": p.error.get("message", "mock error")}}).encode())
    cid = f"chatcmpl-mock-{p.index}"
    model = body.get("model", scn.model)
    created = int(time.time())
    calls = [{"index": i, "id": f"call_mock_{p.index}_{results}_{i}", "type": "function",
              "function": {"name": name, "arguments": args if isinstance(args, str)
                           else json.dumps(args)}}
             for i, (name, args, _k) in enumerate(p.calls)]
    finish = "tool_calls" if calls else "stop"
    u = p.usage
    usage = {"prompt_tokens": u["input_tokens"], "completion_tokens": u["output_tokens"],
             "total_tokens": u["input_tokens"] + u["output_tokens"]}
    if not body.get("stream"):
        message = {"role": "assistant", "content": p.text or None}
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        return Reply(meta=meta, body=json.dumps({
            "id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage}).encode())

    def chunk(delta: dict, finish_reason=None, extra=None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if extra:
            obj.update(extra)
        return sse(obj)

    ev = [chunk({"role": "assistant", "content": ""})]
    if p.text:
        ev.append(chunk({"content": p.text}))
    if calls:
        ev.append(chunk({"tool_calls": calls}))
    ev.append(chunk({}, finish, {"usage": usage}))
    ev.append(b"data: [DONE]\n\n")
    return Reply(events=ev, meta=meta)


# --- Gemini ------------------------------------------------------------------------------

def gemini(body: dict, scn: sc.Scenario, stream: bool, sse_mode: bool) -> Reply:
    tools = {}
    for t in body.get("tools", []) or []:
        for fd in (t.get("functionDeclarations") or []) if isinstance(t, dict) else []:
            schema = fd.get("parametersJsonSchema") or fd.get("parameters")
            tools[fd["name"]] = {"schema": schema, "kind": "function"}
    contents = body.get("contents", []) or []
    results = sum(1 for c in contents for part in (c.get("parts") or [])
                  if isinstance(part, dict) and "functionResponse" in part)
    p = plan(scn, tools, results, _text_of(body.get("systemInstruction")) +
             _text_of(contents[:2]))
    meta = _meta(p, "gemini", results)
    if p.error:
        status = p.error.get("status", 500)
        return Reply(status=status, meta=meta, body=json.dumps({"error": {
            "code": status, "message": p.error.get("message", "mock error"),
            "status": p.error.get("type", "INTERNAL")}}).encode())
    gen = body.get("generationConfig") or {}
    text = p.text
    if p.side and (gen.get("responseMimeType") == "application/json"
                   or gen.get("responseJsonSchema") or gen.get("responseSchema")):
        text = json.dumps({"reasoning": "mock", "next_speaker": "user", "model_choice": "flash",
                           "complexity_reasoning": "mock", "complexity_score": 1})
    parts = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": name, "args": args}} for name, args, _k in p.calls]
    u = p.usage
    obj = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP",
                           "index": 0}],
           "usageMetadata": {"promptTokenCount": u["input_tokens"],
                             "candidatesTokenCount": u["output_tokens"],
                             "totalTokenCount": u["input_tokens"] + u["output_tokens"]},
           "modelVersion": scn.model}
    if not stream:
        return Reply(meta=meta, body=json.dumps(obj).encode())
    if sse_mode:
        return Reply(meta=meta, events=[sse(obj)])
    return Reply(meta=meta, body=json.dumps([obj]).encode())
