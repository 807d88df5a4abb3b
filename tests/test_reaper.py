"""The reaper's pass over queued runs, against a real store (SQLite) and a broker it is told the contents of."""

from __future__ import annotations

import pytest

from service.db.store import Store
from service.reaper import Reaper
from service.settings import Settings
from tests.support import STORED as CONFIG


class Broker:
    """What the reaper may send to and count in: messages per queue."""

    def __init__(self) -> None:
        self.messages: dict[str, list[int]] = {}

    def enqueue(self, run_id: int, queue: str) -> None:
        self.messages.setdefault(queue, []).append(run_id)

    def waiting(self, queue: str) -> int:
        return len(self.messages.get(queue, []))


@pytest.fixture
def setup(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'armscope.db'}")
    store.upgrade()
    broker = Broker()
    reaper = Reaper(store, Settings(home=tmp_path, heartbeat_timeout=60), broker.enqueue, waiting=broker.waiting)
    yield store, broker, reaper
    store.dispose()


def submitted(store: Store, broker: Broker, queue: str = "cpu") -> int:
    run_id = store.create_run(CONFIG, queue=queue)["id"]
    broker.enqueue(run_id, queue)
    store.mark_published(run_id)
    return run_id


def test_runs_whose_messages_are_in_the_broker_are_left_alone(setup):
    store, broker, reaper = setup
    ids = [submitted(store, broker) for _ in range(3)]
    for _ in range(3):
        reaper.tick()
    assert broker.messages == {"cpu": ids}


def test_messages_a_broker_restart_forgot_are_sent_again_after_two_ticks(setup):
    store, broker, reaper = setup
    kept, forgotten = submitted(store, broker, "gpu"), submitted(store, broker)
    broker.messages["cpu"].clear()  # the broker restarted without persistence
    reaper.tick()
    assert broker.messages["cpu"] == []  # one short count may be a message in flight to a worker
    reaper.tick()
    assert broker.messages == {"gpu": [kept], "cpu": [forgotten]}
    assert store.events(forgotten)[-1]["kind"] == "republished"
    reaper.tick()
    assert broker.messages == {"gpu": [kept], "cpu": [forgotten]}  # sent once


def test_a_run_a_worker_has_taken_is_not_counted_as_waiting(setup):
    store, broker, reaper = setup
    run_id = submitted(store, broker)
    broker.messages["cpu"].clear()
    store.mark_delivered(run_id, "node-a")
    reaper.tick()
    reaper.tick()
    assert broker.messages["cpu"] == []


def test_two_reapers_that_both_see_the_shortfall_send_the_run_once(setup, tmp_path):
    store, broker, first = setup
    second = Reaper(store, Settings(home=tmp_path, heartbeat_timeout=60), broker.enqueue, waiting=broker.waiting)
    run_id = submitted(store, broker)
    broker.messages["cpu"].clear()
    for reaper in (first, second):
        reaper.find_lost_messages()
    for reaper in (first, second):
        reaper.find_lost_messages()
    for reaper in (first, second):
        reaper.tick()
    assert broker.messages["cpu"] == [run_id]
