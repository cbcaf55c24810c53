"""Sign-in throttling, the policy alone (the running app is driven in test_hosting_gate.py)."""

from __future__ import annotations

from medcot_ui.hosting.throttle import FORGET_AFTER_S, LONGEST_WAIT_S, LoginThrottle, login_keys


def test_a_guesser_gets_a_few_free_tries_then_waits_twice_as_long_each_time():
    throttle, keys = LoginThrottle(), login_keys("10.0.0.7", "Alice ")
    assert keys == ("client:10.0.0.7|alice", "user:alice")
    assert [throttle.begin(keys, now=0.0) for _ in range(throttle.free_failures)] == [0.0] * throttle.free_failures
    assert throttle.begin(keys, now=0.0) == throttle.first_wait_s  # refused unchecked
    now, waits = 0.0, []
    for _ in range(4):
        now += throttle.begin(keys, now=now)  # wait as long as told, then try (and fail) again
        assert throttle.begin(keys, now=now) == 0.0
        waits.append(throttle.begin(keys, now=now))
    assert waits == [2.0, 4.0, 8.0, 16.0]


def test_the_wait_is_capped_and_forgotten_after_a_quiet_spell():
    throttle, keys = LoginThrottle(), login_keys("10.0.0.7", "alice")
    for step in range(40):
        throttle.begin(keys, now=step * LONGEST_WAIT_S)
    last = 39 * LONGEST_WAIT_S
    assert throttle.begin(keys, now=last + 1) == LONGEST_WAIT_S - 1  # 2 ** 34 s would be centuries
    assert throttle.begin(keys, now=last + FORGET_AFTER_S + 1) == 0.0


def test_the_account_is_protected_from_many_clients_and_one_clients_failures_lock_no_other_account():
    throttle = LoginThrottle()
    for i in range(throttle.free_failures):
        throttle.begin(login_keys(f"10.0.0.{i}", "alice"), now=0.0)
    assert throttle.begin(login_keys("10.0.0.99", "alice"), now=0.0) > 0, "a new client guessing alice waits"
    # Behind a proxy that hides addresses everyone is 10.0.0.1: a guesser there locks only the account guessed.
    for _ in range(3 * throttle.free_failures):
        throttle.begin(login_keys("10.0.0.1", "mallory"), now=0.0)
    assert throttle.begin(login_keys("10.0.0.1", "bob"), now=0.0) == 0.0


def test_a_browser_that_signed_in_before_is_not_kept_waiting_by_someone_guessing_its_account():
    throttle = LoginThrottle()
    for _ in range(3 * throttle.free_failures):
        throttle.begin(login_keys("10.0.0.1", "alice"), now=0.0)
    assert throttle.begin(login_keys("10.0.0.1", "alice"), now=0.0) > 0
    assert throttle.begin(login_keys("10.0.0.1", "alice", known_browser="b1"), now=0.0) == 0.0
    for _ in range(throttle.free_failures):  # that browser's own wrong tries still make it wait
        throttle.begin(login_keys("10.0.0.1", "alice", known_browser="b1"), now=0.0)
    assert throttle.begin(login_keys("10.0.0.1", "alice", known_browser="b1"), now=0.0) > 0


def test_a_success_clears_the_failures_it_was_counted_against():
    throttle, keys = LoginThrottle(), login_keys("10.0.0.7", "alice")
    for _ in range(throttle.free_failures):
        throttle.begin(keys, now=0.0)
    throttle.succeeded(keys)
    assert throttle.begin(keys, now=0.0) == 0.0
