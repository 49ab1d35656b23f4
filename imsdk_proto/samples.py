"""Realistic sample frames: the six VoIP signals of one audio call, and a chat text message.

Tests assert R2 (every signal frame smaller than the talk's best size, all under 500 bytes) on these very
frames, the benchmarks measure them, and the docs quote them, so they carry what a real call carries:
13-digit phone-number uids, device ids, a random 64-bit call id and message ids, millisecond timestamps, and
an SDP-like media description with three codecs, an RTP address and two ICE-style candidates.

Headers are as they travel in the signal's direction: upstream frames (client → access server) name the
receiver and leave the sender to the access server, which knows the authenticated session; downstream
frames (access server → client) name the sender and leave out the receiver, which is the connection itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from google.protobuf.message import Message

from imsdk_proto._header import Header
from imsdk_proto.codes import Biz, ChatFunc, Flags, VoipFunc
from imsdk_proto.messages import (
    AudioCodec,
    ByeReason,
    ByeRequest,
    CallAck,
    CallMedia,
    CallRequest,
    CallResponse,
    Candidate,
    CandidateType,
    ChatText,
    MediaDescription,
    RingResponse,
)

__all__ = ["TALK_SIZES", "Sample", "chat_text_sample", "voip_call_samples"]

CALLER = "8613800138000"
CALLER_DEVICE = "A7F3C92E1B"
CALLEE = "8613900139000"
CALLEE_DEVICE = "I4D2B81F0C"
CALL_ID = 0x9E3779B97F4A7C15
T0 = 1_718_000_000_123


@dataclass(frozen=True)
class TalkSize:
    """The talk's measured sizes of one signal (SPEC §1): current whole size and best whole size."""

    direction: str
    current: int
    best: int
    header_bson: int
    body_json: int


#: The talk's figures per signal name.
TALK_SIZES: dict[str, TalkSize] = {
    "Call_req": TalkSize("up", 357, 142, 54, 299),
    "Call_req_ack": TalkSize("down", 122, 43, 118, 0),
    "Ring_rsp": TalkSize("down", 239, 127, 118, 117),
    "Call_rsp": TalkSize("down", 251, 136, 118, 129),
    "Call_ack": TalkSize("up", 126, 76, 64, 58),
    "Bye_req": TalkSize("up", 112, 65, 64, 44),
}


@dataclass(frozen=True)
class Sample:
    """A named header + body pair (``body`` is ``None`` for codes without body)."""

    name: str
    header: Header
    body: Message | None


def _ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _media(
    rtp_ip: str, rtp_port: int, host: str, srflx: str, srflx_port: int, ufrag: str
) -> MediaDescription:
    return MediaDescription(
        codecs=[AudioCodec.AUDIO_CODEC_OPUS, AudioCodec.AUDIO_CODEC_AMR_WB, AudioCodec.AUDIO_CODEC_PCMA],
        ipv4=_ip(rtp_ip),
        port=rtp_port,
        candidates=[
            Candidate(type=CandidateType.CANDIDATE_TYPE_HOST, ipv4=_ip(host), port=rtp_port),
            Candidate(type=CandidateType.CANDIDATE_TYPE_SRFLX, ipv4=_ip(srflx), port=srflx_port),
        ],
        ice_ufrag=ufrag,
    )


def voip_call_samples() -> list[Sample]:
    """The six signals of one audio call, in the order they are sent."""
    voip = Biz.VOIP
    return [
        Sample(
            "Call_req",
            Header(voip, VoipFunc.CALL_REQ, seq=1042, msg_id=0xC3A5C85C97CB3127, receiver_uid=CALLEE),
            CallRequest(
                call_id=CALL_ID,
                caller=CALLER,
                callee=CALLEE,
                caller_device=CALLER_DEVICE,
                media_type=CallMedia.CALL_MEDIA_AUDIO,
                created_at_ms=T0,
                media=_media("10.23.45.67", 40012, "192.168.1.23", "117.136.12.34", 51234, "x9Kq"),
            ),
        ),
        Sample(
            "Call_req_ack",
            Header(voip, VoipFunc.CALL_REQ_ACK, seq=1042, msg_id=0xC3A5C85C97CB3127, flags=Flags.RESPONSE),
            None,
        ),
        Sample(
            "Ring_rsp",
            Header(
                voip,
                VoipFunc.RING_RSP,
                seq=88,
                msg_id=0xB492B66FBE98F273,
                sender_uid=CALLEE,
                sender_device=CALLEE_DEVICE,
            ),
            RingResponse(call_id=CALL_ID, callee_device=CALLEE_DEVICE, time_ms=T0 + 412),
        ),
        Sample(
            "Call_rsp",
            Header(
                voip,
                VoipFunc.CALL_RSP,
                seq=89,
                msg_id=0x9AE16A3B2F90404F,
                sender_uid=CALLEE,
                sender_device=CALLEE_DEVICE,
            ),
            CallResponse(
                call_id=CALL_ID,
                callee_device=CALLEE_DEVICE,
                time_ms=T0 + 6_230,
                media=_media("10.88.1.9", 41000, "10.88.1.9", "223.104.3.77", 60102, "Zr7b"),
            ),
        ),
        Sample(
            "Call_ack",
            Header(
                voip,
                VoipFunc.CALL_ACK,
                seq=1043,
                msg_id=0xCBF29CE484222325,
                receiver_uid=CALLEE,
                receiver_device=CALLEE_DEVICE,
            ),
            CallAck(call_id=CALL_ID, time_ms=T0 + 6_301),
        ),
        Sample(
            "Bye_req",
            Header(
                voip,
                VoipFunc.BYE_REQ,
                seq=1044,
                msg_id=0x84222325CBF29CE4,
                receiver_uid=CALLEE,
                receiver_device=CALLEE_DEVICE,
            ),
            ByeRequest(call_id=CALL_ID, reason=ByeReason.BYE_REASON_HANGUP, time_ms=T0 + 187_512),
        ),
    ]


def chat_text_sample() -> Sample:
    """A short upstream chat text message."""
    return Sample(
        "chat_text",
        Header(
            Biz.CHAT,
            ChatFunc.TEXT,
            seq=2001,
            msg_id=0x2545F4914F6CDD1D,
            flags=Flags.ACK_WANTED,
            receiver_uid=CALLEE,
        ),
        ChatText(text="Running ten minutes late, order me a coffee please"),
    )
