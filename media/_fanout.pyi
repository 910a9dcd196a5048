"""Types of the C fan-out (media/_fanout.c)."""

from typing import Any

class Lane:
    ready: int
    packets: int
    octets: int
    wire_packets: int
    wire_bytes: int
    rtp_timestamp: int
    ntp: int
    seq: int
    pid: int
    tl0: int
    def __init__(self, sender: object) -> None: ...
    def configure(self, header: bytes, word_hi: int, /) -> None: ...
    def bind(
        self,
        seq_offset: int,
        ts_offset: int,
        start_seq: int,
        payload_types: bytes,
        pid_offset: int = 0,
        tl0_offset: int = 0,
        /,
    ) -> None: ...
    def adopt(
        self,
        dtls: Any,
        session: Any,
        srtp: int,
        nominated: dict[int, Any],
        pair: Any,
        transport: Any,
        backlog: Any,
        addr: tuple[str, int],
        fd: int,
        host: str,
        port: int,
        /,
    ) -> bool: ...
    def drop(self) -> None: ...

def setup(srtp_protect: int, connected_state: object, /) -> None: ...
def forward(
    lanes: tuple[Lane, ...],
    payload: bytes,
    payload_type: int,
    seq: int,
    ts: int,
    marker: int,
    ext_value: int,
    ntp: int,
    in_order: bool,
    pid_at: int = -1,
    pid_long: bool = False,
    pid: int = 0,
    tl0_at: int = -1,
    tl0: int = 0,
    /,
) -> tuple[int, int, int, list[int] | None]: ...
