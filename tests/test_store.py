"""The store, on SQLite and on the local PostgreSQL (every test runs on both)."""

import base64
import json
import threading

import pytest

from service.db.store import BadCursor, IllegalTransition, LostOwnership, RunNotFound


def config(method="arm", seed=0, tags=(), epochs=3, name=None):
    return {"method": method, "dataset": "synthetic-shift", "seed": seed, "epochs": epochs,
            "tags": list(tags), "name": name}


def test_a_new_run_is_queued_with_its_config(store):
    run = store.create_run(config(tags=["a"]), queue="cpu")
    assert run["status"] == "queued" and run["config"]["method"] == "arm"
    assert store.get_run(run["id"])["tags"] == ["a"]


def test_an_unknown_run_is_not_found(store):
    with pytest.raises(RunNotFound):
        store.get_run(12345)


def test_only_one_worker_can_claim_a_run(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    results = []
    barrier = threading.Barrier(8)

    def claim(i):
        barrier.wait()
        results.append(store.claim_run(run_id, f"worker-{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert store.get_run(run_id)["attempt"] == 1


def test_an_epoch_is_never_stored_twice(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    assert store.add_epoch(run_id, {"epoch": 1, "val_acc": 0.5}) is True
    assert store.add_epoch(run_id, {"epoch": 1, "val_acc": 0.9}) is False
    assert store.metrics(run_id) == [{"epoch": 1, "val_acc": 0.5}]


def test_epochs_update_the_run_summary(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.add_epoch(run_id, {"epoch": 1, "val_acc": 0.7, "dominant": "audio"})
    store.add_epoch(run_id, {"epoch": 2, "val_acc": 0.6, "dominant": "visual"})
    run = store.get_run(run_id)
    assert (run["best_val_acc"], run["last_val_acc"], run["dominant"]) == (0.7, 0.6, "visual")
    assert run["progress"]["epoch"] == 2


def test_metrics_can_be_filtered_by_key_and_polled_by_epoch(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    for e in (1, 2, 3):
        store.add_epoch(run_id, {"epoch": e, "val_acc": e / 10, "train_loss": 1.0})
    assert store.metrics(run_id, keys=["val_acc"], since_epoch=1) == [
        {"epoch": 2, "val_acc": 0.2}, {"epoch": 3, "val_acc": 0.3}]


def test_cancelling_a_queued_run_ends_it_at_once(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    assert store.cancel_run(run_id)["status"] == "cancelled"
    assert store.claim_run(run_id, "w") is False


def test_cancelling_a_running_run_asks_its_worker_to_stop(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    assert store.heartbeat(run_id, "w") is False
    assert store.cancel_run(run_id)["cancel_requested"] is True
    assert store.heartbeat(run_id, "w") is True
    assert store.finish_run(run_id, "w", "cancelled")
    assert store.get_run(run_id)["status"] == "cancelled"


def test_finished_runs_cannot_be_cancelled(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    store.finish_run(run_id, "w", "succeeded")
    with pytest.raises(IllegalTransition, match="succeeded"):
        store.cancel_run(run_id)


def test_only_failed_or_cancelled_runs_can_be_retried(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    with pytest.raises(IllegalTransition, match="queued"):
        store.retry_run(run_id)
    store.claim_run(run_id, "w")
    store.finish_run(run_id, "w", "failed", "boom")
    retried = store.retry_run(run_id)
    assert retried["status"] == "queued" and retried["error"] is None
    assert store.claim_run(run_id, "w2") and store.get_run(run_id)["attempt"] == 2


def test_a_worker_that_lost_its_run_is_told_so(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    with pytest.raises(LostOwnership):
        store.heartbeat(run_id, "someone-else")
    assert store.finish_run(run_id, "someone-else", "succeeded") is False


def test_heartbeat_records_progress(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    store.heartbeat(run_id, "w", {"step": 5, "total_steps": 20})
    progress = store.get_run(run_id)["progress"]
    assert (progress["step"], progress["total_steps"], progress["fraction"]) == (5, 20, 0.25)
    assert progress["eta_seconds"] is not None


def test_a_method_pass_in_progress_is_shown_until_the_run_ends(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    store.heartbeat(run_id, "w", {"step": 0, "total_steps": 20, "phase": "prototypes 3/9"})
    assert store.get_run(run_id)["progress"]["phase"] == "prototypes 3/9"
    store.finish_run(run_id, "w", "succeeded")
    assert store.get_run(run_id)["progress"]["phase"] is None


def test_discard_after_forgets_a_crashed_attempts_later_epochs_and_events(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    for e in (1, 2, 3):
        store.add_epoch(run_id, {"epoch": e, "val_acc": 0.1})
        store.add_event(run_id, {"epoch": e, "step": e, "kind": "k", "message": "m"})
    store.discard_after(run_id, 1)
    assert [r["epoch"] for r in store.metrics(run_id)] == [1]
    assert [e["epoch"] for e in store.events(run_id)] == [1]


def test_a_running_run_cannot_be_deleted_but_others_can(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.add_epoch(run_id, {"epoch": 1})
    store.claim_run(run_id, "w")
    with pytest.raises(IllegalTransition, match="cancel"):
        store.delete_run(run_id)
    store.finish_run(run_id, "w", "succeeded")
    store.delete_run(run_id)
    with pytest.raises(RunNotFound):
        store.get_run(run_id)


def test_update_changes_name_tags_and_notes(store):
    run_id = store.create_run(config(tags=["old"]), queue="cpu")["id"]
    store.update_run(run_id, name="renamed", tags=["new", "new", "x"], notes="looks good")
    run = store.get_run(run_id)
    assert (run["name"], run["tags"], run["notes"]) == ("renamed", ["new", "x"], "looks good")
    items, _ = store.list_runs(tag="new")
    assert [r["id"] for r in items] == [run_id]
    assert store.list_runs(tag="old")[0] == []


def test_runs_are_listed_newest_first_in_cursor_pages(store):
    ids = [store.create_run(config(seed=i), queue="cpu")["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        items, cursor = store.list_runs(limit=3, cursor=cursor)
        seen += [r["id"] for r in items]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_runs_can_be_sorted_by_best_accuracy_across_pages(store):
    ids = [store.create_run(config(seed=i), queue="cpu")["id"] for i in range(5)]
    for run_id, acc in zip(ids, [0.3, None, 0.9, 0.5, None]):
        if acc is not None:
            store.add_epoch(run_id, {"epoch": 1, "val_acc": acc})
    first, cursor = store.list_runs(sort="-best_val_acc", limit=2)
    rest, _ = store.list_runs(sort="-best_val_acc", limit=10, cursor=cursor)
    assert [r["best_val_acc"] for r in first + rest] == [0.9, 0.5, 0.3, None, None]


def test_runs_are_filtered_by_status_method_text_and_sweep(store):
    a = store.create_run(config(method="arm", name="alpha run"), queue="cpu")["id"]
    b = store.create_run(config(method="baseline", name="beta"), queue="cpu")["id"]
    sweep, runs = store.create_sweep({"methods": ["arm"]}, [(config(), "cpu"), (config(seed=1), "cpu")])
    store.cancel_run(b)
    assert [r["id"] for r in store.list_runs(method="baseline")[0]] == [b]
    assert [r["id"] for r in store.list_runs(status=["cancelled"])[0]] == [b]
    assert [r["id"] for r in store.list_runs(text="ALPHA")[0]] == [a]
    assert sorted(r["id"] for r in store.list_runs(sweep=sweep["id"])[0]) == sorted(r["id"] for r in runs)


def test_a_garbled_cursor_is_rejected(store):
    with pytest.raises(BadCursor):
        store.list_runs(cursor="not-a-cursor")


@pytest.mark.parametrize(
    ("sort", "pair"),
    [("seed", [2**31, 1]), ("seed", [0, 2**64]), ("seed", [0, 0]), ("name", [[1, 2], 1]), ("name", ["a\x00", 1]),
     ("best_val_acc", ["x", 1]), ("best_val_acc", [10**400, 1]), ("created_at", [5, 1]), ("status", ["queued", 1.5]), ("method", ["arm", 1, 2])],
)
def test_a_cursor_whose_values_do_not_fit_its_sort_field_is_rejected_before_it_reaches_the_database(store, sort, pair):
    store.create_run(config(), queue="cpu")
    cursor = base64.urlsafe_b64encode(json.dumps(pair).encode()).decode()
    with pytest.raises(BadCursor):
        store.list_runs(sort=sort, cursor=cursor)


def test_percent_and_underscore_in_the_text_filter_are_matched_literally(store):
    for name in ("100% done", "a_b", "axb"):
        store.create_run(config(name=name), queue="cpu")
    assert [r["name"] for r in store.list_runs(text="%")[0]] == ["100% done"]
    assert [r["name"] for r in store.list_runs(text="_")[0]] == ["a_b"]
    assert [r["name"] for r in store.list_runs(text="0% D")[0]] == ["100% done"]


def test_of_concurrent_deletes_of_one_run_one_succeeds_and_the_others_find_no_run(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.cancel_run(run_id)
    barrier = threading.Barrier(32)
    outcomes: list[str] = []

    def delete():
        barrier.wait()
        try:
            store.delete_run(run_id)
            outcomes.append("deleted")
        except RunNotFound:
            outcomes.append("not found")

    threads = [threading.Thread(target=delete) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["deleted"] + ["not found"] * 31


def test_compare_returns_many_runs_thinned_to_the_requested_points(store):
    ids = [store.create_run(config(seed=i), queue="cpu")["id"] for i in range(3)]
    for run_id in ids:
        for e in range(1, 101):
            store.add_epoch(run_id, {"epoch": e, "val_acc": e / 100, "train_loss": 1 / e})
    result = store.compare(ids, keys=["val_acc"], points=10)
    assert [r["id"] for r in result] == ids
    epochs = [rec["epoch"] for rec in result[0]["records"]]
    assert len(epochs) == 10 and epochs[0] == 1 and epochs[-1] == 100
    assert set(result[0]["records"][0]) == {"epoch", "val_acc"}


def test_compare_of_an_unknown_run_is_not_found(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    with pytest.raises(RunNotFound):
        store.compare([run_id, 999])


def backdate(store, run_id, seconds, **columns):
    from datetime import timedelta

    from sqlalchemy import update

    from service.db.models import Run, utcnow

    with store.engine.begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(
            **{c: utcnow() - timedelta(seconds=seconds) for c in columns}))


def test_a_running_run_with_a_stale_heartbeat_is_requeued_exactly_once(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "dead-worker")
    backdate(store, run_id, 120, heartbeat_at=True)
    assert store.reap(60) == [{"id": run_id, "queue": "cpu"}]
    assert store.reap(60) == []
    run = store.get_run(run_id)
    assert run["status"] == "queued" and run["worker"] is None
    assert "dead-worker stopped heartbeating" in store.events(run_id)[-1]["message"]


def test_a_fresh_heartbeat_keeps_a_run(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    assert store.reap(60) == [] and store.get_run(run_id)["status"] == "running"


def test_a_dead_workers_run_with_a_pending_cancel_ends_cancelled(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    store.cancel_run(run_id)
    backdate(store, run_id, 120, heartbeat_at=True)
    assert store.reap(60) == [] and store.get_run(run_id)["status"] == "cancelled"


def test_a_queued_run_delivered_to_a_dead_worker_is_handed_back(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.worker_alive("node-a", "cpu")
    store.mark_delivered(run_id, "node-a")
    backdate(store, run_id, 120, delivered_at=True)
    assert store.reap(60) == []  # node-a is alive: it still holds the run
    from datetime import timedelta

    from sqlalchemy import update

    from service.db.models import Worker, utcnow

    with store.engine.begin() as conn:
        conn.execute(update(Worker).values(heartbeat_at=utcnow() - timedelta(seconds=120)))
    assert store.reap(60) == [{"id": run_id, "queue": "cpu"}]
    assert store.get_run(run_id)["delivered_to"] is None
    assert "died holding this run" in store.events(run_id)[-1]["message"]


def test_claiming_clears_the_delivery_note(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.mark_delivered(run_id, "node-a")
    store.claim_run(run_id, "node-a:1")
    assert store.get_run(run_id)["delivered_to"] is None


def test_a_queued_run_whose_message_never_went_out_is_handed_to_one_caller_after_the_grace(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    assert store.take_unpublished(60) == []  # just stored: its sender may still be publishing
    backdate(store, run_id, 120, unpublished_since=True)
    assert store.take_unpublished(60) == [{"id": run_id, "queue": "cpu"}]
    assert store.take_unpublished(60) == []  # taken: the clock restarted
    assert "sent again" in store.events(run_id)[-1]["message"]


def test_a_published_run_is_never_sent_again(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.mark_published(run_id)
    backdate(store, run_id, 120, created_at=True)
    assert store.take_unpublished(0) == []


def test_only_queued_runs_are_sent_again(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    backdate(store, run_id, 120, unpublished_since=True)
    assert store.take_unpublished(60) == []


@pytest.mark.parametrize("how", ["retry", "requeue", "reap"])
def test_every_return_to_the_queue_waits_for_its_message_again(store, how):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.mark_published(run_id)
    store.claim_run(run_id, "w")
    if how == "retry":
        store.finish_run(run_id, "w", "failed", "boom")
        store.retry_run(run_id)
    elif how == "requeue":
        assert store.requeue_run(run_id, "w")
    else:
        backdate(store, run_id, 120, heartbeat_at=True)
        assert store.reap(60)
    assert store.take_unpublished(0) == [{"id": run_id, "queue": "cpu"}]


def test_a_succeeded_run_is_complete_even_if_its_last_progress_never_arrived(store):
    run_id = store.create_run(config(), queue="cpu")["id"]
    store.claim_run(run_id, "w")
    store.heartbeat(run_id, "w", {"step": 5, "total_steps": 10})
    store.finish_run(run_id, "w", "succeeded")
    assert store.get_run(run_id)["progress"]["fraction"] == 1.0
