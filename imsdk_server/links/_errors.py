"""The link error tree. Every error carries the wire :class:`~imsdk_proto.codes.ErrorCode` it maps to.

::

    LinkError                    .code: ErrorCode
    ├── LinkNotReady             LINK_NOT_READY      local traffic on a link that is not ready (nothing sent)
    ├── LinkBusy                 SLOW_CONSUMER       send_nowait found the send buffer full (nothing sent)
    ├── LinkClosed               the close reason    the link is closed (nothing sent)
    │   └── LinkRejected         FORBIDDEN           the link closed because a hello failed validation
    └── IllegalTransition        UNEXPECTED_MESSAGE  a (state, event) pair absent from a state table

The peer breaking the link protocol is not raised: the core turns it into a close with
``UNEXPECTED_MESSAGE``, and codec errors (:class:`imsdk_proto.errors.ProtocolError`) from the frame decoder
close the link with their own code. No name here shadows a built-in exception.
"""

from __future__ import annotations

from imsdk_proto.codes import ErrorCode
from imsdk_proto.errors import CodedError

__all__ = [
    "IllegalTransition",
    "LinkBusy",
    "LinkClosed",
    "LinkError",
    "LinkNotReady",
    "LinkRejected",
]


class LinkError(CodedError):
    """Base of every link error; :attr:`code` is the wire error code it maps to."""


class LinkNotReady(LinkError):
    """Traffic was offered on a link that is not (or no longer) ready; the frame was not sent."""

    code = ErrorCode.LINK_NOT_READY


class LinkBusy(LinkError):
    """The link's send buffer is full; the frame was not sent. ``send`` would have waited."""

    code = ErrorCode.SLOW_CONSUMER


class LinkClosed(LinkError):
    """The link is closed; :attr:`code` is the reason it closed with. The frame was not sent."""

    code = ErrorCode.LINK_NOT_READY


class IllegalTransition(LinkError):
    """A ``(state, event)`` pair that a state table does not allow."""

    code = ErrorCode.UNEXPECTED_MESSAGE


class LinkRejected(LinkClosed):
    """The link closed because a hello (ours or the peer's) failed validation: role, server id, domain."""

    code = ErrorCode.FORBIDDEN
