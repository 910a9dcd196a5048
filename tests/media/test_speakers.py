"""Who is the speaker: loudness windows in, a speaker that does not flicker out."""

from media.speakers import HYSTERESIS, SPEAKING_LOUDNESS, SWITCH_WINDOWS, ActiveSpeaker

LOUD, LOUDER, QUIET = SPEAKING_LOUDNESS + 10, SPEAKING_LOUDNESS + 30, SPEAKING_LOUDNESS - 30


def test_someone_becomes_the_speaker_after_leading_for_a_few_windows_and_stays_in_silence() -> None:
    speakers = ActiveSpeaker()
    assert speakers.update({"ann": LOUD, "bo": QUIET}) is True  # ann speaking, not yet speaker
    assert (speakers.speaker, speakers.speaking) == (None, frozenset({"ann"}))
    for _ in range(SWITCH_WINDOWS - 1):
        speakers.update({"ann": LOUD, "bo": QUIET})
    assert speakers.speaker == "ann"
    # Silence: nobody is speaking, but ann stays the speaker (no flicker between sentences).
    assert speakers.update({"ann": QUIET, "bo": QUIET}) is True
    assert (speakers.speaker, speakers.speaking) == ("ann", frozenset())
    assert speakers.update({"ann": QUIET, "bo": QUIET}) is False  # nothing new to tell


def test_one_loud_window_from_someone_else_does_not_take_the_speaker_over() -> None:
    speakers = ActiveSpeaker(speaker="ann")
    speakers.update({"ann": LOUD, "bo": LOUDER})  # a cough
    speakers.update({"ann": LOUD, "bo": QUIET})
    assert speakers.speaker == "ann"
    for _ in range(SWITCH_WINDOWS):
        speakers.update({"ann": LOUD, "bo": LOUDER})
    assert speakers.speaker == "bo"


def test_the_speaker_leaving_clears_it() -> None:
    speakers = ActiveSpeaker(speaker="ann", speaking=frozenset({"ann", "bo"}))
    assert speakers.forget("ann") is True
    assert (speakers.speaker, speakers.speaking) == (None, frozenset({"bo"}))
    assert speakers.forget("cy") is False


def test_a_voice_hovering_at_the_threshold_does_not_flicker() -> None:
    speakers = ActiveSpeaker()
    speakers.update({"ann": SPEAKING_LOUDNESS + 1})
    assert speakers.speaking == {"ann"}
    changes = [
        speakers.update({"ann": loud})
        for loud in (SPEAKING_LOUDNESS - 2, SPEAKING_LOUDNESS + 2, SPEAKING_LOUDNESS - 5)
    ]
    assert speakers.speaking == {"ann"} and changes[1:] == [False, False]
    speakers.update({"ann": SPEAKING_LOUDNESS - HYSTERESIS - 1})
    assert speakers.speaking == frozenset()
