"""Frame sizes of the six VoIP signals, v1 (BSON header + JSON body) and v2 (protobuf), beside the talk's.

    python -m bench.codec_sizes

The frames are :mod:`imsdk_proto.samples` (one realistic audio call), encoded for real.
"""

from __future__ import annotations

from bench._report import table
from imsdk_proto._frame import encode_frame
from imsdk_proto.codecs import bson_json, protobuf
from imsdk_proto.codes import Codec
from imsdk_proto.samples import TALK_SIZES, voip_call_samples


def main() -> None:
    rows = []
    smaller = 0
    largest = 0
    for sample in voip_call_samples():
        talk = TALK_SIZES[sample.name]
        v1_header = len(bson_json.encode_header(sample.header))
        v1_body = 0 if sample.body is None else len(bson_json.encode_body(sample.body))
        v2_header = len(protobuf.encode_header(sample.header))
        v2_body = 0 if sample.body is None else len(protobuf.encode_body(sample.body))
        v1_frame = len(encode_frame(sample.header, sample.body, Codec.BSON_JSON))
        v2_frame = len(encode_frame(sample.header, sample.body, Codec.PROTOBUF))
        largest = max(largest, v1_frame, v2_frame)
        if v2_frame < talk.best:
            smaller += 1
        rows.append(
            [
                sample.name,
                talk.direction,
                talk.header_bson,
                talk.body_json,
                talk.current,
                talk.best,
                v1_header,
                v1_body,
                v1_frame,
                v2_header,
                v2_body,
                v2_frame,
                f"{100 * (1 - v2_frame / talk.best):.1f}%",
            ]
        )
    print("VoIP signaling frame sizes in bytes (talk = SPEC §1; ours = real encoded frames)")
    print(
        table(
            [
                "signal",
                "dir",
                "talk hdr BSON",
                "talk body JSON",
                "talk current",
                "talk best",
                "v1 hdr",
                "v1 body",
                "v1 frame",
                "v2 hdr",
                "v2 body",
                "v2 frame",
                "v2 vs best",
            ],
            rows,
        )
    )
    print("frame = 3-4 byte preamble + header + body; 'v2 vs best' = how much smaller than the talk's best")
    print(f"signal frames: max {largest} bytes, smaller than the talk's best: {smaller}/6")


if __name__ == "__main__":
    main()
