"""The one mapping of the exception tree to the wire formats (tuneforge.wire.errors), checked against the tree
itself and against botocore's service models: every error class has a row of its own in every table, and every
AWS code and event-stream member is one the service declares, so boto3 raises its named exception class."""

from __future__ import annotations

import inspect

import botocore.session
import pytest

from tuneforge import errors
from tuneforge.wire import errors as wire

CLASSES = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.TuneforgeError)
           and c is not errors.TuneforgeError]


def instance(cls: type[errors.TuneforgeError]) -> errors.TuneforgeError:
    return cls("InvalidSignatureException", "x") if issubclass(cls, errors.AuthenticationFailed) else cls("x")


@pytest.fixture(scope="module")
def models():
    session = botocore.session.get_session()
    return {name: session.get_service_model(name) for name in wire.AWS}


@pytest.mark.parametrize("service", sorted(wire.AWS))
def test_every_error_class_has_an_aws_code_the_service_declares(service, models):
    declared = {shape.name for shape in models[service].error_shapes}
    for cls in CLASSES:
        code, status = wire.aws(service, instance(cls))
        if issubclass(cls, errors.AuthenticationFailed):  # AWS's generic auth codes, in no service model
            assert (code, status) == ("InvalidSignatureException", 403)
            continue
        assert code in declared, f"{cls.__name__} -> {code}, not an error of {service}"
        assert 400 <= status < 600
    assert wire.aws(service, errors.TuneforgeError("x")) == wire.AWS_DEFAULT


def test_the_tables_keep_bedrocks_differences():
    conflict = errors.Conflict("x")
    assert wire.aws("bedrock", conflict).status == 400 and wire.aws("bedrock-agent", conflict).status == 409
    assert wire.aws("bedrock-agent", errors.QuotaExceeded("x")) == ("ServiceQuotaExceededException", 402)
    assert wire.aws("bedrock-runtime", errors.ModelNotReady("x")) == ("ModelNotReadyException", 429)
    assert wire.aws("bedrock", errors.ModelNotReady("x")) == ("ThrottlingException", 429)  # bedrock has no such code
    assert wire.aws("bedrock-runtime", errors.ModelFailure("x")) == ("ModelErrorException", 424)
    assert wire.aws("bedrock", errors.TooManyTags("x")) == ("TooManyTagsException", 400)


def test_authentication_codes_and_statuses():
    assert set(wire.AUTHENTICATION) == set(errors.AuthenticationFailed.CODES)
    assert wire.aws("bedrock", errors.AuthenticationFailed("IncompleteSignatureException", "x")).status == 400
    with pytest.raises(ValueError, match="not one of"):
        errors.AuthenticationFailed("NoSuchException", "x")


@pytest.mark.parametrize(("operation", "member"), [("InvokeModelWithResponseStream", "body"), ("ConverseStream", "stream")])
def test_stream_errors_are_members_of_the_event_stream(operation, member, models):
    union = models["bedrock-runtime"].operation_model(operation).output_shape.members[member]
    for cls in CLASSES:
        assert wire.stream_member(instance(cls)) in union.members, cls.__name__
    assert wire.STREAM_DEFAULT in union.members
    assert wire.stream_member(errors.ModelNotReady("x")) == "throttlingException"
    assert wire.stream_member(errors.ModelFailure("x")) == "modelStreamErrorException"


def test_agent_stream_errors_are_members_of_its_event_stream(models):
    union = models["bedrock-agent-runtime"].operation_model("RetrieveAndGenerateStream").output_shape.members["stream"]
    for cls in CLASSES:
        assert wire.agent_stream_member(instance(cls)) in union.members, cls.__name__
    assert wire.STREAM_DEFAULT in union.members
    assert wire.agent_stream_member(errors.ModelFailure("x")) == "dependencyFailedException"


def test_openai_and_cli_cover_the_tree():
    for cls in CLASSES:
        status, kind, _ = wire.openai(instance(cls))
        assert (status, kind) != (wire.OPENAI_DEFAULT.status, wire.OPENAI_DEFAULT.type) or cls is errors.ModelFailure, cls
    assert wire.openai(errors.NotFound("x", field="model")).code == "model_not_found"
    assert wire.openai(errors.AuthenticationFailed("UnrecognizedClientException", "x")) == (401, "authentication_error", "invalid_api_key")
    assert [wire.exit_code(e) for e in (errors.PromptTooLong("x"), errors.NotFound("x"), errors.Conflict("x"))] == [2, 3, 1]
    assert wire.openai_http(405).code == "method_not_allowed" and wire.aws_http(404) == ("ValidationException", 404)
