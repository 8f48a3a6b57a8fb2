"""Scenario files: a scripted list of model turns, and how an abstract action ("write a
file", "run a command") becomes a concrete call of a tool the CLI actually offers."""

from __future__ import annotations

import json
import os
import posixpath
import re
from dataclasses import dataclass, field

DEFAULT_USAGE = {"input_tokens": 100, "output_tokens": 20}


@dataclass
class Scenario:
    description: str
    turns: list[dict]
    usage: dict
    error: dict | None = None
    loop_last: bool = False
    side_text: str = "OK"
    # "side": requests offering no tools are side requests (titles, classifiers) answered
    # with side_text; "script": they play the script too, the turn picked by counting the
    # assistant messages in the history (for text-only executors such as aider).
    toolless: str = "side"
    model: str = "mock-model"
    path: str = ""
    extra: dict = field(default_factory=dict)


def load(path: str) -> Scenario:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("turns", []), list):
        raise SystemExit(f"{path}: a scenario is an object with a `turns` list")
    return Scenario(
        description=data.get("description", ""),
        turns=data.get("turns", []),
        usage={**DEFAULT_USAGE, **data.get("usage", {})},
        error=data.get("error"),
        loop_last=bool(data.get("loop_last", False)),
        side_text=data.get("side_text", "OK"),
        toolless=data.get("toolless", "side"),
        model=data.get("model", "mock-model"),
        path=os.path.abspath(path),
        extra=data,
    )


def calls_of(turn: dict) -> list[dict]:
    """The tool actions of a turn: `calls: [...]`, or the turn itself when it has `action`."""
    if "calls" in turn:
        return list(turn["calls"])
    if "action" in turn:
        return [turn]
    return []


def pick_turn(scn: Scenario, tool_results: int) -> tuple[int, dict]:
    """The turn to play given how many tool results the history already holds."""
    consumed = tool_results
    for index, turn in enumerate(scn.turns):
        n = len(calls_of(turn))
        if n == 0 or consumed < n:
            return index, turn
        consumed -= n
    if scn.loop_last and scn.turns:
        return len(scn.turns) - 1, scn.turns[-1]
    return len(scn.turns), {"text": "Done."}


def pick_text_turn(scn: Scenario, assistant_messages: int) -> tuple[int, dict]:
    """For text-only executors: one scripted turn per assistant message already answered."""
    if assistant_messages < len(scn.turns):
        return assistant_messages, scn.turns[assistant_messages]
    if scn.loop_last and scn.turns:
        return len(scn.turns) - 1, scn.turns[-1]
    return len(scn.turns), {"text": "Done."}


# --- abstract actions -> concrete tool calls -------------------------------------------

SHELL_TOOLS = ["Bash", "exec_command", "shell_command", "run_shell_command", "bash", "shell",
               "exec", "execute_command", "run_command"]
WRITE_TOOLS = ["Write", "write_file", "write", "create_file"]
READ_TOOLS = ["Read", "read_file", "read"]
PATH_KEYS = ["file_path", "filePath", "absolute_path", "path"]
CONTENT_KEYS = ["content", "contents", "text"]

_CWD_PATTERNS = [
    re.compile(r"<cwd>\s*([^<\s\\]+)\s*</cwd>"),
    re.compile(r"[Ww]orking directory:\s*(/[^\s`'\"\\<]+)"),
    re.compile(r"currently working in the directory:?\s*(/[^\s`'\"\\<]+)"),
    re.compile(r"[Cc]urrent (?:working )?directory(?: is)?:?\s*(/[^\s`'\"\\<]+)"),
]


def find_cwd(request_text: str) -> str | None:
    for pattern in _CWD_PATTERNS:
        m = pattern.search(request_text)
        if m:
            return m.group(1).rstrip(".,;:)")
    return None


def _abs(path: str, cwd: str | None) -> str:
    if posixpath.isabs(path) or not cwd:
        return path
    return posixpath.join(cwd, path)


def _props(schema: dict | None) -> dict:
    if not isinstance(schema, dict):
        return {}
    props = schema.get("properties")
    return props if isinstance(props, dict) else {}


def _first_key(schema: dict | None, keys: list[str], default: str) -> str:
    props = _props(schema)
    for key in keys:
        if key in props:
            return key
    return default


def _fill_required(args: dict, schema: dict | None) -> dict:
    """Adds harmless values for required parameters the scenario did not set."""
    if not isinstance(schema, dict):
        return args
    props = _props(schema)
    for key in schema.get("required", []) or []:
        if key in args:
            continue
        kind = props.get(key, {}).get("type") if isinstance(props.get(key), dict) else None
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        if kind == "boolean":
            args[key] = False
        elif kind in ("integer", "number"):
            args[key] = 1
        elif kind == "array":
            args[key] = []
        elif kind == "object":
            args[key] = {}
        else:
            args[key] = "mock"
    return args


def _pick(tools: dict, names: list[str]) -> str | None:
    for name in names:
        if name in tools:
            return name
    return None


def _shell_args(name: str, command: str, schema: dict | None) -> dict:
    if name == "exec_command":
        return {"cmd": command}
    if name == "shell":
        return {"command": ["bash", "-lc", command]}
    if name in ("Bash", "bash"):
        args = {"command": command, "description": "Run a command"}
        if "description" not in _props(schema) and _props(schema):
            args.pop("description")
        return _fill_required(args, schema)
    key = _first_key(schema, ["command", "cmd"], "command")
    return _fill_required({key: command}, schema)


def _patch_for(path: str, content: str) -> str:
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = "".join(f"+{line}\n" for line in lines)
    return f"*** Begin Patch\n*** Add File: {path}\n{body}*** End Patch\n"


def concrete_call(action: dict, tools: dict, cwd: str | None) -> tuple[str, dict | str, str]:
    """(tool name, arguments, kind) for one abstract action. `kind` is "function", or
    "custom" when the arguments are free text (codex's apply_patch grammar tool)."""
    kind = action.get("action")
    if kind == "call":
        # Raw call: {"action": "call", "tools": {"<tool name>": {args}, ...}}; the first
        # offered name wins.
        for name, args in action.get("tools", {}).items():
            if name in tools:
                return name, args, tools[name]["kind"]
        name, args = next(iter(action.get("tools", {"noop": {}}).items()))
        return name, args, "function"
    if kind == "write_file":
        path, content = action["path"], action.get("content", "")
        name = _pick(tools, WRITE_TOOLS)
        if name:
            schema = tools[name]["schema"]
            args = {_first_key(schema, PATH_KEYS, "file_path"): _abs(path, cwd),
                    _first_key(schema, CONTENT_KEYS, "content"): content}
            return name, _fill_required(args, schema), "function"
        if "apply_patch" in tools:
            patch = _patch_for(path, content)
            if tools["apply_patch"]["kind"] == "custom":
                return "apply_patch", patch, "custom"
            return "apply_patch", {"input": patch}, "function"
        heredoc = f"cat > '{path}' <<'CODENCER_EOF'\n{content}CODENCER_EOF"
        return concrete_call({"action": "shell", "command": heredoc}, tools, cwd)
    if kind == "read_file":
        name = _pick(tools, READ_TOOLS)
        if name:
            schema = tools[name]["schema"]
            args = {_first_key(schema, PATH_KEYS, "file_path"): _abs(action["path"], cwd)}
            return name, _fill_required(args, schema), "function"
        return concrete_call({"action": "shell", "command": f"cat '{action['path']}'"},
                             tools, cwd)
    if kind == "shell":
        name = _pick(tools, SHELL_TOOLS) or "Bash"
        return name, _shell_args(name, action["command"], tools.get(name, {}).get("schema")), \
            "function"
    raise ValueError(f"unknown action {kind!r}")
