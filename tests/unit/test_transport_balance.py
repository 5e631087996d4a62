"""The workers' connection table (adapter.transport.balance): slots given and freed by the
master, counts written by each worker and read by the others across a real fork."""

from __future__ import annotations

import os

from adapter.transport.balance import ConnectionShare, WorkerConnections


class _Worker:
    connections_slot: int | None = None


def _share(table: WorkerConnections, worker: _Worker) -> ConnectionShare:
    share = table.share(worker.connections_slot)
    assert share is not None
    return share


def test_each_worker_gets_its_own_slot_and_a_freed_slot_is_given_again() -> None:
    table = WorkerConnections(2)
    first, second, third = _Worker(), _Worker(), _Worker()
    table.assign(first)
    table.assign(second)
    table.assign(third)
    assert {first.connections_slot, second.connections_slot} == {0, 1}
    assert third.connections_slot is None  # no room: it accepts without comparing
    assert table.share(third.connections_slot) is None
    table.release(first)
    table.assign(third)
    assert third.connections_slot == first.connections_slot


def test_a_worker_compares_itself_with_the_others_that_accept() -> None:
    table = WorkerConnections(3)
    workers = [_Worker(), _Worker(), _Worker()]
    for worker in workers:
        table.assign(worker)
    me, busy, stopping = (_share(table, worker) for worker in workers)
    busy.hold(5)
    stopping.hold(0)
    assert me.others_hold_fewer(1)  # `stopping` holds none
    stopping.stop_accepting()
    assert not me.others_hold_fewer(5)
    assert me.others_hold_fewer(6)
    table.release(workers[1])  # a free slot is nobody's count
    assert not me.others_hold_fewer(100)


def test_a_count_written_in_a_forked_worker_is_read_in_the_master_and_the_others() -> None:
    table = WorkerConnections(2)
    child, other = _Worker(), _Worker()
    table.assign(child)
    table.assign(other)
    pid = os.fork()
    if pid == 0:  # the worker: writes its count and leaves at once
        _share(table, child).hold(7)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    mine = _share(table, other)
    assert not mine.others_hold_fewer(7)
    assert mine.others_hold_fewer(8)


def test_the_gunicorn_hooks_give_a_slot_before_the_fork_and_free_it_after_the_exit() -> None:
    table = WorkerConnections(1)
    exited: list[_Worker] = []
    settings = table.gunicorn_settings(on_exit=lambda _arbiter, worker: exited.append(worker))
    assert settings["reuse_port"] is False
    first, second = _Worker(), _Worker()
    settings["pre_fork"](None, first)
    settings["pre_fork"](None, second)
    assert (first.connections_slot, second.connections_slot) == (0, None)
    settings["child_exit"](None, first)
    assert exited == [first]
    settings["pre_fork"](None, second)
    assert second.connections_slot == 0
