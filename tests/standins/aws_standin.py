#!/usr/bin/env python3
"""Stand-in for the AWS APIs that aws-tip and the AWS CLI call in tests.

One HTTP server on 127.0.0.1 serves:

  POST /token?aws_iam=t                   sso-oidc CreateTokenWithIAM (rest-json)
  POST / (form body with Action=...)      STS AssumeRole, AssumeRoleWithWebIdentity,
                                          GetCallerIdentity (query protocol)
  GET  /v20180820/accessgrantsinstance/dataaccess
                                          S3 Control GetDataAccess (rest-xml); the
                                          absolute-form request line that an HTTP
                                          proxy receives is accepted too
  GET|HEAD /<bucket>/<key>                S3 GetObject and HeadObject, path style
  /_standin/...                           control routes (see README.md)

Requests are parsed and validated, and responses and errors are shaped, with
the service models that ship in botocore, so the stand-in follows the
published API definitions. Every signed call is checked by recomputing its
SigV4 signature with botocore's signer. The trust and authorization rules of
the aws-tip flow are modelled from a JSON configuration file (see README.md).

stdout carries exactly one line, `AWS_STANDIN_LISTENING http://127.0.0.1:PORT`.
Logs go to stderr and never contain keys, tokens, assertions or contexts.
"""

import argparse
import base64
import dataclasses
import datetime
import email.utils
import hashlib
import hmac
import http.server
import ipaddress
import json
import logging
import re
import secrets
import signal
import string
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree

import botocore.auth
import botocore.compat
import botocore.credentials
import botocore.loaders
import botocore.model
import jwt
from botocore.awsrequest import AWSRequest

log = logging.getLogger("aws-standin")

IDENTITY_CENTER_PROVIDER_ARN = "arn:aws:iam::aws:contextProvider/IdentityCenter"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
OTHER_OAUTH_GRANTS = {
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange",
}
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
DEFAULT_APPLICATION_SCOPES = ["openid", "aws", "sts:identity_context", "s3:access_grants:read_write"]
IDC_TOKEN_LIFETIME_SECONDS = 3600
ROLE_CHAINING_MAX_SECONDS = 3600
DEFAULT_SESSION_SECONDS = 3600
# SigV4 requests older or newer than this are rejected, as AWS does.
MAX_CLOCK_SKEW_SECONDS = 15 * 60
S3CONTROL_XML_NAMESPACE = "http://awss3control.amazonaws.com/doc/2018-08-20/"
SENSITIVE_VALUE = "*** Sensitive Data Redacted ***"
# Members whose values never appear in messages, even where the model does not
# mark them sensitive (ContextAssertion, for one).
SECRET_MEMBER_NAME = re.compile(r"token|secret|assertion|verifier|password|^code$", re.IGNORECASE)
UNSIGNED_PAYLOADS = {"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}

# Errors that AWS services return without declaring them in the service
# model (authentication, throttling, generic validation), by wire protocol.
GENERIC_ERRORS = {
    "query": {
        "AccessDenied": 403,
        "ExpiredToken": 400,
        "IncompleteSignature": 400,
        "InternalFailure": 500,
        "InvalidAction": 400,
        "InvalidClientTokenId": 403,
        "MissingAuthenticationToken": 403,
        "ServiceUnavailable": 503,
        "SignatureDoesNotMatch": 403,
        "Throttling": 400,
        "ValidationError": 400,
    },
    "rest-json": {
        "IncompleteSignatureException": 400,
        "InternalFailure": 500,
        "InvalidSignatureException": 403,
        "MissingAuthenticationTokenException": 403,
        "ServiceUnavailableException": 503,
        "ThrottlingException": 400,
        "UnrecognizedClientException": 403,
    },
    "rest-xml": {
        "AccessDenied": 403,
        "AuthorizationHeaderMalformed": 400,
        "ExpiredToken": 400,
        "InternalError": 500,
        "InvalidAccessKeyId": 403,
        "InvalidArgument": 400,
        "InvalidRequest": 400,
        "InvalidToken": 400,
        "MethodNotAllowed": 405,
        "NoSuchBucket": 404,
        "NoSuchKey": 404,
        "NotImplemented": 501,
        "RequestTimeTooSkewed": 403,
        "ServiceUnavailable": 503,
        "SignatureDoesNotMatch": 403,
        "SlowDown": 503,
        "XAmzContentSHA256Mismatch": 400,
    },
}

# Authentication failures, named per protocol.
AUTH_ERRORS = {
    "query": {
        "missing": "MissingAuthenticationToken",
        "malformed": "IncompleteSignature",
        "unknown_key": "InvalidClientTokenId",
        "bad_token": "InvalidClientTokenId",
        "expired": "ExpiredToken",
        "signature": "SignatureDoesNotMatch",
        "scope": "SignatureDoesNotMatch",
        "skew": "SignatureDoesNotMatch",
        "payload_hash": "SignatureDoesNotMatch",
    },
    "rest-json": {
        "missing": "MissingAuthenticationTokenException",
        "malformed": "IncompleteSignatureException",
        "unknown_key": "UnrecognizedClientException",
        "bad_token": "UnrecognizedClientException",
        "expired": "ExpiredTokenException",
        "signature": "InvalidSignatureException",
        "scope": "InvalidSignatureException",
        "skew": "InvalidSignatureException",
        "payload_hash": "InvalidSignatureException",
    },
    "rest-xml": {
        "missing": "AccessDenied",
        "malformed": "AuthorizationHeaderMalformed",
        "unknown_key": "InvalidAccessKeyId",
        "bad_token": "InvalidToken",
        "expired": "ExpiredToken",
        "signature": "SignatureDoesNotMatch",
        "scope": "AuthorizationHeaderMalformed",
        "skew": "RequestTimeTooSkewed",
        "payload_hash": "XAmzContentSHA256Mismatch",
    },
}

# Validation failures of request parameters, per service.
VALIDATION_ERRORS = {
    "sts": "ValidationError",
    "sso-oidc": "InvalidRequestException",
    "s3control": "InvalidRequestException",
    "s3": "InvalidArgument",
}


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class ServiceError(Exception):
    """An error response of one AWS service, rendered in its wire format."""

    def __init__(self, code, status, message, fields=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.fields = fields or {}


class ConfigError(Exception):
    """The configuration file is missing a value or contains an invalid one."""


# ---------------------------------------------------------------------------
# Service models
# ---------------------------------------------------------------------------


class Service:
    """One botocore service model and the error shapes it declares."""

    def __init__(self, loader, name):
        self.name = name
        self.model = botocore.model.ServiceModel(loader.load_service_model(name, "service-2"), name)
        self.protocol = self.model.metadata["protocol"]
        self.wire = "rest-xml" if self.protocol == "rest-xml" else self.protocol
        self.errors_by_name = {}
        for shape in self.model.error_shapes:
            self.errors_by_name[shape.name] = shape
            self.errors_by_name.setdefault(shape.error_code, shape)

    def operation(self, name):
        return self.model.operation_model(name)

    def error(self, name, message, **fields):
        """Build the modelled error `name` (shape name or error code), or a generic one."""
        shape = self.errors_by_name.get(name)
        if shape is not None:
            status = shape.metadata.get("error", {}).get("httpStatusCode", 400)
            return ServiceError(shape.error_code, status, message, self._modelled_fields(shape, message, fields))
        status = GENERIC_ERRORS[self.wire].get(name)
        if status is None:
            raise ValueError(f"{name} is neither an error of the {self.name} model nor a generic {self.wire} error")
        return ServiceError(name, status, message, fields)

    def knows_error(self, name):
        return name in self.errors_by_name or name in GENERIC_ERRORS[self.wire]

    def _modelled_fields(self, shape, message, fields):
        if self.name != "sso-oidc":
            return fields
        # SSO OIDC errors carry an OAuth `error` code and `error_description`.
        # The model states each code in the documentation of the `error` member.
        documentation = shape.members["error"].documentation if "error" in shape.members else ""
        match = re.search(r"value will be <code>([^<]+)</code>", documentation or "")
        oauth_error = match.group(1) if match else camel_to_snake(shape.name.removesuffix("Exception"))
        return {"error": oauth_error, "error_description": message, **fields}


def camel_to_snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def lower_camel(name):
    return name[:1].lower() + name[1:]


# ---------------------------------------------------------------------------
# Input validation against the model
# ---------------------------------------------------------------------------


def is_sensitive(shape):
    return bool(shape.metadata.get("sensitive"))


def validation_messages(shape, value, path, hidden=False):
    """Check `value` against `shape` and return AWS-style constraint messages."""
    member_name = path.rsplit(".", 1)[-1]
    hidden = hidden or is_sensitive(shape) or bool(SECRET_MEMBER_NAME.search(member_name))
    displayed_value = SENSITIVE_VALUE if hidden else value
    messages = []
    type_name = shape.type_name

    if type_name == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                messages.append(f"Value null at '{path_join(path, name)}' failed to satisfy constraint: Member must not be null")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                messages += validation_messages(member, value[name], path_join(path, name), hidden)
        return messages

    if type_name == "list":
        messages += length_messages(shape, len(value), f"'{path}'", "length")
        for index, item in enumerate(value, start=1):
            messages += validation_messages(shape.member, item, f"{path}.{index}.member", hidden)
        return messages

    if type_name == "string":
        messages += length_messages(shape, len(value), f"'{displayed_value}' at '{path}'", "length")
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            messages.append(f"Value '{displayed_value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.fullmatch(pattern, value, re.ASCII | re.DOTALL):
            messages.append(f"Value '{displayed_value}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}")
        return messages

    if type_name in ("integer", "long"):
        minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
        if minimum is not None and value < minimum:
            messages.append(f"Value '{displayed_value}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {minimum}")
        if maximum is not None and value > maximum:
            messages.append(f"Value '{displayed_value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {maximum}")
    return messages


def length_messages(shape, length, subject, word):
    minimum, maximum = shape.metadata.get("min"), shape.metadata.get("max")
    messages = []
    if minimum is not None and length < minimum:
        messages.append(f"Value {subject} failed to satisfy constraint: Member must have {word} greater than or equal to {minimum}")
    if maximum is not None and length > maximum:
        messages.append(f"Value {subject} failed to satisfy constraint: Member must have {word} less than or equal to {maximum}")
    return messages


def path_join(path, name):
    return f"{path}.{lower_camel(name)}" if path else lower_camel(name)


def validate_input(service, operation, params):
    messages = validation_messages(operation.input_shape, params, "")
    if not messages:
        return
    count = len(messages)
    noun = "error" if count == 1 else "errors"
    raise service.error(VALIDATION_ERRORS[service.name], f"{count} validation {noun} detected: {'; '.join(messages)}")


def convert_scalar(service, shape, raw, path):
    """Convert a wire string to the shape's type, or raise the validation error."""
    type_name = shape.type_name
    if type_name in ("integer", "long"):
        if not re.fullmatch(r"-?[0-9]+", raw):
            displayed_value = SENSITIVE_VALUE if is_sensitive(shape) else raw
            raise service.error(VALIDATION_ERRORS[service.name], f"1 validation error detected: Value '{displayed_value}' at '{path}' failed to satisfy constraint: Member must be a whole number")
        return int(raw)
    if type_name == "boolean":
        if raw not in ("true", "false"):
            raise service.error(VALIDATION_ERRORS[service.name], f"1 validation error detected: Value '{raw}' at '{path}' failed to satisfy constraint: Member must be true or false")
        return raw == "true"
    return raw


# ---------------------------------------------------------------------------
# Request parsing per protocol
# ---------------------------------------------------------------------------


def parse_query_structure(service, shape, params, prefix, path):
    """Read a structure from flat query-protocol parameters.

    Nested members are dotted, and a list member `Name` is sent as
    `Name.member.N` (or `Name.N` when the model marks it flattened).
    """
    result = {}
    for name, member in shape.members.items():
        key = prefix + member.serialization.get("name", name)
        value = parse_query_value(service, member, params, key, path_join(path, name))
        if value is not None:
            result[name] = value
    return result


def parse_query_value(service, shape, params, key, path):
    type_name = shape.type_name
    if type_name == "structure":
        if not any(name.startswith(key + ".") for name in params):
            return None
        return parse_query_structure(service, shape, params, key + ".", path)

    if type_name == "list":
        if params.get(key) == "":
            return []
        if shape.serialization.get("flattened"):
            item_prefix = f"{key}."
        else:
            item_prefix = f"{key}.{shape.member.serialization.get('name', 'member')}."
        items = []
        index = 1
        while any(name == f"{item_prefix}{index}" or name.startswith(f"{item_prefix}{index}.") for name in params):
            items.append(parse_query_value(service, shape.member, params, f"{item_prefix}{index}", f"{path}.{index}.member"))
            index += 1
        return items if items else None

    if type_name == "map":
        entries = {}
        index = 1
        while f"{key}.entry.{index}.key" in params:
            entries[params[f"{key}.entry.{index}.key"]] = parse_query_value(
                service, shape.value, params, f"{key}.entry.{index}.value", f"{path}.{index}.value")
            index += 1
        return entries if entries else None

    if key not in params:
        return None
    return convert_scalar(service, shape, params[key], path)


def parse_rest_input(service, shape, request, uri_labels):
    """Read a rest-json or rest-xml input from its query, header, URI and body locations."""
    result = {}
    json_body = None
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        raw = None
        if location == "querystring":
            raw = request.query.get(wire_name)
        elif location == "header":
            raw = request.headers.get(wire_name)
        elif location == "uri":
            raw = uri_labels.get(wire_name)
        elif location is None and service.protocol == "rest-json":
            if json_body is None:
                json_body = parse_json_body(service, request.body)
            if wire_name in json_body:
                result[name] = json_body[wire_name]
            continue
        if raw is not None:
            result[name] = convert_scalar(service, member, raw, path_join("", name))
    return result


def parse_json_body(service, body):
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise service.error("InvalidRequestException", f"the request body is not valid JSON: {error}")
    if not isinstance(parsed, dict):
        raise service.error("InvalidRequestException", "the request body must be a JSON object")
    return parsed


def check_json_types(service, shape, value, path):
    """Reject JSON values whose type does not match the model (string, list, ...)."""
    expected = {
        "string": str, "integer": int, "long": int, "boolean": bool,
        "list": list, "structure": dict, "map": dict,
    }.get(shape.type_name)
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        raise service.error(VALIDATION_ERRORS[service.name], f"1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must be of type {shape.type_name}")
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if value.get(name) is not None:
                check_json_types(service, member, value[name], path_join(path, name))
    elif shape.type_name == "list":
        for index, item in enumerate(value, start=1):
            check_json_types(service, shape.member, item, f"{path}.{index}.member")


# ---------------------------------------------------------------------------
# Response serialization per protocol
# ---------------------------------------------------------------------------


def iso8601(epoch_seconds):
    return datetime.datetime.fromtimestamp(epoch_seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def xml_children(parent, shape, value):
    for name, member in shape.members.items():
        if value.get(name) is None:
            continue
        xml_value(parent, member, member.serialization.get("name", name), value[name])


def xml_value(parent, shape, tag, value):
    if shape.type_name == "list" and shape.serialization.get("flattened"):
        for item in value:
            xml_value(parent, shape.member, tag, item)
        return
    element = ElementTree.SubElement(parent, tag)
    if shape.type_name == "structure":
        xml_children(element, shape, value)
    elif shape.type_name == "list":
        for item in value:
            xml_value(element, shape.member, shape.member.serialization.get("name", "member"), item)
    elif shape.type_name == "timestamp":
        element.text = iso8601(value)
    elif shape.type_name == "boolean":
        element.text = "true" if value else "false"
    else:
        element.text = str(value)


def check_output(operation, value):
    """Raise RuntimeError when a required output member is missing, which is a stand-in bug."""
    missing = []

    def walk(shape, item, path):
        if shape.type_name == "structure":
            for name in shape.required_members:
                if item.get(name) is None:
                    missing.append(path_join(path, name))
            for name, member in shape.members.items():
                if item.get(name) is not None:
                    walk(member, item[name], path_join(path, name))

    walk(operation.output_shape, value, "")
    if missing:
        raise RuntimeError(f"{operation.name} response misses required members: {', '.join(missing)}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


def query_response(service, operation, value, request_id):
    check_output(operation, value)
    namespace = service.model.metadata["xmlNamespace"]
    root = ElementTree.Element(f"{operation.name}Response", xmlns=namespace)
    result = ElementTree.SubElement(root, operation.output_shape.serialization["resultWrapper"])
    xml_children(result, operation.output_shape, value)
    metadata = ElementTree.SubElement(root, "ResponseMetadata")
    ElementTree.SubElement(metadata, "RequestId").text = request_id
    body = ElementTree.tostring(root, encoding="utf-8")
    return Response(200, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body)


def rest_json_response(operation, value, request_id):
    check_output(operation, value)
    payload = {}
    for name, member in operation.output_shape.members.items():
        if value.get(name) is not None:
            payload[member.serialization.get("name", name)] = value[name]
    body = json.dumps(payload).encode()
    return Response(200, {"Content-Type": "application/json", "x-amzn-RequestId": request_id}, body)


def rest_xml_response(operation, value, request_id):
    check_output(operation, value)
    root = ElementTree.Element(operation.output_shape.name, xmlns=S3CONTROL_XML_NAMESPACE)
    xml_children(root, operation.output_shape, value)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")
    return Response(200, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body)


def error_response(service, error, request_id, method):
    if service.wire == "query":
        namespace = service.model.metadata["xmlNamespace"]
        root = ElementTree.Element("ErrorResponse", xmlns=namespace)
        detail = ElementTree.SubElement(root, "Error")
        ElementTree.SubElement(detail, "Type").text = "Sender" if error.status < 500 else "Receiver"
        ElementTree.SubElement(detail, "Code").text = error.code
        ElementTree.SubElement(detail, "Message").text = error.message
        ElementTree.SubElement(root, "RequestId").text = request_id
        body = ElementTree.tostring(root, encoding="utf-8")
        return Response(error.status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body)

    if service.wire == "rest-json":
        payload = error.fields if error.fields else {"message": error.message}
        headers = {
            "Content-Type": "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": request_id,
        }
        return Response(error.status, headers, json.dumps(payload).encode())

    # rest-xml: S3 Control wraps the error in <ErrorResponse>, S3 does not.
    detail = ElementTree.Element("Error")
    ElementTree.SubElement(detail, "Code").text = error.code
    ElementTree.SubElement(detail, "Message").text = error.message
    for name, value in error.fields.items():
        ElementTree.SubElement(detail, name).text = str(value)
    if service.name == "s3control":
        root = ElementTree.Element("ErrorResponse")
        root.append(detail)
        ElementTree.SubElement(root, "RequestId").text = request_id
    else:
        root = detail
        ElementTree.SubElement(root, "RequestId").text = request_id
    headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
    body = b"" if method == "HEAD" else b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="utf-8")
    return Response(error.status, headers, body)


# ---------------------------------------------------------------------------
# Principals, sessions and the state of the stand-in
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Principal:
    """An IAM identity that can sign requests with its keys."""

    kind: str  # "iam-user", "role-session" or "data-access"
    arn: str
    user_id: str
    access_key: str
    secret_key: str
    session_token: str | None = None
    expiration: float | None = None
    role_arn: str | None = None
    session_name: str | None = None
    exchange_principal: bool = False
    # Identity Center user id of an identity-enhanced session.
    identity_user: str | None = None
    # Scope of credentials vended by GetDataAccess.
    grant_scope: str | None = None
    grant_permission: str | None = None

    @property
    def is_role_session(self):
        return self.kind in ("role-session", "data-access")


@dataclasses.dataclass
class IdentityContext:
    user_id: str
    expiration: float


def random_id(prefix, length):
    alphabet = string.ascii_uppercase + "234567"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def role_name(role_arn):
    return role_arn.rsplit("/", 1)[-1]


def session_token():
    # Long and opaque like a real STS session token. Clients treat it as a blob.
    return "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(300)


class State:
    """Vended credentials, identity contexts, call counts and injected failures."""

    def __init__(self, config):
        self.lock = threading.RLock()
        self.principals = {}
        self.contexts = {}
        self.calls = {}
        self.records = []
        self.failures = {}
        for access_key, entry in config.source_keys.items():
            self.principals[access_key] = Principal(
                kind="iam-user",
                arn=entry["arn"],
                user_id="AIDA" + hashlib.sha256(entry["arn"].encode()).hexdigest()[:17].upper(),
                access_key=access_key,
                secret_key=entry["secret"],
                exchange_principal=True,
            )

    def find_principal(self, access_key):
        with self.lock:
            return self.principals.get(access_key)

    def vend_role_session(self, account_id, role_arn, session_name, duration, **extra):
        access_key = random_id("ASIA", 16)
        principal = Principal(
            kind=extra.pop("kind", "role-session"),
            arn=f"arn:aws:sts::{account_id}:assumed-role/{role_name(role_arn)}/{session_name}",
            user_id=f"{random_id('AROA', 17)}:{session_name}",
            access_key=access_key,
            secret_key=secrets.token_urlsafe(30)[:40],
            session_token=session_token(),
            expiration=time.time() + duration,
            role_arn=role_arn,
            session_name=session_name,
            **extra,
        )
        with self.lock:
            self.principals[access_key] = principal
        return principal

    def issue_context(self, user_id, lifetime):
        context = "AQoJb3JpZ2luX2lkYw" + secrets.token_urlsafe(384)
        with self.lock:
            self.contexts[context] = IdentityContext(user_id, time.time() + lifetime)
        return context

    def find_context(self, context):
        with self.lock:
            return self.contexts.get(context)

    def take_failure(self, operation):
        """Pop one injected failure for `operation`, if any is pending."""
        with self.lock:
            pending = self.failures.get(operation)
            if not pending:
                return None
            pending["remaining"] -= 1
            if pending["remaining"] <= 0:
                del self.failures[operation]
            return pending

    def record(self, operation, caller, role_session_name, error_code):
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            self.records.append({
                "operation": operation,
                "caller": caller,
                "role_session_name": role_session_name,
                "error": error_code,
            })

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.records.clear()
            self.failures.clear()


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


def is_loopback_http_url(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass
class TokenIssuer:
    issuer: str
    audiences: list
    claim: str = "email"


class Config:
    """The JSON configuration file, checked once at startup."""

    def __init__(self, data):
        self.account_id = require(data, "account_id", str)
        if not re.fullmatch(r"[0-9]{12}", self.account_id):
            raise ConfigError(f"account_id must be 12 digits, got {self.account_id!r}")
        self.region = require(data, "region", str)
        self.idc_region = require(data, "idc_region", str)

        self.trusted_token_issuer = read_issuer(require(data, "trusted_token_issuer", dict), "trusted_token_issuer")
        self.iam_oidc_provider = read_issuer(data.get("iam_oidc_provider", data["trusted_token_issuer"]), "iam_oidc_provider")
        self.identity_store_users = require(data, "identity_store_users", dict)
        self.application_arn = require(data, "application_arn", str)
        self.application_scopes = data.get("application_scopes", DEFAULT_APPLICATION_SCOPES)

        self.exchange_role_arn = data.get("exchange_role_arn")
        self.identity_bearer_role_arn = require(data, "identity_bearer_role_arn", str)
        self.role_max_session_seconds = data.get("role_max_session_duration", 43200)
        self.source_keys = data.get("source_keys", {})
        for access_key, entry in self.source_keys.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str) or not isinstance(entry.get("arn"), str):
                raise ConfigError(f"source_keys[{access_key!r}] must be an object with string members 'secret' and 'arn'")

        self.access_grants = data.get("access_grants", [])
        for index, grant in enumerate(self.access_grants):
            for key in ("grantee", "target", "permission"):
                if not isinstance(grant.get(key), str):
                    raise ConfigError(f"access_grants[{index}].{key} is missing or not a string")
            if grant["permission"] not in ("READ", "WRITE", "READWRITE"):
                raise ConfigError(f"access_grants[{index}].permission must be READ, WRITE or READWRITE, got {grant['permission']!r}")
            if not grant["target"].startswith("s3://"):
                raise ConfigError(f"access_grants[{index}].target must start with s3://, got {grant['target']!r}")
        self.location_role_arn = data.get(
            "access_grants_location_role_arn", f"arn:aws:iam::{self.account_id}:role/TipAccessGrantsLocation")
        self.objects = {key: value.encode() for key, value in data.get("objects", {}).items()}

        match = re.fullmatch(r"arn:aws:sso::[0-9]{12}:application/(ssoins-[0-9a-f]+)/apl-[0-9a-f]+", self.application_arn)
        if not match:
            raise ConfigError(f"application_arn is not an Identity Center application ARN: {self.application_arn!r}")
        self.instance_arn = f"arn:aws:sso:::instance/{match.group(1)}"


def require(data, key, kind):
    value = data.get(key)
    if not isinstance(value, kind):
        raise ConfigError(f"{key} is missing or not a {kind.__name__}")
    return value


def read_issuer(data, label):
    issuer = data.get("issuer")
    audiences = data.get("audiences")
    if not isinstance(issuer, str) or not is_loopback_http_url(issuer):
        raise ConfigError(f"{label}.issuer must be an http URL on a loopback host, got {issuer!r}")
    if not isinstance(audiences, list) or not audiences:
        raise ConfigError(f"{label}.audiences must be a non-empty list of client IDs")
    return TokenIssuer(issuer, audiences, data.get("claim", "email"))


# ---------------------------------------------------------------------------
# JWT verification against the issuer's JWKS
# ---------------------------------------------------------------------------


class TokenRejected(Exception):
    def __init__(self, message, expired=False):
        super().__init__(message)
        self.expired = expired


class JwksCache:
    """Discovers and caches each issuer's JWKS, refetched when a key ID is unknown."""

    REFETCH_INTERVAL_SECONDS = 5

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}
        # HTTP_PROXY may be set for the SDK under test, but the issuer is reached directly.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch_json(self, url):
        if not is_loopback_http_url(url):
            raise TokenRejected(f"not fetching {url}: only http URLs on loopback hosts are fetched")
        try:
            with self.opener.open(url, timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as error:
            raise TokenRejected(f"could not fetch {url}: {error}") from error

    def load(self, issuer):
        discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        jwks_uri = self.fetch_json(discovery_url).get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise TokenRejected(f"the OpenID configuration at {discovery_url} has no jwks_uri")
        key_set = jwt.PyJWKSet.from_dict(self.fetch_json(jwks_uri))
        log.info("loaded %d signing keys of issuer %s", len(key_set.keys), issuer)
        return key_set

    def signing_key(self, issuer, key_id):
        with self.lock:
            entry = self.entries.get(issuer)
            stale = entry is None or (
                key_id not in {key.key_id for key in entry[0].keys}
                and time.time() - entry[1] > self.REFETCH_INTERVAL_SECONDS)
            if stale:
                entry = (self.load(issuer), time.time())
                self.entries[issuer] = entry
        for key in entry[0].keys:
            if key.key_id == key_id or key_id is None:
                return key
        raise TokenRejected(f"no signing key with kid {key_id!r} in the JWKS of {issuer}")


def verify_jwt(jwks, token, trusted):
    """Verify signature, issuer, audience and expiry of a JWT, returning its claims."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as error:
        raise TokenRejected(f"the token is not a valid JWT: {error}") from error
    try:
        unverified_issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError as error:
        raise TokenRejected(f"the token payload is not valid: {error}") from error
    if unverified_issuer != trusted.issuer:
        raise TokenRejected(f"the token issuer {unverified_issuer!r} is not the trusted issuer {trusted.issuer!r}")

    key = jwks.signing_key(trusted.issuer, header.get("kid"))
    try:
        return jwt.decode(
            token,
            key.key,
            algorithms=JWT_ALGORITHMS,
            audience=trusted.audiences,
            issuer=trusted.issuer,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as error:
        raise TokenRejected("the token has expired", expired=True) from error
    except jwt.InvalidAudienceError as error:
        raise TokenRejected(f"the token audience is not one of the allowed audiences {trusted.audiences}") from error
    except jwt.InvalidTokenError as error:
        raise TokenRejected(f"the token is invalid: {error}") from error


# ---------------------------------------------------------------------------
# SigV4 verification
# ---------------------------------------------------------------------------


class SignedHeadersOnly:
    """Mixin that signs exactly the headers the client listed in SignedHeaders.

    botocore's signer signs every header of the request except a fixed list;
    a verifier must use the client's list instead.
    """

    def __init__(self, credentials, service_name, region_name, signed_header_names):
        super().__init__(credentials, service_name, region_name)
        self.signed_header_names = signed_header_names

    def headers_to_sign(self, request):
        header_map = botocore.compat.HTTPHeaders()
        for name in self.signed_header_names:
            header_map[name] = request.headers[name]
        return header_map


class SigV4Verifier(SignedHeadersOnly, botocore.auth.SigV4Auth):
    pass


class S3SigV4Verifier(SignedHeadersOnly, botocore.auth.S3SigV4Auth):
    pass


@dataclasses.dataclass
class SigningScope:
    access_key: str
    date: str
    region: str
    service: str
    signed_headers: list
    signature: str


def parse_authorization(value):
    algorithm, _, rest = value.partition(" ")
    if algorithm != "AWS4-HMAC-SHA256":
        return None
    fields = {}
    for part in rest.split(","):
        key, _, item = part.strip().partition("=")
        fields[key] = item
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or "SignedHeaders" not in fields or "Signature" not in fields:
        return None
    return SigningScope(
        access_key=credential[0],
        date=credential[1],
        region=credential[2],
        service=credential[3],
        signed_headers=fields["SignedHeaders"].split(";"),
        signature=fields["Signature"],
    )


def split_query(query):
    """Decode a query string into pairs, keeping a literal '+' (SigV4 does not treat it as a space)."""
    pairs = []
    for item in query.split("&") if query else []:
        key, _, value = item.partition("=")
        pairs.append((urllib.parse.unquote(key), urllib.parse.unquote(value)))
    return pairs


# ---------------------------------------------------------------------------
# The request and the operations
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Request:
    method: str
    host: str
    path: str  # raw, percent-encoded path
    raw_query: str
    query: dict
    headers: object  # http.client.HTTPMessage (case-insensitive)
    body: bytes
    # Query and body parameters of a query-protocol (STS) request.
    form: dict = dataclasses.field(default_factory=dict)


class Standin:
    """The operations and the checks of the aws-tip flow."""

    def __init__(self, config, services):
        self.config = config
        self.services = services
        self.state = State(config)
        self.jwks = JwksCache()
        self.started = time.time()
        self.operations = {
            "CreateTokenWithIAM": ("sso-oidc", self.create_token_with_iam),
            "AssumeRole": ("sts", self.assume_role),
            "AssumeRoleWithWebIdentity": ("sts", self.assume_role_with_web_identity),
            "GetCallerIdentity": ("sts", self.get_caller_identity),
            "GetDataAccess": ("s3control", self.get_data_access),
            "GetObject": ("s3", self.get_object),
            "HeadObject": ("s3", self.get_object),
        }

    # -- authentication -----------------------------------------------------

    def authenticate(self, service, request, signing_service, region, s3_signer=False):
        """Verify the request's SigV4 signature and return the signing principal."""
        errors = AUTH_ERRORS[service.wire]
        authorization = request.headers.get("Authorization")
        if not authorization:
            raise service.error(errors["missing"], "Request is missing Authentication Token: no Authorization header")
        scope = parse_authorization(authorization)
        if scope is None:
            raise service.error(errors["malformed"], "The Authorization header is not a valid AWS4-HMAC-SHA256 authorization")

        if scope.service != signing_service:
            raise service.error(errors["scope"], f"Credential should be scoped to correct service: '{signing_service}', not '{scope.service}'")
        if scope.region != region:
            if service.name == "sso-oidc":
                raise service.error(
                    "InvalidRequestRegionException",
                    f"the Identity Center instance is in {region}; the request was signed for {scope.region}",
                    endpoint=f"https://oidc.{region}.amazonaws.com", region=region)
            raise service.error(errors["scope"], f"Credential should be scoped to a valid region: expected '{region}', got '{scope.region}'")

        amz_date = request.headers.get("X-Amz-Date", "")
        try:
            signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
        except ValueError:
            raise service.error(errors["malformed"], f"X-Amz-Date is missing or not in the form YYYYMMDDTHHMMSSZ: {amz_date!r}")
        if scope.date != amz_date[:8]:
            raise service.error(errors["malformed"], f"the credential scope date {scope.date} does not match X-Amz-Date {amz_date}")
        if abs(time.time() - signed_at) > MAX_CLOCK_SKEW_SECONDS:
            raise service.error(errors["skew"], f"Signature expired: the request time {amz_date} differs from the server time by more than {MAX_CLOCK_SKEW_SECONDS // 60} minutes")

        if "host" not in scope.signed_headers:
            raise service.error(errors["malformed"], "the Host header must be signed")
        missing = [name for name in scope.signed_headers if request.headers.get(name) is None]
        if missing:
            raise service.error(errors["malformed"], f"signed headers are missing from the request: {', '.join(missing)}")

        principal = self.state.find_principal(scope.access_key)
        if principal is None:
            raise service.error(errors["unknown_key"], "The security token included in the request is invalid: the access key ID is not known")
        presented_token = request.headers.get("X-Amz-Security-Token")
        if principal.session_token is None and presented_token is not None:
            raise service.error(errors["bad_token"], "The security token included in the request is invalid: long-term access keys take no session token")
        if principal.session_token is not None:
            if presented_token is None:
                raise service.error(errors["bad_token"], "The security token included in the request is invalid: temporary credentials need their session token (X-Amz-Security-Token)")
            if not hmac.compare_digest(presented_token, principal.session_token):
                raise service.error(errors["bad_token"], "The security token included in the request is invalid: it does not belong to the access key ID")
        if principal.expiration is not None and time.time() >= principal.expiration:
            raise service.error(errors["expired"], f"The security token included in the request is expired: the credentials of {principal.arn} expired at {iso8601(principal.expiration)}")

        content_sha256 = request.headers.get("X-Amz-Content-SHA256")
        if content_sha256 is not None and content_sha256 not in UNSIGNED_PAYLOADS:
            if content_sha256 != hashlib.sha256(request.body).hexdigest():
                raise service.error(errors["payload_hash"], "The provided x-amz-content-sha256 header does not match the SHA-256 of the request body")

        expected = self.compute_signature(request, scope, principal, amz_date, s3_signer)
        if not hmac.compare_digest(expected, scope.signature):
            raise service.error(errors["signature"], "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
        return principal

    def compute_signature(self, request, scope, principal, amz_date, s3_signer):
        signed_headers = {name: request.headers[name] for name in scope.signed_headers}
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.path}",
            headers=signed_headers,
            data=request.body,
            params=split_query(request.raw_query),
        )
        aws_request.context["timestamp"] = amz_date
        credentials = botocore.credentials.Credentials(principal.access_key, principal.secret_key, principal.session_token)
        verifier_class = S3SigV4Verifier if s3_signer else SigV4Verifier
        verifier = verifier_class(credentials, scope.service, scope.region, scope.signed_headers)
        canonical_request = verifier.canonical_request(aws_request)
        string_to_sign = verifier.string_to_sign(aws_request, canonical_request)
        return verifier.signature(string_to_sign, aws_request)

    def apply_injected_failure(self, service, operation_name):
        failure = self.state.take_failure(operation_name)
        if failure is not None:
            raise service.error(failure["error"], failure["message"])

    # -- STS ------------------------------------------------------------------

    def parse_sts(self, request, operation_name):
        service = self.services["sts"]
        operation = service.operation(operation_name)
        params = parse_query_structure(service, operation.input_shape, request.form, "", "")
        validate_input(service, operation, params)
        return service, operation, params

    def check_duration(self, service, params, chained):
        duration = params.get("DurationSeconds", DEFAULT_SESSION_SECONDS)
        if chained and duration > ROLE_CHAINING_MAX_SECONDS:
            raise service.error("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.")
        if duration > self.config.role_max_session_seconds:
            raise service.error("ValidationError", f"The requested DurationSeconds exceeds the MaxSessionDuration set for this role ({self.config.role_max_session_seconds} seconds).")
        return duration

    def credentials_value(self, principal):
        return {
            "AccessKeyId": principal.access_key,
            "SecretAccessKey": principal.secret_key,
            "SessionToken": principal.session_token,
            "Expiration": principal.expiration,
        }

    def assumed_role_value(self, principal):
        return {"AssumedRoleId": principal.user_id, "Arn": principal.arn}

    def assume_role_with_web_identity(self, request, call):
        # Unsigned: the web identity token is the proof of identity.
        service, operation, params = self.parse_sts(request, "AssumeRoleWithWebIdentity")
        call.role_session_name = params["RoleSessionName"]
        self.apply_injected_failure(service, operation.name)

        role_arn = params["RoleArn"]
        if self.config.exchange_role_arn is None:
            raise service.error("AccessDenied", f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}: the stand-in configuration has no exchange_role_arn")
        if role_arn != self.config.exchange_role_arn:
            raise service.error("AccessDenied", f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}: only the exchange role {self.config.exchange_role_arn} trusts the OpenID provider")
        try:
            claims = verify_jwt(self.jwks, params["WebIdentityToken"], self.config.iam_oidc_provider)
        except TokenRejected as error:
            if error.expired:
                raise service.error("ExpiredTokenException", f"Token expired: {error}")
            raise service.error("InvalidIdentityToken", f"The web identity token was rejected: {error}")

        duration = self.check_duration(service, params, chained=False)
        principal = self.state.vend_role_session(
            self.config.account_id, role_arn, params["RoleSessionName"], duration, exchange_principal=True)
        call.caller = f"web-identity:{claims['sub']}"
        audience = claims["aud"] if isinstance(claims["aud"], str) else claims["aud"][0]
        value = {
            "Credentials": self.credentials_value(principal),
            "SubjectFromWebIdentityToken": claims["sub"],
            "AssumedRoleUser": self.assumed_role_value(principal),
            "Provider": self.config.iam_oidc_provider.issuer,
            "Audience": audience,
        }
        return query_response(service, operation, value, call.request_id)

    def assume_role(self, request, call):
        service = self.services["sts"]
        caller = self.authenticate(service, request, "sts", self.config.region)
        call.caller = caller.arn
        service, operation, params = self.parse_sts(request, "AssumeRole")
        call.role_session_name = params["RoleSessionName"]
        self.apply_injected_failure(service, operation.name)

        role_arn = params["RoleArn"]
        contexts = params.get("ProvidedContexts")
        denied = f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"

        if role_arn == self.config.exchange_role_arn:
            if caller.kind != "iam-user":
                raise service.error("AccessDenied", f"{denied} (the exchange role trusts the source keys' IAM users only)")
            if contexts:
                raise service.error("AccessDenied", f"User: {caller.arn} is not authorized to perform: sts:SetContext on resource: {role_arn}")
            duration = self.check_duration(service, params, chained=False)
            principal = self.state.vend_role_session(
                self.config.account_id, role_arn, params["RoleSessionName"], duration, exchange_principal=True)

        elif role_arn == self.config.identity_bearer_role_arn:
            if not caller.exchange_principal:
                raise service.error("AccessDenied", f"{denied} (the identity bearer role trusts the exchange principal only)")
            if not contexts:
                raise service.error("AccessDenied", f"{denied} (the trust policy requires an Identity Center context in ProvidedContexts)")
            identity_user = self.check_identity_context(service, contexts)
            duration = self.check_duration(service, params, chained=caller.is_role_session)
            principal = self.state.vend_role_session(
                self.config.account_id, role_arn, params["RoleSessionName"], duration, identity_user=identity_user)

        else:
            raise service.error("AccessDenied", f"{denied} (the stand-in serves only the exchange and identity bearer roles)")

        value = {
            "Credentials": self.credentials_value(principal),
            "AssumedRoleUser": self.assumed_role_value(principal),
        }
        return query_response(service, operation, value, call.request_id)

    def check_identity_context(self, service, contexts):
        """Return the Identity Center user of the one provided context, or raise."""
        if len(contexts) != 1:
            raise service.error("InvalidContextAssertion", f"exactly one provided context is expected, got {len(contexts)}")
        provided = contexts[0]
        if provided.get("ProviderArn") != IDENTITY_CENTER_PROVIDER_ARN:
            raise service.error("InvalidContextAssertion", f"the context provider {provided.get('ProviderArn')!r} is not trusted: expected {IDENTITY_CENTER_PROVIDER_ARN}")
        assertion = provided.get("ContextAssertion")
        if assertion is None:
            raise service.error("InvalidContextAssertion", "the provided context has no ContextAssertion")
        context = self.state.find_context(assertion)
        if context is None:
            raise service.error("InvalidContextAssertion", "the context assertion was not issued by CreateTokenWithIAM of this stand-in")
        if time.time() >= context.expiration:
            raise service.error("InvalidContextAssertion", f"the context assertion expired at {iso8601(context.expiration)}")
        return context.user_id

    def get_caller_identity(self, request, call):
        service = self.services["sts"]
        caller = self.authenticate(service, request, "sts", self.config.region)
        call.caller = caller.arn
        call.role_session_name = caller.session_name
        service, operation, _ = self.parse_sts(request, "GetCallerIdentity")
        self.apply_injected_failure(service, operation.name)
        value = {"UserId": caller.user_id, "Account": self.config.account_id, "Arn": caller.arn}
        return query_response(service, operation, value, call.request_id)

    # -- SSO OIDC -------------------------------------------------------------

    def create_token_with_iam(self, request, call):
        service = self.services["sso-oidc"]
        caller = self.authenticate(service, request, "sso-oauth", self.config.idc_region)
        call.caller = caller.arn
        call.role_session_name = caller.session_name
        operation = service.operation("CreateTokenWithIAM")
        params = parse_rest_input(service, operation.input_shape, request, {})
        check_json_types(service, operation.input_shape, params, "")
        validate_input(service, operation, params)
        self.apply_injected_failure(service, operation.name)

        if not caller.exchange_principal or caller.identity_user is not None:
            raise service.error("AccessDeniedException", f"User: {caller.arn} is not authorized to perform: sso-oauth:CreateTokenWithIAM on resource: {params['clientId']} (the application's actor policy allows the exchange principal only)")
        if params["clientId"] != self.config.application_arn:
            raise service.error("InvalidClientException", f"clientId {params['clientId']!r} is not an application of this Identity Center instance")

        grant_type = params["grantType"]
        if grant_type in OTHER_OAUTH_GRANTS:
            raise service.error("UnauthorizedClientException", f"the application accepts only the {JWT_BEARER_GRANT} grant type, not {grant_type}")
        if grant_type != JWT_BEARER_GRANT:
            raise service.error("UnsupportedGrantTypeException", f"unsupported grant type {grant_type!r}")
        if not params.get("assertion"):
            raise service.error("InvalidRequestException", f"assertion is required for the {JWT_BEARER_GRANT} grant type")

        scopes = params.get("scope") or list(self.config.application_scopes)
        unknown = [scope for scope in scopes if scope not in self.config.application_scopes]
        if unknown:
            raise service.error("InvalidScopeException", f"the scopes {unknown} are not configured for the application")

        user_id = self.identity_store_user(service, params["assertion"])
        context = self.state.issue_context(user_id, IDC_TOKEN_LIFETIME_SECONDS)
        value = {
            "accessToken": "aoa" + secrets.token_urlsafe(48),
            "tokenType": "Bearer",
            "expiresIn": IDC_TOKEN_LIFETIME_SECONDS,
            "idToken": self.identity_center_id_token(user_id, context),
            "issuedTokenType": ACCESS_TOKEN_TYPE,
            "scope": scopes,
            "awsAdditionalDetails": {"identityContext": context},
        }
        return rest_json_response(operation, value, call.request_id)

    def identity_store_user(self, service, assertion):
        trusted = self.config.trusted_token_issuer
        try:
            claims = verify_jwt(self.jwks, assertion, trusted)
        except TokenRejected as error:
            raise service.error("InvalidGrantException", f"the assertion was rejected by the trusted token issuer: {error}")
        claim_value = claims.get(trusted.claim)
        if claim_value is None:
            raise service.error("InvalidGrantException", f"the assertion has no {trusted.claim!r} claim to map to an Identity Center user")
        user_id = self.config.identity_store_users.get(claim_value)
        if user_id is None:
            raise service.error("InvalidGrantException", f"no Identity Center user matches the assertion's {trusted.claim} claim {claim_value!r}")
        return user_id

    def identity_center_id_token(self, user_id, context):
        # Signed with a throwaway HS256 key: clients only decode this token.
        now = int(time.time())
        claims = {
            "iss": f"https://identitycenter.amazonaws.com/{self.config.instance_arn.rsplit('/', 1)[-1]}",
            "sub": user_id,
            "aud": self.config.application_arn,
            "iat": now,
            "exp": now + IDC_TOKEN_LIFETIME_SECONDS,
            "aws:application_arn": self.config.application_arn,
            "aws:instance_arn": self.config.instance_arn,
            "sts:identity_context": context,
        }
        return jwt.encode(claims, secrets.token_bytes(32), algorithm="HS256")

    # -- S3 Control -----------------------------------------------------------

    def get_data_access(self, request, call):
        service = self.services["s3control"]
        caller = self.authenticate(service, request, "s3", self.config.region, s3_signer=True)
        call.caller = caller.arn
        call.role_session_name = caller.session_name
        operation = service.operation("GetDataAccess")
        params = parse_rest_input(service, operation.input_shape, request, {})
        validate_input(service, operation, params)
        self.apply_injected_failure(service, operation.name)

        account_id = params["AccountId"]
        host_label = request.host.split(":")[0].split(".")[0]
        if re.fullmatch(r"[0-9]{12}", host_label) and host_label != account_id:
            raise service.error("InvalidRequestException", f"the account ID in the host name ({host_label}) does not match the x-amz-account-id header ({account_id})")
        if account_id != self.config.account_id:
            raise service.error("AccessDenied", f"Access Denied: the stand-in serves the access grants instance of account {self.config.account_id}, not {account_id}")

        target = params["Target"]
        permission = params["Permission"]
        denied = f"You do not have {permission} permissions to the requested S3 Prefix: {target}"
        if caller.identity_user is None and caller.kind != "role-session":
            raise service.error("AccessDenied", f"{denied} (the caller {caller.arn} is not an identity-enhanced role session)")

        grantees = {caller.identity_user, caller.role_arn} - {None}
        grant = self.closest_grant(grantees, target, permission)
        if grant is None:
            raise service.error("AccessDenied", denied)

        # Default privilege scopes the credentials to the matched grant,
        # Minimal to the requested target.
        # NOTE: the API reference does not say whether MatchedGrantTarget
        # reports the grant or the requested target under Minimal. The
        # stand-in always reports the grant.
        if params.get("Privilege", "Default") == "Minimal":
            credential_scope = target
        else:
            credential_scope = grant["target"]
        duration = params.get("DurationSeconds", DEFAULT_SESSION_SECONDS)
        vended = self.state.vend_role_session(
            self.config.account_id, self.config.location_role_arn, f"access-grants-{uuid.uuid4()}", duration,
            kind="data-access", grant_scope=credential_scope, grant_permission=permission)
        grantee_type = "IAM" if grant["grantee"].startswith("arn:") else "DIRECTORY_USER"
        value = {
            "Credentials": self.credentials_value(vended),
            "MatchedGrantTarget": grant["target"],
            "Grantee": {"GranteeType": grantee_type, "GranteeIdentifier": grant["grantee"]},
            "MatchedInstanceArn": f"arn:aws:s3:{self.config.region}:{self.config.account_id}:access-grants/default",
        }
        return rest_xml_response(operation, value, call.request_id)

    def closest_grant(self, grantees, target, permission):
        """The grant of the longest target that covers `target` with `permission`."""
        best = None
        for grant in self.config.access_grants:
            if grant["grantee"] not in grantees:
                continue
            if not permission_covers(grant["permission"], permission):
                continue
            if not target_within(target, grant["target"]):
                continue
            if best is None or len(grant["target"]) > len(best["target"]):
                best = grant
        return best

    # -- S3 -------------------------------------------------------------------

    def get_object(self, request, call):
        service = self.services["s3"]
        operation_name = "HeadObject" if request.method == "HEAD" else "GetObject"
        caller = self.authenticate(service, request, "s3", self.config.region, s3_signer=True)
        call.caller = caller.arn
        call.role_session_name = caller.session_name
        operation = service.operation(operation_name)
        bucket, _, raw_key = request.path.lstrip("/").partition("/")
        labels = {"Bucket": urllib.parse.unquote(bucket), "Key": urllib.parse.unquote(raw_key)}
        params = parse_rest_input(service, operation.input_shape, request, labels)
        validate_input(service, operation, params)
        self.apply_injected_failure(service, operation_name)

        object_url = f"s3://{params['Bucket']}/{params['Key']}"
        if caller.kind != "data-access":
            reason = "identity-enhanced sessions cannot read S3 directly; call GetDataAccess" if caller.identity_user else "only credentials vended by GetDataAccess can read objects here"
            raise service.error("AccessDenied", f"Access Denied: {caller.arn} may not read {object_url} ({reason})")
        if not permission_covers(caller.grant_permission, "READ") or not target_within(object_url, caller.grant_scope):
            raise service.error("AccessDenied", f"Access Denied: the credentials are scoped to {caller.grant_permission} on {caller.grant_scope}, which does not cover READ on {object_url}")

        body = self.config.objects.get(f"{params['Bucket']}/{params['Key']}")
        if body is None:
            if not any(name.startswith(params["Bucket"] + "/") for name in self.config.objects):
                raise service.error("NoSuchBucket", f"The specified bucket does not exist: {params['Bucket']}")
            raise service.error("NoSuchKey", f"The specified key does not exist: {params['Key']}")

        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body)),
            "ETag": f'"{hashlib.md5(body).hexdigest()}"',
            "Last-Modified": email.utils.formatdate(self.started, usegmt=True),
            "Accept-Ranges": "bytes",
            "x-amz-request-id": call.request_id,
        }
        return Response(200, headers, b"" if request.method == "HEAD" else body)


def permission_covers(granted, requested):
    return granted == requested or granted == "READWRITE"


def target_within(target, scope):
    """Whether `target` lies within `scope`, where a trailing `*` makes `scope` a prefix."""
    if scope.endswith("*"):
        return target.removesuffix("*").startswith(scope[:-1])
    return target == scope


# ---------------------------------------------------------------------------
# HTTP server
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Call:
    """What the log records about one request."""

    operation: str
    request_id: str
    caller: str | None = None
    role_session_name: str | None = None


DATA_ACCESS_PATH = "/v20180820/accessgrantsinstance/dataaccess"


class Handler(http.server.BaseHTTPRequestHandler):
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits for
    # the client's delayed ACK, about 40 ms per response.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "aws-standin"
    standin: Standin = None  # set in main()

    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def log_message(self, format, *args):
        # Request lines can carry query strings, so dispatch() logs its own line instead.
        pass

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def build_request(self):
        target = self.path
        host = self.headers.get("Host", "")
        if target.startswith(("http://", "https://")):
            # Absolute form, as sent to an HTTP proxy.
            parts = urllib.parse.urlsplit(target)
            host = self.headers.get("Host") or parts.netloc
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        path, _, raw_query = target.partition("?")
        return Request(
            method=self.command,
            host=host,
            path=path,
            raw_query=raw_query,
            query=dict(split_query(raw_query)),
            headers=self.headers,
            body=self.read_body(),
        )

    def send(self, response):
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def dispatch(self):
        request = self.build_request()
        if request.path.startswith("/_standin/"):
            self.send(control(self.standin, request))
            return

        operation_name = route(request)
        request_id = str(uuid.uuid4())
        call = Call(operation_name or "Unknown", request_id)
        service_name = self.standin.operations[operation_name][0] if operation_name else service_for_unknown(request)
        service = self.standin.services[service_name]
        try:
            if operation_name is None:
                raise unknown_operation(service, request)
            handler = self.standin.operations[operation_name][1]
            response = handler(request, call)
            error_code = None
        except ServiceError as error:
            response = error_response(service, error, request_id, request.method)
            error_code = error.code
            log.info("%s caller=%s result=%d %s: %s", call.operation, call.caller, error.status, error.code, error.message)
        except Exception:
            # A stand-in bug: respond like an AWS service fault and keep serving.
            log.exception("%s caller=%s failed inside the stand-in", call.operation, call.caller)
            error = service.error("InternalFailure" if service.wire != "rest-xml" else "InternalError", "internal error in the stand-in; see its stderr")
            response = error_response(service, error, request_id, request.method)
            error_code = error.code
        else:
            log.info("%s caller=%s result=%d", call.operation, call.caller, response.status)
        self.standin.state.record(call.operation, call.caller, call.role_session_name, error_code)
        self.send(response)


def route(request):
    """Name the operation a request calls, or None."""
    if request.method == "POST" and request.path == "/token" and request.query.get("aws_iam") == "t":
        return "CreateTokenWithIAM"
    if request.path == "/" and request.method in ("POST", "GET"):
        form = dict(urllib.parse.parse_qsl(request.raw_query, keep_blank_values=True))
        if request.method == "POST":
            form.update(urllib.parse.parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))
        request.form = form
        action = form.get("Action")
        if action in ("AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity") and form.get("Version") == "2011-06-15":
            return action
        return None
    if request.method == "GET" and request.path == DATA_ACCESS_PATH:
        return "GetDataAccess"
    if request.method in ("GET", "HEAD") and re.fullmatch(r"/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+", request.path):
        return "HeadObject" if request.method == "HEAD" else "GetObject"
    return None


def service_for_unknown(request):
    if request.path == "/":
        return "sts"
    if request.path == "/token":
        return "sso-oidc"
    if request.path.startswith("/v20180820/"):
        return "s3control"
    return "s3"


def unknown_operation(service, request):
    if service.name == "sts":
        form = getattr(request, "form", {})
        return service.error("InvalidAction", f"Could not find operation {form.get('Action')!r} for version {form.get('Version')!r}; the stand-in serves AssumeRole, AssumeRoleWithWebIdentity and GetCallerIdentity of 2011-06-15")
    if service.name == "sso-oidc":
        return service.error("InvalidRequestException", "the stand-in serves only POST /token?aws_iam=t (CreateTokenWithIAM)")
    return service.error("NotImplemented", f"the stand-in does not serve {request.method} {request.path}")


# ---------------------------------------------------------------------------
# Control routes
# ---------------------------------------------------------------------------


def json_response(status, value):
    return Response(status, {"Content-Type": "application/json"}, json.dumps(value, indent=1).encode() + b"\n")


def control(standin, request):
    state = standin.state
    if request.method == "GET" and request.path == "/_standin/calls":
        with state.lock:
            return json_response(200, dict(state.calls))
    if request.method == "GET" and request.path == "/_standin/log":
        with state.lock:
            return json_response(200, list(state.records))
    if request.method == "POST" and request.path == "/_standin/reset":
        state.reset()
        log.info("control: counts, log and pending failures cleared")
        return json_response(200, {"reset": True})
    if request.method == "POST" and request.path == "/_standin/fail":
        return inject_failure(standin, request)
    return json_response(404, {"error": f"no control route {request.method} {request.path}; see tests/standins/README.md"})


def inject_failure(standin, request):
    try:
        spec = json.loads(request.body or b"{}")
    except json.JSONDecodeError as error:
        return json_response(400, {"error": f"the body is not valid JSON: {error}"})
    operation = spec.get("operation")
    error_name = spec.get("error")
    count = spec.get("count", 1)
    if operation not in standin.operations:
        return json_response(400, {"error": f"unknown operation {operation!r}; expected one of {sorted(standin.operations)}"})
    service = standin.services[standin.operations[operation][0]]
    if not isinstance(error_name, str) or not service.knows_error(error_name):
        return json_response(400, {"error": f"{error_name!r} is not an error of the {service.name} model nor a generic {service.wire} error"})
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return json_response(400, {"error": f"count must be a positive integer, got {count!r}"})
    message = spec.get("message") or f"failure injected by the test for {operation}"
    with standin.state.lock:
        standin.state.failures[operation] = {"error": error_name, "message": message, "remaining": count}
    log.info("control: the next %d %s calls fail with %s", count, operation, error_name)
    return json_response(200, {"operation": operation, "error": error_name, "remaining": count})


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description="Stand-in for sso-oidc, STS, S3 Control and S3 in aws-tip tests.")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: 0, a free port)")
    parser.add_argument("--config", required=True, help="JSON configuration file (see tests/standins/README.md)")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="aws-standin: %(message)s")
    try:
        with open(args.config, encoding="utf-8") as config_file:
            config = Config(json.load(config_file))
    except (OSError, json.JSONDecodeError, ConfigError) as error:
        log.error("invalid configuration %s: %s", args.config, error)
        return 2

    loader = botocore.loaders.create_loader()
    services = {name: Service(loader, name) for name in ("sso-oidc", "sts", "s3control", "s3")}
    Handler.standin = Standin(config, services)

    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    except OSError as error:
        log.error("cannot listen on 127.0.0.1:%d: %s", args.port, error)
        return 1
    server.daemon_threads = True

    def stop(signum, _frame):
        log.info("received signal %d, shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    port = server.server_address[1]
    log.info("serving account %s, region %s, Identity Center region %s, botocore %s",
             config.account_id, config.region, config.idc_region, botocore.__version__)
    sys.stdout.write(f"AWS_STANDIN_LISTENING http://127.0.0.1:{port}\n")
    sys.stdout.flush()
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
