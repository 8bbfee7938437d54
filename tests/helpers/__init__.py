"""Helpers shared by the test suites: import them, never a ``conftest.py``.

* :mod:`tests.helpers.waiting` -- ``wait_for``, the one way to wait for a condition;
* :mod:`tests.helpers.drivers` -- run an engine on drivers a test defines;
* :mod:`tests.helpers.api` -- call the Engine API of an in-process engine.
"""
