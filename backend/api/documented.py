"""What the OpenAPI document says each route answers, without costing startup anything.

Routes declare their answers as references to the typed models in :mod:`backend.responses` (``ok``)
and the error statuses they can return (``errors``). The models themselves are only imported when the
document is generated (``/openapi.json``), where :func:`backend.app` adds their schemas: building ~20
pydantic models and FastAPI's per-route response fields at import measured +212 M instructions
(+11 %) from spawn to ready, for a check no client needs at run time. That the answers match the
document is tested instead (schemathesis' response conformance, in the HTTP behaviour suite).
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = "ErrorBody"
ERROR_DESCRIPTIONS = {
    400: "The request breaks a rule no schema can state: a body that is not JSON, an uploaded file whose records "
         "are not what the protocol describes, a path that is not a regular file",
    401: "Missing or wrong bearer token (checked before the body is read)",
    404: "Not found: what the path names, or what the body names (`field` says which), or a model folder at "
         "the given path",
    409: "Conflict with the state of what the request names: a name in use, a job that is not running, an "
         "adapter trained on another model, a target module the model lacks, a model this server cannot train, "
         "a device this machine lacks",
    413: "The body is larger than this route takes (checked before it is read), or the upload than the limit",
    422: "The request body or parameters do not match the schema",
    429: "Too many requests already wait for the model; retry after the seconds in Retry-After",
    507: "The disk holding the data dir is full, or the model would not fit in the memory available; nothing "
         "was changed",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def ok(schema: str, *, status: int = 200, many: bool = False, by_name: bool = False, description: str = "",
       links: dict[str, Any] | None = None, streams: bool = False) -> dict[int | str, dict[str, Any]]:
    """The success answer: one ``schema``, a list of them (``many``) or an object of them by name;
    ``streams``: it may also come as server-sent events (``text/event-stream``)."""
    body: dict[str, Any] = ref(schema)
    if many:
        body = {"type": "array", "items": body}
    elif by_name:
        body = {"type": "object", "additionalProperties": body}
    answer: dict[str, Any] = {"description": description or "Successful Response",
                              "content": {"application/json": {"schema": body}}}
    if streams:
        answer["content"]["text/event-stream"] = {}
    if links:
        answer["links"] = links
    return {status: answer}


def links(**targets: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """OpenAPI links from a created resource to the operations on it: ``name=(operationId, parameter)``,
    the parameter taken from the answer's ``id`` (clients and fuzzers follow them)."""
    return {name: {"operationId": operation, "parameters": {parameter: "$response.body#/id"}}
            for name, (operation, parameter) in targets.items()}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error statuses a route can answer, each with the error body."""
    body = {"application/json": {"schema": ref(ERROR_SCHEMA)}}
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        answers[code] = {"description": ERROR_DESCRIPTIONS[code], "content": body}
        if code == 429:
            answers[code]["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                        "schema": {"type": "integer"}}}
    return answers


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Finish FastAPI's document: the schemas the routes refer to by name, and every 422 answered with
    the error body (FastAPI documents its own, but this app's validation handler answers with
    ``ErrorBody``). Imports the models, so it runs when the document is generated, never at startup."""
    from pydantic.json_schema import models_json_schema

    from backend.responses import document_models

    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if "422" in operation.get("responses", {}):
                operation["responses"]["422"] = errors(422)[422]
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/api/"):
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {}).setdefault("413", errors(413)[413])
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "the token of the ready line"}}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    _, generated = models_json_schema([(model, "serialization") for model in document_models()],
                                      ref_template="#/components/schemas/{model}")
    components.update(generated.get("$defs", {}))
    return schema
