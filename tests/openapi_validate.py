#!/usr/bin/env python3
"""Validates Tributary's OpenAPI document with openapi-spec-validator.

    python3 tests/openapi_validate.py openapi.json
    python3 tests/openapi_validate.py http://127.0.0.1:8080/api/openapi.json
        (sends $TRIBUTARY_API_KEY, when set, as `Authorization: Bearer ...`)
    python3 tests/openapi_validate.py --instances pairs.json
        ([{"schema", "instance", "type"}]: each value against its schema,
        JSON Schema 2020-12 with formats checked)

Exit status: 0 valid, 1 invalid, 2 the validator is missing
(`pip install openapi-spec-validator`) — it never skips.
"""

import json
import os
import sys
import urllib.request


def load(source):
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source)
        key = os.environ.get("TRIBUTARY_API_KEY")
        if key:
            request.add_header("Authorization", "Bearer " + key)
        with urllib.request.urlopen(request) as response:
            return json.load(response)
    with open(source, encoding="utf-8") as file:
        return json.load(file)


def check_document(source):
    from openapi_spec_validator import validate

    document = load(source)
    validate(document)
    paths = document.get("paths", {})
    operations = sum(
        1 for item in paths.values() for method in item if method in
        ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    )
    print(f"valid OpenAPI {document.get('openapi')}: {len(paths)} paths, {operations} operations")


def check_instances(source):
    from jsonschema import Draft202012Validator, FormatChecker

    failures = 0
    pairs = load(source)
    for pair in pairs:
        validator = Draft202012Validator(pair["schema"], format_checker=FormatChecker())
        for error in validator.iter_errors(pair["instance"]):
            failures += 1
            print(f"{pair.get('type')}: {json.dumps(pair['instance'])}: {error.message}")
    if failures:
        sys.exit(1)
    print(f"{len(pairs)} values match their schemas")


def main(args):
    try:
        import openapi_spec_validator  # noqa: F401
        import jsonschema  # noqa: F401
    except ImportError as error:
        print(f"{error}: pip install openapi-spec-validator", file=sys.stderr)
        return 2
    if len(args) == 2 and args[0] == "--instances":
        check_instances(args[1])
    elif len(args) == 1:
        try:
            check_document(args[0])
        except Exception as error:  # the validator's errors, with their path
            print(f"invalid: {error}", file=sys.stderr)
            return 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
