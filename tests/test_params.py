import pytest

from tuneforge.errors import InvalidInput
from tuneforge.inference.params import GenerationRequest, Message, SamplingParams


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"top_p": 1.01}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop": ("",)}, "stop"),
        ({"stop": tuple(str(i) for i in range(17))}, "stop"),
    ],
)
def test_out_of_range_sampling_parameters_name_the_field(kwargs, field):
    with pytest.raises(InvalidInput) as err:
        SamplingParams(**kwargs)
    assert err.value.field == field


def test_requests_need_exactly_one_of_prompt_and_messages():
    with pytest.raises(InvalidInput):
        GenerationRequest()
    with pytest.raises(InvalidInput):
        GenerationRequest(prompt="a", messages=(Message("user", "b"),))
    with pytest.raises(InvalidInput) as err:
        GenerationRequest(messages=(Message("robot", "b"),))
    assert err.value.field == "messages[0].role"


def test_round_trip_through_dict():
    request = GenerationRequest(messages=(Message("system", "s"), Message("user", "u")), params=SamplingParams(stop=("x",), seed=3))
    assert GenerationRequest.from_dict(request.to_dict()) == request
