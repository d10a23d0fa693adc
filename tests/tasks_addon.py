"""A test-only mitmproxy script: answers tests.helpers.TASKS_PATH with the
number of asyncio tasks, so that a test can see a running mitmdump leak none."""

import asyncio
import json

from mitmproxy import http

TASKS_PATH = "/__tokenfix_tests__/tasks"


def request(flow: http.HTTPFlow) -> None:
    if flow.request.path != TASKS_PATH:
        return
    body = json.dumps({"tasks": len(asyncio.all_tasks())}).encode()
    flow.response = http.Response.make(200, body, {"Content-Type": "application/json"})
