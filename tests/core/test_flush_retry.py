"""The suite's own guard: a transactional test's closing TRUNCATE that PostgreSQL ends as a deadlock
with a live worker's transaction is taken again, so neither that test nor the next one fails
(tests/conftest.py, _fixture_teardown_retrying)."""
import logging
import re
import threading
import time

import pytest
from django.core.management.color import no_style
from django.core.management.sql import sql_flush
from django.db import connection, connections, transaction
from django.test import TransactionTestCase

from ops_portal.accounts.models import Environment

pytestmark = pytest.mark.django_db(transaction=True)


class _Case(TransactionTestCase):
    __test__ = False  # only its flush is used

    def runTest(self):  # a TestCase needs one method to be made
        pass


def _truncate_order():
    (statement,) = [s for s in sql_flush(no_style(), connection) if s.startswith("TRUNCATE")]
    return re.findall(r'"([^"]+)"', statement.split(";")[0])


def test_a_flush_ended_as_a_deadlock_is_taken_again_and_empties_the_tables(caplog):
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL (the suite's database)")
    Environment.objects.create(name="left-behind")
    tables = _truncate_order()
    first, last = tables[0], tables[-1]
    holding, done, errors = threading.Event(), threading.Event(), []

    def worker():  # a worker's transaction: holds a lock the TRUNCATE waits for, then wants one it holds
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.execute(f'LOCK TABLE "{last}" IN ROW EXCLUSIVE MODE')
                holding.set()
                time.sleep(0.5)  # the flush is now waiting for `last`, holding every table before it
                cursor.execute(f'LOCK TABLE "{first}" IN ACCESS SHARE MODE')
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)
        finally:
            connections["default"].close()
            done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    assert holding.wait(10)
    with caplog.at_level(logging.WARNING, logger="tests.conftest"):
        _Case()._fixture_teardown()
    thread.join(10)
    assert done.is_set() and not errors, errors
    assert any("deadlock" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not Environment.objects.filter(name="left-behind").exists()
