import base64
import struct

import pytest

from addon import openai_format as oa
from addon.errors import InvalidRequest, UnsupportedParameter

EVENTS = b'data: {"a":1}\r\n\r\n: comment\r\ndata: {"b":2}\r\n\r\ndata: [DONE]\r\n\r\n'


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(EVENTS)])
def test_sse_parser_handles_any_split_and_crlf(size):
    parser = oa.SseParser()
    payloads = []
    for i in range(0, len(EVENTS), size):
        payloads += parser.feed(EVENTS[i:i + size])
    assert payloads == ['{"a":1}', '{"b":2}', "[DONE]"]
    assert parser.rest() == b""


def test_sse_parser_joins_multiline_data_and_keeps_incomplete_event():
    parser = oa.SseParser()
    assert parser.feed(b"data: one\ndata: two\n\ndata: three") == ["one\ntwo"]
    assert parser.rest() == b"data: three"


def test_checked_params_rejects_unknown_and_unsupported_drops_when_allowed():
    body = {"model": "m", "messages": [], "seed": 1, "store": True, "user": None}
    with pytest.raises(UnsupportedParameter) as info:
        oa.checked_params(body, {"model", "messages"}, "bedrock", drop_unsupported=False)
    assert info.value.param == "seed"
    assert oa.checked_params(body, {"model", "messages"}, "bedrock", drop_unsupported=True) == {
        "model": "m", "messages": []
    }
    with pytest.raises(InvalidRequest, match="Unrecognized request argument supplied: colour"):
        oa.checked_params({"colour": 1}, {"model"}, "bedrock", drop_unsupported=True)


def test_embedding_list_base64_is_little_endian_float32():
    result = oa.embedding_list([[0.5, -1.0]], "m", 3, "base64")
    raw = base64.b64decode(result["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    assert result["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_merge_embedding_lists_reindexes_and_sums_usage():
    parts = [oa.embedding_list([[1.0]], "titan", 2, "float"), oa.embedding_list([[2.0]], "titan", 3, "float")]
    merged = oa.merge_embedding_lists(parts)
    assert [(d["index"], d["embedding"]) for d in merged["data"]] == [(0, [1.0]), (1, [2.0])]
    assert merged["usage"] == {"prompt_tokens": 5, "total_tokens": 5}


def test_stream_accumulator_rebuilds_content_tool_calls_and_usage():
    acc = oa.StreamAccumulator()
    chunk = oa.chat_chunk("c1", "m", 0, {"role": "assistant", "content": "Hel"})
    acc.feed(oa.sse_event(chunk)[:10])
    acc.feed(oa.sse_event(chunk)[10:])
    acc.feed(oa.sse_event(oa.chat_chunk("c1", "m", 0, {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get", "arguments": '{"a"'}}]})))
    acc.feed(oa.sse_event(oa.chat_chunk("c1", "m", 0, {"tool_calls": [
        {"index": 0, "function": {"arguments": ":1}"}}]}, "tool_calls")))
    acc.feed(oa.sse_event(oa.chat_chunk("c1", "m", 0, None, usage=oa.usage(3, 4))) + oa.SSE_DONE)
    answer = acc.answer()
    assert answer["content"] == "Hel"
    assert answer["tool_calls"] == [{"name": "get", "arguments": '{"a":1}'}]
    assert answer["finish_reason"] == "tool_calls"
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_defaults_clients_send_explicitly_are_not_unsupported_requests():
    body = {"model": "m", "messages": [], "logprobs": False, "n": 1, "presence_penalty": 0.0,
            "frequency_penalty": 0, "logit_bias": {}, "stream": False}
    assert oa.checked_params(body, {"model", "messages"}, "bedrock", drop_unsupported=False) == {
        "model": "m", "messages": []
    }
    with pytest.raises(UnsupportedParameter):
        oa.checked_params({"presence_penalty": 0.5}, {"model"}, "bedrock", drop_unsupported=False)
    with pytest.raises(UnsupportedParameter):
        oa.checked_params({"logprobs": True}, {"model"}, "bedrock", drop_unsupported=False)
