"""The forwarder's record of a publisher's missing packets: ask at once, again, then give up."""

from __future__ import annotations

from media.nacks import MAX_TRIES, RETRY_SECONDS, WINDOW, MissingPackets


def test_a_gap_is_asked_for_at_once_and_again_until_it_arrives() -> None:
    missing = MissingPackets()
    assert not missing.add(10)
    assert missing.add(13)
    assert missing.due(0.0) == [11, 12]
    assert missing.due(RETRY_SECONDS / 2) == [], "not again before the retry interval"
    missing.add(11)  # a retransmission arrives
    assert missing.due(RETRY_SECONDS) == [12]
    missing.add(12)
    assert not missing and missing.due(1.0) == []
    assert missing.take_given_up() == 0


def test_a_packet_is_given_up_after_the_last_try() -> None:
    missing = MissingPackets()
    missing.add(1)
    missing.add(3)
    now = 0.0
    for _ in range(MAX_TRIES):
        assert missing.due(now) == [2]
        now += RETRY_SECONDS
    assert missing.due(now) == []
    assert not missing
    assert missing.take_given_up() == 1
    assert missing.take_given_up() == 0, "counted once"


def test_sequence_numbers_wrap_around() -> None:
    missing = MissingPackets()
    missing.add(65534)
    assert missing.add(1)
    assert sorted(missing.due(0.0)) == [0, 65535]
    missing.add(65535)  # arrives late (a retransmission): its hole is filled
    assert missing.missing == {0}


def test_packets_beyond_the_publishers_history_are_given_up() -> None:
    missing = MissingPackets()
    missing.add(100)
    missing.add(102)  # 101 missing
    missing.add(102 + WINDOW + 5)  # 101 is now too old to be resent; the new gap is asked for
    assert 101 not in missing.missing
    assert missing.take_given_up() >= 1
    assert len(missing.missing) <= WINDOW


def test_old_and_duplicate_packets_change_nothing() -> None:
    missing = MissingPackets()
    missing.add(50)
    assert not missing.add(50)
    assert not missing.add(40)
    assert not missing
