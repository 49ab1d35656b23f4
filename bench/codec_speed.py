"""Encode and decode speed of whole frames, v1 (BSON + JSON) vs v2 (protobuf), on one core.

    python -m bench.codec_speed [--profile]

Decode figures go through the stream decoder (:class:`~imsdk_proto.FrameDecoder`) in 64 KiB reads, as a
server reads a socket, and include decoding the body (``frame.body``) unless the row says "header only"
(what an access server does when it routes a frame and forwards the raw body). Encode figures build the
whole frame from a :class:`~imsdk_proto.Header` and a message with ``encode_frame``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from bench._report import rate, table
from imsdk_proto._frame import FrameDecoder, encode_frame
from imsdk_proto.codes import Codec
from imsdk_proto.samples import Sample, chat_text_sample, voip_call_samples

READ_SIZE = 65536


def _encoder(sample: Sample, codec: Codec):  # type: ignore[no-untyped-def]
    header, body = sample.header, sample.body

    def run(n: int) -> None:
        for _ in range(n):
            encode_frame(header, body, codec)

    return run


def _decoder(sample: Sample, codec: Codec, with_body: bool):  # type: ignore[no-untyped-def]
    frame = encode_frame(sample.header, sample.body, codec)
    per_read = max(1, READ_SIZE // len(frame))
    chunk = frame * per_read

    def run(n: int) -> None:
        decoder = FrameDecoder(codec=codec)
        feed = decoder.feed
        next_frame = decoder.next_frame
        for _ in range(n):
            feed(chunk)
            while (f := next_frame()) is not None:
                if with_body:
                    _ = f.body

    return run, per_read


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", action="store_true", help="profile v2 chat decoding and encoding")
    args = parser.parse_args(argv)
    chat = chat_text_sample()
    call_req = voip_call_samples()[0]
    if args.profile:
        dec, per = _decoder(chat, Codec.PROTOBUF, True)
        enc = _encoder(chat, Codec.PROTOBUF)
        profiler = cProfile.Profile()
        profiler.enable()
        dec(200)
        enc(per * 200)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return
    rows = []
    figures: dict[tuple[str, Codec, str], float] = {}
    for sample in (chat, call_req):
        for codec in Codec:
            size = len(encode_frame(sample.header, sample.body, codec))
            enc = rate(_encoder(sample, codec))
            dec_fn, per = _decoder(sample, codec, True)
            dec = rate(dec_fn, items_per_call=per)
            hdr_fn, per = _decoder(sample, codec, False)
            hdr = rate(hdr_fn, items_per_call=per)
            figures[(sample.name, codec, "enc")] = enc
            figures[(sample.name, codec, "dec")] = dec
            label = "v1 BSON+JSON" if codec is Codec.BSON_JSON else "v2 protobuf"
            rows.append([sample.name, label, size, f"{enc:,.0f}", f"{dec:,.0f}", f"{hdr:,.0f}"])
    print("frames per second of CPU time, one core (best of 7 runs)")
    print(
        table(
            ["message", "codec", "frame bytes", "encode", "decode (with body)", "decode (header only)"],
            rows,
        )
    )
    enc = figures[("chat_text", Codec.PROTOBUF, "enc")]
    dec = figures[("chat_text", Codec.PROTOBUF, "dec")]
    print(f"codec v2: encode {enc:,.0f} frames/s, decode {dec:,.0f} frames/s")


if __name__ == "__main__":
    main()
