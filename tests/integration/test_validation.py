"""Route request validation (`validate:`, `enforce:`): content types (415), the route's body limit
(413), JSON bodies read whole and checked against the route's draft-07 schema (400 invalid_body
with a JSON pointer) before anything reaches the upstream, report-only routes, and schema errors
reported by `--check` with their place in the schema file."""

import copy
import json
import re
import time

import pytest

from harness import (assert_gateway_error, assert_security_headers, base_policy, build_request,
                     chunked, is_closed, plain_request, read_response, request, run_check, send,
                     tls_connect, to_yaml, wait_until)

# ---- the schema and the policy ------------------------------------------------------------------

PAYMENT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$comment": "Body of POST /api/payments: one credit transfer. Outside the euro area the "
                "beneficiary's bank (BIC) must be named.",
    "title": "Payment request",
    "type": "object",
    "definitions": {
        "iban": {
            "description": "Electronic IBAN format: country, check digits, BBAN; no spaces",
            "type": "string",
            "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$",
        },
        "bic": {"type": "string", "pattern": "^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$"},
    },
    "properties": {
        "debtor_iban": {"$ref": "#/definitions/iban"},
        "amount": {
            "type": "number",
            "minimum": 0.01,
            "exclusiveMaximum": 1000000,
            "multipleOf": 0.01,
        },
        "currency": {"type": "string", "enum": ["EUR", "CHF", "GBP", "USD"]},
        "execution_date": {"type": "string", "format": "date"},
        "beneficiary": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 70},
                "iban": {"$ref": "#/definitions/iban"},
                "bic": {"$ref": "#/definitions/bic"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
            "required": ["name", "iban"],
            "additionalProperties": False,
        },
        "references": {
            "type": "array",
            "maxItems": 3,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 35,
                      "pattern": "^[A-Za-z0-9/?:().,'+ -]+$"},
        },
        "remittance": {
            "description": "Either a structured creditor reference (ISO 11649) or free text",
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"creditor_reference": {"type": "string",
                                                          "pattern": "^RF[0-9]{2}[A-Z0-9]{1,21}$"}},
                    "required": ["creditor_reference"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 140}},
                    "required": ["text"],
                    "additionalProperties": False,
                },
            ],
        },
        "urgent": {"type": "boolean"},
    },
    "required": ["debtor_iban", "amount", "currency", "execution_date", "beneficiary"],
    "additionalProperties": False,
    "if": {"properties": {"currency": {"not": {"const": "EUR"}}}, "required": ["currency"]},
    "then": {"properties": {"beneficiary": {"required": ["bic"]}}},
}

# A schema that only says "a JSON object with an id", for the route without content_types.
EVENT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"id": {"type": "string", "format": "uuid"}},
    "required": ["id"],
}

VALID_PAYMENT = {
    "debtor_iban": "DE89370400440532013000",
    "amount": 1250.75,
    "currency": "EUR",
    "execution_date": "2025-03-14",
    "beneficiary": {"name": "Müller & Söhne GmbH", "iban": "FR1420041010050500013M02606"},
    "references": ["INV-2025-0042", "PO 7781"],
    "remittance": {"creditor_reference": "RF18539007547034"},
}

PAYMENTS_LIMIT = 2048   # validate.max_body_bytes of route `payments` (2KiB)
UPLOADS_LIMIT = 1024    # validate.max_body_bytes of route `uploads` (1KiB)

JSON = [("Content-Type", "application/json")]


def encode(document):
    """Compact JSON, UTF-8, key order kept: the bytes a client sends."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


VALID_BODY = encode(VALID_PAYMENT)


def payment(**changes):
    """VALID_PAYMENT with top-level members replaced (None removes one)."""
    document = copy.deepcopy(VALID_PAYMENT)
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def beneficiary(**changes):
    b = copy.deepcopy(VALID_PAYMENT["beneficiary"])
    for key, value in changes.items():
        if value is None:
            b.pop(key, None)
        else:
            b[key] = value
    return b


def validation_policy(certs, upstream, **overrides):
    """Routes (no catch-all, so anything else is 404):
      payments  /api/payments  GET, POST; application/json, 2KiB, payment schema
      quiet     /api/quiet     the same with error_pointer: false
      report    /api/report    the same with enforce: false
      login     /api/login     POST only (for 405); login-like schema
      events    /api/events    schema, no content_types (JSON media types only)
      uploads   /api/uploads   text/csv or application/json, 1KiB, no schema (bodies stream)
    """
    policy = base_policy(certs, upstream, **overrides)
    payments_validate = {"content_types": ["application/json"], "max_body_bytes": "2KiB",
                         "json_schema": "payment.json"}
    policy["routes"] = [
        {"name": "payments", "match": {"path_prefix": "/api/payments", "methods": ["GET", "POST"]},
         "upstream": "core", "validate": dict(payments_validate)},
        {"name": "quiet", "match": {"path_prefix": "/api/quiet", "methods": ["POST"]},
         "upstream": "core", "validate": dict(payments_validate, error_pointer=False)},
        {"name": "report", "match": {"path_prefix": "/api/report", "methods": ["POST"]},
         "upstream": "core", "validate": dict(payments_validate), "enforce": False},
        {"name": "login", "match": {"path_prefix": "/api/login", "methods": ["POST"]},
         "upstream": "core",
         "validate": {"content_types": ["application/json"], "max_body_bytes": "4KiB",
                      "json_schema": "login.json"}},
        {"name": "events", "match": {"path_prefix": "/api/events", "methods": ["POST"]},
         "upstream": "core", "validate": {"json_schema": "event.json"}},
        {"name": "uploads", "match": {"path_prefix": "/api/uploads", "methods": ["POST", "PUT"]},
         "upstream": "core",
         "validate": {"content_types": ["text/csv", "application/json"],
                      "max_body_bytes": "1KiB"}},
    ]
    return policy


LOGIN_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {"username": {"type": "string", "minLength": 3},
                   "password": {"type": "string", "minLength": 12}},
    "required": ["username", "password"],
    "additionalProperties": False,
}

SCHEMA_FILES = {
    "payment.json": json.dumps(PAYMENT_SCHEMA, indent=2),
    "event.json": json.dumps(EVENT_SCHEMA, indent=2),
    "login.json": json.dumps(LOGIN_SCHEMA, indent=2),
}


@pytest.fixture
def gw(gateway_factory, certs, upstream):
    return gateway_factory(validation_policy(certs, upstream), files=SCHEMA_FILES)


# ---- helpers ------------------------------------------------------------------------------------


def post(gateway, path, body, headers=JSON, **kwargs):
    return request(gateway.tls_port, "POST", path, headers=list(headers), body=body, **kwargs)


def assert_invalid_body(response, pointer):
    """400 {"error":"invalid_body","request_id":...,"pointer":...}; pointer None = no pointer."""
    assert response.status == 400, response
    assert (response.header("Content-Type") or "").lower().startswith("application/json"), response
    body = response.json()
    assert body.get("error") == "invalid_body", body
    assert response.header("X-Request-Id") == body.get("request_id"), response
    assert_security_headers(response)
    if pointer is None:
        assert set(body) == {"error", "request_id"}, body
    else:
        assert set(body) == {"error", "request_id", "pointer"}, body
        assert body["pointer"] == pointer, body
    for marker in (b"127.0.0.1", b"/work/", b"boost", b"payment.json", b"minLength", b"pattern"):
        assert marker not in response.body, f"{marker!r} leaked: {response!r}"
    return body


def assert_nothing_upstream(upstream):
    """Nothing recorded at the upstream, and no connection to it was opened."""
    assert upstream.requests() == []
    assert upstream.stats()["connections_accepted"] == 0, upstream.stats()
    assert upstream.stats()["requests"] == 0, upstream.stats()


def assert_forwarded(record, body):
    """The upstream got exactly `body`, framed by a Content-Length."""
    assert record.body_bytes == body, record
    assert record["body_length"] == len(body), record
    assert record["chunked"] is False, record
    assert record.headers_all("Content-Length") == [str(len(body))], record
    assert record.headers_all("Transfer-Encoding") == [], record


def rejections(gateway):
    return [e for e in gateway.stderr_events() if e.get("event") == "rejected"]


def rejection_for(gateway, request_id):
    return wait_until(lambda: [e for e in rejections(gateway) if e.get("request_id") == request_id],
                      5.0, message=f"security log line for {request_id}")[0]


def access_for(gateway, request_id):
    return wait_until(lambda: [e for e in gateway.access_log()
                               if e.get("request_id") == request_id],
                      5.0, message=f"access log line for {request_id}")[0]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)')


def rejection_count(gateway, reason):
    """portcullis_rejections_total{reason=...} (summed over any other labels); 0 when absent."""
    response = plain_request(gateway.admin_port, "GET", "/metrics")
    assert response.status == 200, response
    total = 0.0
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != "portcullis_rejections_total":
            continue
        if f'reason="{reason}"' in (match.group(2) or ""):
            total += float(match.group(3))
    return total


def head_only(path, length, headers=JSON, extra=()):
    """A request head declaring a Content-Length, without its body."""
    items = [("Host", "localhost"), *headers, *extra, ("Content-Length", str(length))]
    return (f"POST {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in items)
            + "\r\n").encode()


def assert_refused_on_head(gw, head, status):
    """Sends only a request head; the gateway answers `status` without waiting for the body and
    closes the connection."""
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, head)
        response = read_response(sock, timeout=5)
        assert_gateway_error(response, status)
        assert is_closed(sock)
    finally:
        sock.close()


def padded(document, size):
    """document as JSON followed by whitespace up to exactly `size` bytes (still valid JSON)."""
    text = encode(document)
    assert len(text) <= size
    return text + b" " * (size - len(text))


# ---- valid bodies -------------------------------------------------------------------------------


def test_valid_body_is_forwarded_byte_for_byte(gw, upstream):
    response = post(gw, "/api/payments", VALID_BODY)
    assert response.status == 200, response
    assert response.text.strip() == "hello from the legacy service"
    assert_security_headers(response)
    [record] = upstream.requests()
    assert record["method"] == "POST" and record.path == "/api/payments"
    assert_forwarded(record, VALID_BODY)
    assert record.header("Content-Type") == "application/json"


def test_valid_chunked_body_reaches_upstream_with_content_length(gw, upstream):
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")],
                                 body=chunked(VALID_BODY, size=37)))
        response = read_response(sock)
    finally:
        sock.close()
    assert response.status == 200, response
    [record] = upstream.requests()
    assert_forwarded(record, VALID_BODY)


def test_valid_body_with_expect_continue(gw, upstream):
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, head_only("/api/payments", len(VALID_BODY), extra=[("Expect", "100-continue")]))
        interim = read_response(sock)
        assert interim.status == 100, interim
        # Nothing goes upstream before the body is there and checked.
        assert upstream.stats()["connections_accepted"] == 0
        send(sock, VALID_BODY)
        responses = [read_response(sock)]
        while responses[-1].status < 200:
            responses.append(read_response(sock))
    finally:
        sock.close()
    response = responses[-1]
    assert response.status == 200, response
    # One 100 Continue, answered before the body; none after it.
    assert [r.status for r in responses] == [200], responses
    [record] = upstream.requests()
    assert_forwarded(record, VALID_BODY)
    assert record.headers_all("Expect") == [], record


def test_body_is_read_whole_before_anything_goes_upstream(gw, upstream):
    """A schema route opens no upstream connection while the body is incomplete."""
    body = VALID_BODY
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, head_only("/api/payments", len(body)) + body[:40])
        time.sleep(0.3)  # give a streaming implementation time to show itself
        assert upstream.stats()["connections_accepted"] == 0
        send(sock, body[40:])
        response = read_response(sock)
    finally:
        sock.close()
    assert response.status == 200, response
    [record] = upstream.requests()
    assert_forwarded(record, body)


def test_route_without_schema_streams_the_body(gw, upstream):
    """No schema: the upstream connection is opened while the body is still arriving."""
    csv = b"date,amount\n2025-03-14,12.50\n" * 10
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, head_only("/api/uploads", len(csv), headers=[("Content-Type", "text/csv")])
             + csv[:50])
        wait_until(lambda: upstream.stats()["connections_accepted"] >= 1, 5.0,
                   message="upstream connection for a streamed body")
        send(sock, csv[50:])
        response = read_response(sock)
    finally:
        sock.close()
    assert response.status == 200, response
    [record] = upstream.requests()
    assert record.body_bytes == csv


def test_body_exactly_at_the_route_limit_passes(gw, upstream):
    body = padded(VALID_PAYMENT, PAYMENTS_LIMIT)
    assert len(body) == PAYMENTS_LIMIT
    response = post(gw, "/api/payments", body)
    assert response.status == 200, response
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")],
                                 body=chunked(body, size=500)))
        chunked_response = read_response(sock)
    finally:
        sock.close()
    assert chunked_response.status == 200, chunked_response
    records = upstream.requests()
    assert len(records) == 2
    for record in records:
        assert_forwarded(record, body)


@pytest.mark.parametrize("content_type", [
    "Application/JSON; charset=utf-8",
    "application/json;charset=UTF-8",
    "APPLICATION/JSON",
])
def test_media_type_case_and_parameters_are_accepted(gw, upstream, content_type):
    response = post(gw, "/api/payments", VALID_BODY, headers=[("Content-Type", content_type)])
    assert response.status == 200, response
    [record] = upstream.requests()
    assert_forwarded(record, VALID_BODY)


def test_get_without_body_on_validated_route_is_not_checked(gw, upstream):
    response = request(gw.tls_port, "GET", "/api/payments?status=booked")
    assert response.status == 200, response
    [record] = upstream.requests()
    assert record["method"] == "GET" and record["body_length"] == 0


# ---- schema violations --------------------------------------------------------------------------

VIOLATIONS = [
    # (id, document, expected pointer)
    ("amount-not-cents", payment(amount=12.345), "/amount"),
    ("amount-zero", payment(amount=0), "/amount"),
    ("amount-negative", payment(amount=-10.00), "/amount"),
    ("amount-at-exclusive-maximum", payment(amount=1000000), "/amount"),
    ("amount-as-string", payment(amount="1250.75"), "/amount"),
    ("currency-not-in-enum", payment(currency="EURO"), "/currency"),
    ("execution-date-format", payment(execution_date="14.03.2025"), "/execution_date"),
    ("execution-date-impossible", payment(execution_date="2025-02-30"), "/execution_date"),
    ("debtor-iban-missing", payment(debtor_iban=None), "/debtor_iban"),
    ("debtor-iban-lowercase", payment(debtor_iban="de89370400440532013000"), "/debtor_iban"),
    ("beneficiary-iban-with-spaces",
     payment(beneficiary=beneficiary(iban="FR14 2004 1010 0505 0001 3M02 606")),
     "/beneficiary/iban"),
    ("beneficiary-name-missing", payment(beneficiary=beneficiary(name=None)), "/beneficiary/name"),
    ("beneficiary-name-empty", payment(beneficiary=beneficiary(name="")), "/beneficiary/name"),
    ("beneficiary-unknown-member", payment(beneficiary=beneficiary(email="x@example.com")),
     "/beneficiary/email"),
    ("unknown-top-level-member", payment(approved_by="admin"), "/approved_by"),
    ("references-too-many", payment(references=["A1", "A2", "A3", "A4"]), "/references"),
    ("references-not-unique", payment(references=["INV-1", "INV-1"]), "/references"),
    ("reference-bad-character", payment(references=["INV-1", "INV<script>"]), "/references/1"),
    ("reference-not-a-string", payment(references=["INV-1", "INV-2", 3]), "/references/2"),
    ("remittance-matches-both-or-neither",
     payment(remittance={"creditor_reference": "RF18539007547034", "text": "rent"}),
     "/remittance"),
    ("remittance-matches-none", payment(remittance={"text": ""}), "/remittance"),
    ("non-euro-without-bic", payment(currency="CHF"), "/beneficiary/bic"),
    ("urgent-not-boolean", payment(urgent="yes"), "/urgent"),
]


@pytest.mark.parametrize("document,pointer", [v[1:] for v in VIOLATIONS],
                         ids=[v[0] for v in VIOLATIONS])
def test_schema_violation_is_refused_with_pointer(gw, upstream, document, pointer):
    response = post(gw, "/api/payments", encode(document))
    assert_invalid_body(response, pointer)
    assert_nothing_upstream(upstream)


def test_non_euro_payment_with_bic_passes(gw, upstream):
    """The if/then only asks for the BIC outside the euro: with it the same payment passes."""
    body = encode(payment(currency="CHF", beneficiary=beneficiary(bic="UBSWCHZH80A")))
    response = post(gw, "/api/payments", body)
    assert response.status == 200, response
    assert_forwarded(upstream.requests()[0], body)


def test_root_type_violation_has_no_pointer_to_give(gw, upstream):
    response = post(gw, "/api/payments", b"[1, 2, 3]")
    assert_invalid_body(response, pointer=None)
    assert_nothing_upstream(upstream)


def test_pointer_escapes_client_member_names(gw, upstream):
    """Member names come from the client: '/' and '~' are escaped (RFC 6901), quotes as JSON."""
    document = payment()
    document['a/b~"c'] = 1
    response = post(gw, "/api/payments", encode(document))
    assert_invalid_body(response, '/a~1b~0"c')
    assert_nothing_upstream(upstream)


def test_error_pointer_false_gives_no_pointer(gw, upstream):
    response = post(gw, "/api/quiet", encode(payment(amount=12.345)))
    assert_gateway_error(response, 400, "invalid_body")
    assert "pointer" not in response.json()
    assert_nothing_upstream(upstream)
    # A valid body still passes on that route.
    assert post(gw, "/api/quiet", VALID_BODY).status == 200


def test_rejection_is_logged_and_counted(gw, upstream):
    before = rejection_count(gw, "schema_violation")
    response = post(gw, "/api/payments", encode(payment(currency="XXX")))
    body = assert_invalid_body(response, "/currency")
    event = rejection_for(gw, body["request_id"])
    assert event["reason"] == "schema_violation" and event["status"] == 400, event
    assert event["route"] == "payments", event
    assert "mode" not in event, event
    assert access_for(gw, body["request_id"])["status"] == 400
    wait_until(lambda: rejection_count(gw, "schema_violation") >= before + 1, 5.0,
               message="rejections_total{reason=schema_violation} increased")
    assert_nothing_upstream(upstream)


# ---- not JSON, ambiguous JSON, too deep ---------------------------------------------------------

NESTED = b'{"debtor_iban":' + b"[" * 40 + b"]" * 40 + b"}"

MALFORMED = [
    ("truncated", VALID_BODY[:-5], "invalid_json"),
    ("trailing-garbage", VALID_BODY + b" {}", "invalid_json"),
    ("single-quotes", VALID_BODY.replace(b'"', b"'"), "invalid_json"),
    ("trailing-comma", VALID_BODY[:-1] + b",}", "invalid_json"),
    ("not-utf8", VALID_BODY.replace("Müller".encode(), b"M\xfcller"), "invalid_json"),
    ("number-overflow", VALID_BODY.replace(b"1250.75", b"1e999"), None),
    ("duplicate-member", VALID_BODY[:-1] + b',"amount":999999.99}', "invalid_json"),
    ("duplicate-nested-member",
     VALID_BODY.replace(b'"iban":"FR', b'"iban":"DE89370400440532013000","iban":"FR'),
     "invalid_json"),
    ("too-deep", NESTED, "json_limit_exceeded"),
]


@pytest.mark.parametrize("body,reason", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_body_that_is_not_acceptable_json_is_refused(gw, upstream, body, reason):
    response = post(gw, "/api/payments", body)
    refused = assert_invalid_body(response, pointer=None)
    if reason is not None:
        assert access_for(gw, refused["request_id"])["reason"] == reason
    assert_nothing_upstream(upstream)


def test_empty_body_with_content_length_zero_is_refused(gw, upstream):
    """A body that is there but empty is not JSON (request_rules.hpp: a request has a body when
    "Content-Length present, even 0, or chunked"; an empty body is invalid_json)."""
    response = post(gw, "/api/payments", b"")
    assert_invalid_body(response, pointer=None)
    assert_nothing_upstream(upstream)


def test_empty_chunked_body_is_refused(gw, upstream):
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")],
                                 body=b"0\r\n\r\n"))
        assert_invalid_body(read_response(sock), pointer=None)
    finally:
        sock.close()
    assert_nothing_upstream(upstream)


def test_duplicate_member_names_refused_even_when_both_copies_are_valid(gw, upstream):
    """The gateway must not check one "amount" while the upstream books the other."""
    body = VALID_BODY[:-1] + b',"amount":1.00}'
    assert json.loads(body)["amount"] == 1.00  # Python keeps the last copy
    response = post(gw, "/api/payments", body)
    assert_invalid_body(response, pointer=None)
    assert_nothing_upstream(upstream)


# ---- content types ------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    [("Content-Type", "text/plain")],
    [("Content-Type", "application/x-www-form-urlencoded")],
    [("Content-Type", "application/jsonx")],
    [("Content-Type", "application/merge-patch+json")],
    [("Content-Type", "json")],
    [],
], ids=["text-plain", "form", "jsonx", "other-json-type", "no-slash", "missing"])
def test_wrong_content_type_is_415(gw, upstream, headers):
    response = post(gw, "/api/payments", VALID_BODY, headers=headers)
    assert_gateway_error(response, 415)
    assert_nothing_upstream(upstream)


def test_415_answered_before_the_body_is_sent(gw, upstream):
    assert_refused_on_head(gw, head_only("/api/payments", len(VALID_BODY),
                                         headers=[("Content-Type", "text/xml")],
                                         extra=[("Expect", "100-continue")]), 415)
    assert_nothing_upstream(upstream)


def test_schema_route_without_content_types_takes_json_media_types_only(gw, upstream):
    body = b'{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}'
    for content_type in ("application/json", "application/problem+json",
                         "application/json; charset=utf-8"):
        response = post(gw, "/api/events", body, headers=[("Content-Type", content_type)])
        assert response.status == 200, (content_type, response)
    for content_type in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        response = post(gw, "/api/events", body, headers=[("Content-Type", content_type)])
        assert_gateway_error(response, 415)
    response = post(gw, "/api/events", body, headers=[])
    assert_gateway_error(response, 415)
    assert len(upstream.requests()) == 3
    # The schema applies too.
    assert_invalid_body(post(gw, "/api/events", b'{"id":"not-a-uuid"}'), "/id")


def test_route_with_content_types_but_no_schema_streams_bodies(gw, upstream):
    csv = b"iban;amount\nDE89370400440532013000;12.50\n"
    response = post(gw, "/api/uploads", csv, headers=[("Content-Type", "text/csv")])
    assert response.status == 200, response
    # No schema: a JSON-labelled body is not parsed, malformed or not.
    not_json = b'{"amount": 1, "amount": oops'
    response = post(gw, "/api/uploads", not_json, headers=JSON)
    assert response.status == 200, response
    chunked_csv = b"x,y\n" * 100
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/uploads",
                                 headers=[("Content-Type", "text/csv; header=present"),
                                          ("Transfer-Encoding", "chunked")],
                                 body=chunked(chunked_csv, size=64)))
        assert read_response(sock).status == 200
    finally:
        sock.close()
    records = upstream.requests()
    assert [r.body_bytes for r in records] == [csv, not_json, chunked_csv]
    # Other types are still refused.
    response = post(gw, "/api/uploads", b"<x/>", headers=[("Content-Type", "application/xml")])
    assert_gateway_error(response, 415)
    assert len(upstream.requests()) == 3


# ---- body limits --------------------------------------------------------------------------------


def test_content_length_over_route_limit_is_413_before_the_body(gw, upstream):
    assert_refused_on_head(gw, head_only("/api/payments", PAYMENTS_LIMIT + 1), 413)
    # With Expect: 100-continue there is no 100 first.
    assert_refused_on_head(gw, head_only("/api/payments", PAYMENTS_LIMIT + 1,
                                         extra=[("Expect", "100-continue")]), 413)
    assert_nothing_upstream(upstream)


def test_route_limit_applies_to_routes_without_schema(gw, upstream):
    body = b"a,b\n" * (UPLOADS_LIMIT // 4)
    assert len(body) == UPLOADS_LIMIT
    assert post(gw, "/api/uploads", body, headers=[("Content-Type", "text/csv")]).status == 200
    response = post(gw, "/api/uploads", body + b"\n", headers=[("Content-Type", "text/csv")])
    assert_gateway_error(response, 413)
    records = upstream.requests()
    assert len(records) == 1 and records[0].body_bytes == body


def test_chunked_body_over_route_limit_is_413(gw, upstream):
    body = padded(VALID_PAYMENT, PAYMENTS_LIMIT + 1)
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")],
                                 body=chunked(body, size=300)))
        response = read_response(sock)
        assert_gateway_error(response, 413)
        assert is_closed(sock)
    finally:
        sock.close()
    assert_nothing_upstream(upstream)


def test_chunked_body_over_limit_sent_slowly_is_413(gw, upstream):
    """The limit holds while the chunks arrive one by one (the body is never read past it)."""
    body = padded(VALID_PAYMENT, 4 * PAYMENTS_LIMIT)
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")]))
        encoded = chunked(body, size=512)
        for i in range(0, len(encoded), 600):
            try:
                send(sock, encoded[i:i + 600])
            except OSError:
                break
            if is_closed(sock, timeout=0.05):
                break
        response = read_response(sock)
        assert_gateway_error(response, 413)
    finally:
        sock.close()
    assert_nothing_upstream(upstream)


def test_chunked_body_over_limit_on_streaming_route_is_413(gw, upstream):
    body = b"x" * (UPLOADS_LIMIT + 1)
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/uploads",
                                 headers=[("Content-Type", "text/csv"),
                                          ("Transfer-Encoding", "chunked")],
                                 body=chunked(body, size=256)))
        response = read_response(sock)
        assert_gateway_error(response, 413)
        assert is_closed(sock)
    finally:
        sock.close()
    assert not [r for r in upstream.requests() if r["body_length"] > UPLOADS_LIMIT]


# ---- methods ------------------------------------------------------------------------------------


def test_method_not_allowed_is_405_with_allow(gw, upstream):
    response = request(gw.tls_port, "GET", "/api/login")
    assert_gateway_error(response, 405)
    assert response.header("Allow") == "POST", response
    response = post(gw, "/api/login", b'{"username":"alice","password":"x"}', headers=JSON)
    assert_invalid_body(response, "/password")
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("PUT", "/api/payments", headers=JSON, body=VALID_BODY))
        response = read_response(sock)
        assert_gateway_error(response, 405)
        allowed = {m.strip() for m in response.header("Allow", "").split(",")}
        assert {"GET", "POST"} <= allowed <= {"GET", "HEAD", "POST"}, response
    finally:
        sock.close()
    assert_nothing_upstream(upstream)


# ---- connection reuse ---------------------------------------------------------------------------


def test_connection_stays_usable_after_invalid_body(gw, upstream):
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments", headers=JSON,
                                 body=encode(payment(amount=0.001))))
        assert_invalid_body(read_response(sock), "/amount")
        assert not is_closed(sock, timeout=0.2)
        assert_nothing_upstream(upstream)
        send(sock, build_request("POST", "/api/payments", headers=JSON, body=VALID_BODY))
        response = read_response(sock)
        assert response.status == 200, response
        # A malformed body, fully read, does not cost the connection either.
        send(sock, build_request("POST", "/api/payments", headers=JSON, body=b"{"))
        assert_invalid_body(read_response(sock), None)
        send(sock, build_request("POST", "/api/payments", headers=JSON, body=VALID_BODY))
        assert read_response(sock).status == 200
    finally:
        sock.close()
    records = upstream.requests()
    assert len(records) == 2
    for record in records:
        assert_forwarded(record, VALID_BODY)


def test_pipelined_invalid_then_valid(gw, upstream):
    invalid = encode(payment(beneficiary=beneficiary(iban="XX")))
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments", headers=JSON, body=invalid)
             + build_request("POST", "/api/payments", headers=JSON, body=VALID_BODY)
             + build_request("GET", "/api/payments/1"))
        first = read_response(sock)
        second = read_response(sock)
        third = read_response(sock)
    finally:
        sock.close()
    assert_invalid_body(first, "/beneficiary/iban")
    assert second.status == 200, second
    assert third.status == 200, third
    records = upstream.requests()
    assert [r["method"] for r in records] == ["POST", "GET"]
    assert_forwarded(records[0], VALID_BODY)
    assert records[1].path == "/api/payments/1"


def test_pipelined_chunked_invalid_then_valid(gw, upstream):
    invalid = encode(payment(references=["R1", "R1"]))
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, build_request("POST", "/api/payments",
                                 headers=JSON + [("Transfer-Encoding", "chunked")],
                                 body=chunked(invalid, size=50))
             + build_request("POST", "/api/payments",
                             headers=JSON + [("Transfer-Encoding", "chunked")],
                             body=chunked(VALID_BODY, size=50)))
        first = read_response(sock)
        second = read_response(sock)
    finally:
        sock.close()
    assert_invalid_body(first, "/references")
    assert second.status == 200, second
    [record] = upstream.requests()
    assert_forwarded(record, VALID_BODY)


def test_next_request_arriving_with_the_body_is_kept(gw, upstream):
    """The head first, then the rest of its body together with the next whole request: the
    bytes after the body belong to the next request."""
    invalid = encode(payment(amount=-1))
    sock = tls_connect(gw.tls_port)
    try:
        send(sock, head_only("/api/payments", len(invalid)))
        time.sleep(0.2)
        send(sock, invalid + build_request("POST", "/api/payments", headers=JSON,
                                           body=VALID_BODY))
        first = read_response(sock)
        second = read_response(sock)
        send(sock, head_only("/api/payments", len(VALID_BODY)))
        time.sleep(0.2)
        send(sock, VALID_BODY + build_request("GET", "/api/payments/2"))
        third = read_response(sock)
        fourth = read_response(sock)
    finally:
        sock.close()
    assert_invalid_body(first, "/amount")
    assert second.status == 200, second
    assert third.status == 200, third
    assert fourth.status == 200, fourth
    records = upstream.requests()
    assert [r["method"] for r in records] == ["POST", "POST", "GET"], records
    assert_forwarded(records[0], VALID_BODY)
    assert_forwarded(records[1], VALID_BODY)
    assert records[2].path == "/api/payments/2"


# ---- report-only --------------------------------------------------------------------------------


def test_report_only_forwards_and_logs_and_counts(gw, upstream):
    before = rejection_count(gw, "schema_violation")
    invalid = encode(payment(amount=12.345))
    response = post(gw, "/api/report", invalid)
    assert response.status == 200, response
    assert response.text.strip() == "hello from the legacy service"
    request_id = response.header("X-Request-Id")
    [record] = upstream.requests()
    assert_forwarded(record, invalid)
    event = rejection_for(gw, request_id)
    assert event["mode"] == "report_only", event
    assert event["reason"] == "schema_violation", event
    assert event["route"] == "report", event
    access = access_for(gw, request_id)
    assert access["status"] == 200 and access.get("mode") == "report_only", access
    wait_until(lambda: rejection_count(gw, "schema_violation") >= before + 1, 5.0,
               message="rejections_total{reason=schema_violation} increased")


def test_report_only_passes_other_verdicts_and_valid_bodies(gw, upstream):
    response = post(gw, "/api/report", VALID_BODY, headers=[("Content-Type", "text/plain")])
    assert response.status == 200, response
    event = rejection_for(gw, response.header("X-Request-Id"))
    assert event["reason"] == "content_type_not_allowed" and event["mode"] == "report_only"
    response = post(gw, "/api/report", b"{not json")
    assert response.status == 200, response
    event = rejection_for(gw, response.header("X-Request-Id"))
    assert event["reason"] == "invalid_json" and event["mode"] == "report_only"
    response = post(gw, "/api/report", VALID_BODY)
    assert response.status == 200, response
    valid_id = response.header("X-Request-Id")
    access = access_for(gw, valid_id)
    assert "mode" not in access and "reason" not in access, access
    assert not [e for e in rejections(gw) if e.get("request_id") == valid_id]
    assert [r.body_bytes for r in upstream.requests()] == [VALID_BODY, b"{not json", VALID_BODY]


# ---- --check ------------------------------------------------------------------------------------

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")


def check_with_schema(certs, tmp_path, schema_text, name="payment.json"):
    (tmp_path / name).write_text(schema_text)
    policy = base_policy(certs, "127.0.0.1:9")
    policy["routes"] = [{"name": "payments", "match": {"path_prefix": "/api/payments"},
                         "upstream": "core",
                         "validate": {"content_types": ["application/json"],
                                      "json_schema": name}}]
    path = tmp_path / "policy.yaml"
    path.write_text(to_yaml(policy))
    return run_check(str(path))


def schema_errors(output, name):
    return [m for m in (ERROR_LINE.match(line.strip()) for line in output.splitlines())
            if m and m["file"].endswith(name)]


def test_check_accepts_the_payment_schema(certs, tmp_path):
    code, output = check_with_schema(certs, tmp_path, SCHEMA_FILES["payment.json"])
    assert code == 0, output
    assert "OK" in output.split(), output


@pytest.mark.parametrize("broken,value,key", [
    ('"type": "strin"', '"strin"', '"type"'),
    ('"type": "string", "pattern": "^(a)\\\\1$"', '"^(a)\\\\1$"', '"pattern"'),
    ('"type": "string", "minLength": -1', "-1", '"minLength"'),
    ('"type": "string", "maxLenght": 4', "4", '"maxLenght"'),
], ids=["unknown-type", "backreference", "negative-minLength", "misspelt-keyword"])
def test_check_names_schema_file_and_position(certs, tmp_path, broken, value, key):
    line_start = '    "iban": { '
    text = ('{\n'
            '  "$schema": "http://json-schema.org/draft-07/schema#",\n'
            '  "type": "object",\n'
            '  "properties": {\n'
            + line_start + broken + ' }\n'
            '  }\n'
            '}\n')
    json.loads(text)  # the file is JSON; the schema in it is what is wrong
    code, output = check_with_schema(certs, tmp_path, text)
    assert code == 1, output
    assert "OK" not in output.split(), output
    errors = schema_errors(output, "payment.json")
    assert errors, output
    # The offending value, or its key, on line 5.
    offsets = {len(line_start) + broken.rindex(value) + 1, len(line_start) + broken.rindex(key) + 1}
    found = {(int(e["line"]), int(e["col"])) for e in errors}
    assert found & {(5, column) for column in offsets}, (found, offsets, output)


def test_check_reports_schema_file_that_is_not_json(certs, tmp_path):
    text = '{\n  "type": "object",\n  properties: {}\n}\n'
    code, output = check_with_schema(certs, tmp_path, text)
    assert code == 1, output
    errors = schema_errors(output, "payment.json")
    assert errors, output
    assert int(errors[0]["line"]) == 3, output


def test_check_reports_schema_file_with_duplicate_member(certs, tmp_path):
    text = '{\n  "type": "object",\n  "type": "array"\n}\n'
    code, output = check_with_schema(certs, tmp_path, text)
    assert code == 1, output
    assert schema_errors(output, "payment.json"), output


def test_check_reports_missing_schema_file(certs, tmp_path):
    policy = base_policy(certs, "127.0.0.1:9")
    policy["routes"] = [{"name": "payments", "match": {"path_prefix": "/"}, "upstream": "core",
                         "validate": {"json_schema": "nowhere.json"}}]
    text = to_yaml(policy)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    code, output = run_check(str(path))
    assert code == 1, output
    assert "OK" not in output.split(), output
    # The error points at the json_schema value in the policy.
    line = text[:text.index('"nowhere.json"')].count("\n") + 1
    errors = [m for m in (ERROR_LINE.match(l.strip()) for l in output.splitlines()) if m]
    assert [(e["file"], int(e["line"])) for e in errors] == [(str(path), line)], output
