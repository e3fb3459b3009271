"""`bedrock` TagResource, UntagResource, ListTagsForResource (custom models and customization jobs).

Kept apart from control.py so the control plane's handler table grows without touching these.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from tuneforge.api.services import services


def tag_resource(request: Request, params: dict[str, Any]) -> dict:
    services(request).tags.tag(params["resourceARN"], [(t["key"], t["value"]) for t in params["tags"]])
    return {}


def untag_resource(request: Request, params: dict[str, Any]) -> dict:
    services(request).tags.untag(params["resourceARN"], params["tagKeys"])
    return {}


def list_tags_for_resource(request: Request, params: dict[str, Any]) -> dict:
    return {"tags": [{"key": k, "value": v} for k, v in services(request).tags.list(params["resourceARN"])]}


HANDLERS = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
}
