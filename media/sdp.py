"""SDP as the rooms need it: refuse garbage early, and keep one RTP header extension ID map.

aiortc builds every offer with its own extension IDs; a bundled transport parses all incoming RTP
with one map, so every server offer must reuse the IDs the client chose (see
:func:`use_extension_ids`).
"""

from __future__ import annotations

import re

from aiortc import RTCPeerConnection, RTCRtpHeaderExtensionParameters
from aiortc.sdp import SessionDescription

from media.errors import ProtocolError


def parse_sdp(sdp: str, kind: str) -> SessionDescription:
    """Parse ``sdp`` far enough to refuse garbage with ``bad_sdp`` before aiortc touches it."""
    if not sdp.startswith("v=0"):
        raise ProtocolError("bad_sdp", f"The {kind} is not SDP (it must start with 'v=0').")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the bad line provokes
        raise ProtocolError("bad_sdp", f"The {kind} SDP could not be parsed: {exc}.") from exc
    if not any(media.kind in ("audio", "video") for media in description.media):
        raise ProtocolError("bad_sdp", f"The {kind} SDP has no audio or video section.")
    return description


_EXTMAP = re.compile(r"^a=extmap:(\d+)(/\w+)? (\S+)(.*)$")


def extension_ids(description: SessionDescription) -> dict[str, int]:
    """The RTP header extension IDs a client chose in its offer, by URI."""
    ids: dict[str, int] = {}
    for media in description.media:
        for extension in media.rtp.headerExtensions:
            ids.setdefault(extension.uri, extension.id)
    return ids


def keep_extension_ids(pc: RTCPeerConnection, ids: dict[str, int]) -> None:
    """Undo aiortc's reset of every transceiver's header extension IDs in ``createOffer``.

    aiortc reads these (private) lists when a sender or receiver starts, which for a new
    connection happens after DTLS connects, possibly before the client answers this offer.
    """
    for transceiver in pc.getTransceivers():
        transceiver._headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=ids[extension.uri], uri=extension.uri)
            for extension in transceiver._headerExtensions
            if extension.uri in ids
        ]


def use_extension_ids(sdp: str, ids: dict[str, int]) -> str:
    """Rewrite a server offer's ``a=extmap`` lines to the IDs the client chose; drop the others.

    aiortc builds every offer with its own default IDs (mid=1, audio level=2, abs-send-time=3),
    which clash with a browser's (Chromium: audio level=1, abs-send-time=2, mid=4). The bundled
    transport parses all incoming RTP with one ID map, so mixed IDs make it misread the
    publisher's packets (and die on the first unparsable one). Keeping the client's IDs for every
    m-line keeps the map one and the same; extensions the client did not offer are left out.
    """
    lines = []
    for line in sdp.split("\r\n"):
        match = _EXTMAP.match(line)
        if match is not None:
            direction, uri, rest = match.group(2) or "", match.group(3), match.group(4)
            if uri not in ids:
                continue
            line = f"a=extmap:{ids[uri]}{direction} {uri}{rest}"
        lines.append(line)
    return "\r\n".join(lines)
