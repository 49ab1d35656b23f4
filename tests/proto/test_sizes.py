"""R2: v2 VoIP signaling frames are smaller than the talk's best sizes; every signal frame is < 500 bytes."""

from __future__ import annotations

import pytest

from imsdk_proto._frame import FrameDecoder, encode_frame
from imsdk_proto.codecs import bson_json
from imsdk_proto.codes import Codec
from imsdk_proto.samples import TALK_SIZES, Sample, voip_call_samples

SAMPLES = voip_call_samples()


def test_all_six_signals_are_sampled() -> None:
    assert [s.name for s in SAMPLES] == list(TALK_SIZES)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_v2_frame_is_smaller_than_the_talks_best(sample: Sample) -> None:
    frame = encode_frame(sample.header, sample.body, Codec.PROTOBUF)
    assert len(frame) < TALK_SIZES[sample.name].best


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_every_signal_frame_is_under_500_bytes(sample: Sample, codec: Codec) -> None:
    assert len(encode_frame(sample.header, sample.body, codec)) < 500


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_v1_and_v2_carry_the_same_information(sample: Sample) -> None:
    decoded = []
    for codec in Codec:
        decoder = FrameDecoder()
        decoder.feed(encode_frame(sample.header, sample.body, codec))
        frame = decoder.next_frame()
        assert frame is not None
        decoded.append((frame.header, frame.body))
    assert decoded[0] == decoded[1] == (sample.header, sample.body)


def test_call_req_is_as_rich_as_the_talks() -> None:
    call_req = SAMPLES[0]
    assert call_req.body is not None
    assert len(bson_json.encode_body(call_req.body)) >= 250  # the talk's JSON body was 299 bytes
    media = call_req.body.media  # type: ignore[attr-defined]
    assert len(media.codecs) == 3
    assert len(media.candidates) == 2
