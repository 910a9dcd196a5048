"""The server forwards media without ever decoding or encoding it.

aiortc's decoder threads and encoders are instrumented process-wide (clients and server share the
process), and each one started is attributed to the receiver or sender that started it. The
clients' own decoders and encoders must show up, proving the instrumentation sees them; the
server's must not exist.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender

from media.forwarding import ForwardingStats
from tests.media.peers import Subscriber, start_publisher, start_subscriber, wait_for

pytestmark = pytest.mark.timeout(60)


class Codecs:
    """Which receivers started a decoder thread, and which senders asked for an encoder."""

    def __init__(self) -> None:
        self.decoding_queues: list[object] = []
        self.decoder_threads: list[threading.Thread] = []
        self.encoding_senders: list[object] = []


@pytest.fixture
def codecs(monkeypatch: pytest.MonkeyPatch) -> Codecs:
    record = Codecs()
    decoder_worker: Callable[..., None] = aiortc.rtcrtpreceiver.decoder_worker
    get_encoder: Callable[..., Any] = aiortc.rtcrtpsender.get_encoder

    def recording_decoder_worker(loop: Any, input_q: Any, output_q: Any, *args: Any) -> None:
        # output_q is the queue of the receiver's track: it names the receiver.
        record.decoding_queues.append(output_q)
        record.decoder_threads.append(threading.current_thread())
        decoder_worker(loop, input_q, output_q, *args)

    def recording_get_encoder(codec: Any) -> Any:
        # Called from RTCRtpSender._next_encoded_frame: the caller's `self` is the sender.
        record.encoding_senders.append(sys._getframe(1).f_locals.get("self"))
        return get_encoder(codec)

    monkeypatch.setattr(aiortc.rtcrtpreceiver, "decoder_worker", recording_decoder_worker)
    monkeypatch.setattr(aiortc.rtcrtpsender, "get_encoder", recording_get_encoder)
    return record


def track_queue(receiver: RTCRtpReceiver) -> object:
    return receiver._track._queue  # type: ignore[union-attr]


async def test_server_neither_decodes_nor_encodes_while_subscribers_decode(
    codecs: Codecs,
) -> None:
    stats = ForwardingStats()
    publisher = await start_publisher(stats)
    subscribers: list[Subscriber] = []
    try:
        for _ in range(2):

            def attach(subscriber: Subscriber) -> None:
                publisher.video.add_subscriber(subscriber.video.sender)
                publisher.audio.add_subscriber(subscriber.audio.sender)

            subscribers.append(await start_subscriber(attach))
        for subscriber in subscribers:
            await wait_for(lambda s=subscriber: len(s.frames) >= 30, 15, "decoded video")
            await wait_for(lambda s=subscriber: s.audio_frames >= 10, 15, "decoded audio")

        server_receivers = [t.receiver for t in publisher.server.getTransceivers()]
        server_senders = [t.sender for s in subscribers for t in s.server.getTransceivers()]
        client_receivers = [t.receiver for s in subscribers for t in s.client.getTransceivers()]
        client_senders = [t.sender for t in publisher.client.getTransceivers()]

        # The instrumentation sees the clients' codecs...
        for receiver in client_receivers:
            assert track_queue(receiver) in codecs.decoding_queues
        for sender in client_senders:
            assert sender in codecs.encoding_senders
        # ...and none on the server.
        for receiver in server_receivers:
            assert track_queue(receiver) not in codecs.decoding_queues
            assert _private(receiver, "decoder_thread") is None
            # Not even the jitter buffer ran: packets went straight to the subscribers.
            assert _private(receiver, "jitter_buffer")._origin is None
        for sender in server_senders:
            assert sender not in codecs.encoding_senders
            assert _private(sender, "encoder") is None
        assert len(codecs.decoder_threads) == len(client_receivers) == 4
        assert stats.packets_forwarded > 0
    finally:
        for subscriber in subscribers:
            await subscriber.close()
        await publisher.close()


def _private(thing: RTCRtpReceiver | RTCRtpSender, name: str) -> Any:
    return getattr(thing, f"_{type(thing).__name__}__{name}")
