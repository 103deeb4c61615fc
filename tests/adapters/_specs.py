"""Validate requests against the vendors' OpenAPI definitions (tests only; nothing is copied).

The definitions live outside the repository: `$NEXUS_VENDOR_SPECS`, else the first
`shared/vendor-specs` folder found beside the repository root or one of its ancestors (so a git
worktree finds the same folder). Tests skip with a reason when it is absent.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from nexus_connector_async.testing._vendor_server import SimulatedRequest, parse_brackets

ENV = "NEXUS_VENDOR_SPECS"
_REPO = Path(__file__).resolve().parents[2]


def spec_dir() -> Path | None:
    """The vendor-specs folder, or None when it is not there."""
    env = os.environ.get(ENV)
    if env:
        path = Path(env)
        return path if path.is_dir() else None
    for ancestor in [_REPO, *_REPO.parents]:
        candidate = ancestor / ".." / "shared" / "vendor-specs"
        if candidate.is_dir():
            return candidate.resolve()
    return None


def require_spec(name: str) -> OpenApiSpec:
    """The named spec, or skip the test with a reason."""
    pytest.importorskip("jsonschema", reason="jsonschema is needed to validate against specs")
    folder = spec_dir()
    if folder is None or not (folder / name).is_file():
        pytest.skip(f"vendor spec {name} not found (set {ENV} or add ../shared/vendor-specs)")
    return _load(str(folder / name))


@functools.cache
def _load(path: str) -> OpenApiSpec:
    return OpenApiSpec(json.loads(Path(path).read_text(encoding="utf-8")))


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class OpenApiSpec:
    """Just enough of OpenAPI 3.0 to check a request: path, method, parameters, auth, body."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in doc["paths"]:
            regex = re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            self._routes.append((re.compile(regex + "$"), template))
        self._validators: dict[str, Any] = {}

    def operation(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        """The path template and path parameters for `method path`, or None."""
        for regex, template in self._routes:
            match = regex.match(path)
            if match and method.lower() in self.doc["paths"][template]:
                return template, match.groupdict()
        return None

    def deref(self, node: Any) -> Any:
        """Follow `$ref`s (local ones only) until a real object is reached."""
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.doc
            for token in node["$ref"].removeprefix("#/").split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def check(self, pointer: str, value: Any) -> list[str]:
        """Errors of `value` against the schema at JSON pointer `pointer` (Draft 4 semantics)."""
        import jsonschema  # noqa: PLC0415 - optional test dependency

        validator = self._validators.get(pointer)
        if validator is None:
            # The whole document is the root, so "#/components/..." refs resolve in it.
            root = {**self.doc, "$ref": pointer}
            validator = self._validators[pointer] = jsonschema.Draft4Validator(root)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in validator.iter_errors(value)
        ]

    def validate(self, request: SimulatedRequest) -> list[str]:
        """Every way `request` departs from the spec (empty when it conforms)."""
        found = self.operation(request.method, request.path)
        if found is None:
            return [f"{request.method} {request.path} is not an operation of this spec"]
        template, path_params = found
        op = self.doc["paths"][template][request.method.lower()]
        base = f"#/paths/{_escape(template)}/{request.method.lower()}"
        errors = self._check_security(op, request.headers)
        query = parse_brackets(request.query) if request.query else {}
        params = [
            *self.doc["paths"][template].get("parameters", []),
            *op.get("parameters", []),
        ]
        for raw in params:
            param = self.deref(raw)
            name, where = param["name"], param["in"]
            value: Any
            if where == "path":
                value = path_params.get(name)
            elif where == "query":
                value = query.pop(name, None)
            elif where == "header":
                value = request.headers.get(name)
            else:
                continue
            if value is None:
                if param.get("required"):
                    errors.append(f"missing required {where} parameter {name}")
                continue
            value = self.coerce(value, param.get("schema", {}))
            errors += [f"{where} {name}: {e}" for e in self.check_schema(param["schema"], value)]
        errors += [f"unknown query parameter {name}" for name in query]
        errors += self._check_body(op, base, request)
        return errors

    def check_schema(self, schema: Any, value: Any) -> list[str]:
        if isinstance(schema, dict) and set(schema) == {"$ref"}:
            return self.check(schema["$ref"], value)
        import jsonschema  # noqa: PLC0415

        resolver_root = {**self.doc, **schema}
        return [e.message for e in jsonschema.Draft4Validator(resolver_root).iter_errors(value)]

    def _check_security(self, op: dict[str, Any], headers: Mapping[str, str]) -> list[str]:
        requirements = op.get("security", self.doc.get("security"))
        if not requirements:
            return []
        auth = headers.get("Authorization", "")
        schemes = self.doc["components"]["securitySchemes"]
        for requirement in requirements:
            for name in requirement:
                scheme = schemes[name]
                if scheme["type"] == "oauth2" and auth.startswith("Bearer "):
                    return []
                if scheme["type"] == "http" and auth.lower().startswith(scheme["scheme"] + " "):
                    return []
        return ["no Authorization header satisfying the spec's security schemes"]

    def _check_body(self, op: dict[str, Any], base: str, request: SimulatedRequest) -> list[str]:
        spec_body = self.deref(op.get("requestBody"))
        if spec_body is None:
            return ["request has a body the operation does not take"] if request.body else []
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        if not request.body:
            if spec_body.get("required"):
                return ["missing required request body"]
            return []
        if content_type not in spec_body["content"]:
            return [f"content type {content_type!r} not in {sorted(spec_body['content'])}"]
        schema_ptr = f"{base}/requestBody/content/{_escape(content_type)}/schema"
        schema = spec_body["content"][content_type]["schema"]
        if content_type == "application/json":
            value: Any = json.loads(request.body)
        else:
            value = self.coerce(parse_brackets(request.body.decode()), schema)
        return [f"body {e}" for e in self.check(schema_ptr, value)]

    def coerce(self, value: Any, schema: Any) -> Any:
        """Form and query values are strings: turn them into the types the schema declares."""
        schema = self.deref(schema)
        alternatives = [self.deref(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
        if alternatives:
            for alt in alternatives:
                if _shape_fits(value, alt):
                    return self.coerce(value, alt)
            return value
        if isinstance(value, dict):
            props = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            out = {}
            for key, sub in value.items():
                sub_schema = props.get(key, extra if isinstance(extra, dict) else {})
                out[key] = self.coerce(sub, sub_schema)
            return out
        if isinstance(value, list):
            return [self.coerce(v, schema.get("items", {})) for v in value]
        if isinstance(value, str):
            kind = schema.get("type")
            if kind == "integer" and re.fullmatch(r"-?[0-9]+", value):
                return int(value)
            if kind == "boolean" and value in ("true", "false"):
                return value == "true"
            if kind == "array":
                return [self.coerce(v, schema.get("items", {})) for v in value.split(",")]
        return value


def _shape_fits(value: Any, schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    if isinstance(value, dict):
        return kind == "object" or (kind is None and "properties" in schema)
    if isinstance(value, list):
        return kind == "array"
    if isinstance(value, str):
        if "enum" in schema:
            return value in schema["enum"]
        if kind == "integer":
            return bool(re.fullmatch(r"-?[0-9]+", value))
        if kind == "boolean":
            return value in ("true", "false")
        return kind in ("string", "number", None)
    return True


def query_pairs(query: str) -> list[tuple[str, str]]:
    """`a=1&b=2` as pairs (for assertions)."""
    return parse_qsl(query, keep_blank_values=True)
