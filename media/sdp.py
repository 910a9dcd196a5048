"""SDP as the rooms need it: refuse garbage early, and keep one RTP header extension ID map.

aiortc builds every offer with its own extension IDs; a bundled transport parses all incoming RTP
with one map, so every server offer must reuse the IDs the client chose (see
:func:`use_extension_ids`).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from aiortc import RTCPeerConnection, RTCRtpHeaderExtensionParameters
from aiortc.sdp import SessionDescription

from media.errors import ProtocolError

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"


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


def keep_extension_ids(
    pc: RTCPeerConnection, ids: dict[str, int], simulcast: Collection[str] = ()
) -> None:
    """Undo aiortc's reset of every transceiver's header extension IDs in ``createOffer``.

    aiortc reads these (private) lists when a sender or receiver starts, which for a new
    connection happens after DTLS connects, possibly before the client answers this offer.
    The sections whose mid is in ``simulcast`` keep the rid extensions aiortc does not know.
    """
    for transceiver in pc.getTransceivers():
        uris = [extension.uri for extension in transceiver._headerExtensions]
        if transceiver.mid in simulcast:
            uris += [uri for uri in (RID_URI, REPAIRED_RID_URI) if uri not in uris]
        transceiver._headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=ids[uri], uri=uri) for uri in uris if uri in ids
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


_RID_SEND = re.compile(r"^a=rid:([A-Za-z0-9_-]{1,16}) send\b")
_SIMULCAST_SEND = re.compile(r"^a=simulcast:send (\S+)$")
#: The most layers a publisher may offer (Chromium sends three).
MAX_LAYERS = 4


def simulcast_layers(sdp: str) -> dict[str, list[str]]:
    """The rid simulcast a client's offer asks to send, by mid: the layers as listed in its
    ``a=simulcast:send`` line (alternatives and paused layers left out), each one a declared
    ``a=rid``. Sections without simulcast are not in the result."""
    found: dict[str, list[str]] = {}
    mid: str | None = None
    rids: set[str] = set()
    order: list[str] = []

    def close() -> None:
        layers = [rid for rid in order if rid in rids]
        if mid is not None and len(layers) >= 2:
            found[mid] = layers[:MAX_LAYERS]

    for line in sdp.splitlines():
        if line.startswith("m="):
            close()
            mid, rids, order = None, set(), []
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :].strip()
        elif (match := _RID_SEND.match(line)) is not None:
            rids.add(match.group(1))
        elif (match := _SIMULCAST_SEND.match(line)) is not None:
            order = [choice.split(",")[0] for choice in match.group(1).split(";")]
            order = [rid for rid in order if not rid.startswith("~")]
    close()
    return found


def with_simulcast(
    sdp: str,
    layers: dict[str, list[str]],
    ids: dict[str, int],
    *,
    active: Collection[str] | None = None,
    start_kbps: int = 1000,
) -> str:
    """A server answer or offer that takes the client's rid simulcast (``layers`` by mid).

    aiortc writes neither ``a=rid`` nor ``a=simulcast``; without them Chromium sends only its
    first layer (``../shared/research/simulcast.md`` section 1). Each such section gets the rid
    and repaired-rid extensions at the client's IDs (if aiortc left them out), a ``recv`` rid per
    layer and the ``a=simulcast:recv`` line, and its VP8 a start bitrate (Chromium otherwise
    waits ~18 s to send the largest layer). Layers not in ``active`` (when given) are marked
    paused (``~``): Chromium sets its encodings' ``active`` from that line on every description
    it applies, so it must say what the ``layers`` message said.
    """
    out: list[str] = []
    section: list[str] = []

    def flush() -> None:
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        if mid not in layers:
            out.extend(section)
            return
        rids = layers[mid]
        added = []
        for uri in (RID_URI, REPAIRED_RID_URI):
            if uri in ids and not any(line.endswith(f" {uri}") for line in section):
                added.append(f"a=extmap:{ids[uri]} {uri}")
        added += [f"a=rid:{rid} recv" for rid in rids]
        shown = [rid if active is None or rid in active else f"~{rid}" for rid in rids]
        added.append(f"a=simulcast:recv {';'.join(shown)}")
        vp8 = [
            line.split()[0][len("a=rtpmap:") :]
            for line in section
            if line.startswith("a=rtpmap:") and line.lower().split()[1].startswith("vp8/")
        ]
        for line in section:
            if line.startswith("a=fmtp:") and line.split()[0][len("a=fmtp:") :] in vp8:
                line += f";x-google-start-bitrate={start_kbps}"
                vp8.remove(line.split()[0][len("a=fmtp:") :])
            out.append(line)
            if line.startswith("a=mid:"):
                out.extend(added)
        out.extend(f"a=fmtp:{pt} x-google-start-bitrate={start_kbps}" for pt in vp8)

    lines = sdp.split("\r\n")
    ending = lines[-1] == ""
    for line in lines[:-1] if ending else lines:
        if line.startswith("m="):
            flush()
            section = []
        section.append(line)
    flush()
    return "\r\n".join(out) + ("\r\n" if ending else "")
