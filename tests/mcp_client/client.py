#!/usr/bin/env python3
"""A real MCP client session against Codencer, with the official Python SDK (`mcp`).

Over Streamable HTTP (`--url http://127.0.0.1:PORT`) or stdio (`--stdio`, spawning
`codencer mcp`). Does: initialize, tools/list, submit_task, wait_for_step, get_result,
append_step (building on step 1), and, when the second step waits for approval,
approve_gate. Prints one JSON summary on stdout; exits non-zero on any failure.

Usage: client.py --url URL --token TOKEN --repo REPO [--stdio --codencer PATH]
"""

import argparse
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(result):
    """The JSON a tool returned, or an exception carrying its error text."""
    body = "".join(getattr(c, "text", "") for c in result.content)
    if result.is_error:
        raise RuntimeError(f"tool error: {body}")
    return json.loads(body)


async def session_run(session, repo):
    out = {}
    init = await session.initialize()
    out["server"] = init.server_info.name if init.server_info else None
    tools = await session.list_tools()
    out["tools"] = sorted(t.name for t in tools.tools)

    # A bad TaskSpec is a tool error the model can act on, not a transport failure.
    bad = await session.call_tool("submit_task", {"taskspec": "task: {name: x}"})
    out["bad_taskspec_is_tool_error"] = bool(bad.is_error)
    out["bad_taskspec_message"] = "".join(getattr(c, "text", "") for c in bad.content)[:200]

    spec = (
        "task:\n"
        "  name: mcp-loop\n"
        f"  workspace: {repo}\n"
        "  executor: shell\n"
        "  goal: write step1.txt\n"
        "  command: 'echo one > step1.txt'\n"
        "  validators: ['test -f step1.txt']\n"
    )
    submitted = text_of(await session.call_tool("submit_task", {"taskspec": spec, "open": True}))
    run_id = submitted["run_id"]
    step1 = submitted["step_ids"][0]
    waited = text_of(
        await session.call_tool(
            "wait_for_step", {"run_id": run_id, "step_id": step1, "timeout_seconds": 120}
        )
    )
    out["step1_done"] = waited["done"]
    out["step1_status"] = waited["result"]["status"]
    result = text_of(await session.call_tool("get_result", {"run_id": run_id, "step_id": step1}))
    out["step1_files"] = result["files_changed"]

    # Step 2 builds on step 1 and touches a protected path: it waits for approval.
    step2_text = (
        "goal: copy step1 into a migration\n"
        "command: 'mkdir -p db/migrations && cp step1.txt db/migrations/001.sql'\n"
        "validators: ['test -f db/migrations/001.sql']\n"
    )
    appended = text_of(
        await session.call_tool("append_step", {"run_id": run_id, "step": step2_text})
    )
    step2 = appended["step_id"]
    waited = text_of(
        await session.call_tool(
            "wait_for_step", {"run_id": run_id, "step_id": step2, "timeout_seconds": 120}
        )
    )
    out["step2_first_status"] = waited["result"]["status"]
    if waited["result"]["status"] == "awaiting_approval":
        run = text_of(await session.call_tool("get_run", {"run_id": run_id}))
        gate = next(
            g
            for s in run["steps"]
            for a in s["attempts"]
            for g in a["gates"]
            if g["name"] == "approval" and g["status"] == "pending"
        )
        text_of(
            await session.call_tool(
                "approve_gate", {"gate_id": gate["id"], "reason": "looks right"}
            )
        )
        # The approval is recorded; the daemon then ends the step passed.
        for _ in range(60):
            waited = text_of(
                await session.call_tool(
                    "wait_for_step", {"run_id": run_id, "step_id": step2, "timeout_seconds": 10}
                )
            )
            if waited["result"]["status"] != "awaiting_approval":
                break
            await asyncio.sleep(0.5)
    out["step2_status"] = waited["result"]["status"]
    out["step2_files"] = waited["result"]["files_changed"]
    arts = text_of(await session.call_tool("list_artifacts", {"run_id": run_id}))
    diff = next(a for a in arts if a["kind"] == "diff")
    art = text_of(await session.call_tool("get_artifact", {"artifact_id": diff["id"]}))
    out["diff_has_step1"] = "step1.txt" in art["text"]
    closed = text_of(await session.call_tool("close_run", {"run_id": run_id}))
    out["closed"] = closed["status"]
    out["run_id"] = run_id

    # A planner stops a run that is taking too long: cancel_run, then the run ends cancelled.
    slow = (
        "task:\n"
        "  name: mcp-cancel\n"
        f"  workspace: {repo}\n"
        "  executor: shell\n"
        "  goal: take long\n"
        "  command: 'sleep 60'\n"
    )
    slow_run = text_of(await session.call_tool("submit_task", {"taskspec": slow}))
    for _ in range(200):
        tree = text_of(await session.call_tool("get_run", {"run_id": slow_run["run_id"]}))
        attempts = tree["steps"][0]["attempts"] if tree["steps"] else []
        if attempts and attempts[0]["attempt"]["status"] == "running":
            break
        await asyncio.sleep(0.1)
    cancelled = text_of(await session.call_tool("cancel_run", {"run_id": slow_run["run_id"]}))
    out["cancel_answer_run_id_matches"] = cancelled["run_id"] == slow_run["run_id"]
    waited = text_of(
        await session.call_tool(
            "wait_for_step",
            {
                "run_id": slow_run["run_id"],
                "step_id": slow_run["step_ids"][0],
                "timeout_seconds": 60,
            },
        )
    )
    out["cancelled_step_status"] = waited["result"]["status"]
    # The run ends just after its step (its actor records that next): wait for it.
    for _ in range(100):
        tree = text_of(await session.call_tool("get_run", {"run_id": slow_run["run_id"]}))
        if tree["run"]["status"] != "running":
            break
        await asyncio.sleep(0.05)
    out["cancelled_run_status"] = tree["run"]["status"]
    return out


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--stdio", action="store_true")
    ap.add_argument("--codencer", default="codencer")
    args = ap.parse_args()
    if args.stdio:
        params = StdioServerParameters(
            command=args.codencer,
            args=["mcp"],
            env={"CODENCER_URL": args.url, "CODENCER_TOKEN": args.token},
        )
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await session_run(session, args.repo)
    else:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {args.token}"})
        async with http:
            async with streamable_http_client(f"{args.url}/mcp", http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    out = await session_run(session, args.repo)
    out["transport"] = "stdio" if args.stdio else "http"
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:  # report, then fail
        print(f"mcp client failed: {exc!r}", file=sys.stderr)
        sys.exit(1)
