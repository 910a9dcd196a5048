"""Join links are signed, bound to one huddle, and expire."""

import pytest

from media import tokens

SECRET = b"s3cret"


def test_a_fresh_token_admits_its_holder() -> None:
    token = tokens.issue(SECRET, "abc234", expires_at=2000)
    claims = tokens.verify(SECRET, token, "abc234", now=1000)
    assert claims.huddle_id == "abc234"
    assert claims.expires_at == 2000


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "not valid"),
        (lambda t: "x" + t, "not valid"),
        (lambda t: t.split(".")[0], "incomplete"),
        (lambda t: "", "incomplete"),
        (lambda t: t + ".extra", "incomplete"),
        (lambda t: "!!!." + t.split(".")[1], "incomplete"),
        (lambda t: "a" * 600, "incomplete"),
    ],
)
def test_tampered_tokens_are_refused(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    token = tokens.issue(SECRET, "abc234", expires_at=2000)
    with pytest.raises(tokens.TokenError, match=reason):
        tokens.verify(SECRET, mutate(token), "abc234", now=1000)


def test_another_secret_is_refused() -> None:
    token = tokens.issue(b"other", "abc234", expires_at=2000)
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.verify(SECRET, token, "abc234", now=1000)


def test_expired_token_is_refused() -> None:
    token = tokens.issue(SECRET, "abc234", expires_at=2000)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SECRET, token, "abc234", now=2000)


def test_token_for_another_huddle_is_refused() -> None:
    token = tokens.issue(SECRET, "abc234", expires_at=2000)
    with pytest.raises(tokens.TokenError, match="different huddle"):
        tokens.verify(SECRET, token, "zzz999", now=1000)


def test_a_host_link_says_host_and_the_card_link_participant() -> None:
    host = tokens.verify(SECRET, tokens.issue(SECRET, "abc234", 2000, "host"), "abc234", now=1)
    card = tokens.verify(SECRET, tokens.issue(SECRET, "abc234", 2000), "abc234", now=1)
    guest = tokens.verify(SECRET, tokens.issue(SECRET, "abc234", 2000, "guest"), "abc234", now=1)
    assert (host.role, card.role, guest.role) == ("host", "participant", "guest")


def test_a_participant_cannot_make_their_link_a_host_link() -> None:
    # Appending "|host" to the payload breaks the signature; a made-up role is refused even
    # when signed (a link from a newer server version, say).
    body, signature = tokens.issue(SECRET, "abc234", 2000).split(".")
    payload = tokens._unb64(body) + b"|host"
    forged = f"{tokens._b64(payload)}.{signature}"
    with pytest.raises(tokens.TokenError, match="not valid"):
        tokens.verify(SECRET, forged, "abc234", now=1)
    odd = b"abc234|2000|owner"
    signed = f"{tokens._b64(odd)}.{tokens._b64(tokens._mac(SECRET, odd))}"
    with pytest.raises(tokens.TokenError, match="incomplete"):
        tokens.verify(SECRET, signed, "abc234", now=1)
