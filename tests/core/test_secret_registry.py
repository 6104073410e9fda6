"""The log redaction registry stays bounded: the current and previous credential sets, nothing older.

A proxy refreshing its credentials every hour registers 168 sets a week; before, every one of them stayed in
one ever-growing regex (registration ~230 ms and ~200 µs per redacted line after a week).
"""

from __future__ import annotations

from dataclasses import dataclass

from sigv4_proxy.logs import SecretRegistry, redact, register_credentials, register_secret, secret_registry


@dataclass(frozen=True)
class Creds:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def credential_set(n: int) -> Creds:
    return Creds(f"ASIA{n:016d}", f"secret-{n:06d}-wJalrXUtnFEMI/K7MDENG", f"token-{n:06d}-IQoJb3JpZ2luX2VjEJr//")


def test_a_thousand_refreshes_keep_two_sets() -> None:
    registry = SecretRegistry()
    for n in range(1000):
        registry.register_credentials(credential_set(n))
    assert registry.credential_sets == 2
    assert len(registry.secrets()) == 4  # secret + session token of each (access key ids are masked by pattern)
    latest, previous, first = credential_set(999), credential_set(998), credential_set(0)
    line = " ".join(f"{c.secret_access_key} {c.session_token}" for c in (latest, previous, first))
    masked = registry.mask(line)
    assert masked == f"**** **** **** **** {first.secret_access_key} {first.session_token}"
    # Nothing of the evicted sets is left anywhere in the registry.
    state = repr(vars(registry))
    assert all(f"-{n:06d}-" not in state for n in range(998))
    assert f"-{999:06d}-" in state and f"-{998:06d}-" in state


def test_registering_the_current_set_again_changes_nothing_and_an_old_one_becomes_latest() -> None:
    registry = SecretRegistry()
    a, b, c = credential_set(1), credential_set(2), credential_set(3)
    for creds in (a, b, b, b, a):  # a is current again (e.g. a provider handing out a cached copy)
        registry.register_credentials(creds)
    registry.register_credentials(c)  # evicts b, the least recently registered
    assert registry.mask(f"{a.secret_access_key} {b.secret_access_key} {c.session_token}") == (
        f"**** {b.secret_access_key} ****"
    )


def test_a_set_without_session_token() -> None:
    registry = SecretRegistry()
    registry.register_credentials(Creds("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"))
    assert registry.secrets() == ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",)


def test_register_secret_keeps_its_latest_four_values() -> None:
    registry = SecretRegistry()
    for n in range(1000):
        registry.register_secret(f"loose-secret-{n:06d}")
    registry.register_secret("short")  # under 8 characters: would mask ordinary words
    assert set(registry.secrets()) == {f"loose-secret-{n:06d}" for n in (996, 997, 998, 999)}


def test_a_token_containing_a_secret_is_masked_whole() -> None:
    registry = SecretRegistry()
    registry.register_credentials(Creds("AKIAIOSFODNN7EXAMPLE", "abcdefgh12", "xxabcdefgh12yy-session"))
    assert registry.mask("t=xxabcdefgh12yy-session s=abcdefgh12") == "t=**** s=****"


def test_the_module_functions_use_the_process_registry() -> None:
    for n in range(10):
        register_credentials(credential_set(n))
    assert secret_registry().credential_sets == 2
    latest, old = credential_set(9), credential_set(0)
    assert redact(f"latest {latest.secret_access_key} old {old.secret_access_key}") == (
        f"latest **** old {old.secret_access_key}"
    )
    register_secret("one-off-value-1234")  # the compatible single-value API still redacts
    assert redact("x one-off-value-1234 y") == "x **** y"


def test_the_old_per_value_caller_still_gets_the_current_and_previous_sets() -> None:
    """sigv4_proxy.upstream's SecretRegisteringProvider registers secret and token separately before every request."""
    registry = SecretRegistry()
    for n in range(1000):
        creds = credential_set(n)
        for _ in range(3):
            registry.register_secret(creds.secret_access_key)
            registry.register_secret(creds.session_token)
    expected = {
        value for n in (998, 999) for value in (credential_set(n).secret_access_key, credential_set(n).session_token)
    }
    assert set(registry.secrets()) == expected
