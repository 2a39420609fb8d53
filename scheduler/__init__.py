"""The running service, a folder per part: the ledger (``ledger/``, every statement), the
planner (``planner/``), the dispatcher (``dispatch/``), what partners did (``acts/``), what
the ledger reports (``reports/``) and the worker's APScheduler loop (``worker/``); the ritual
file a process runs on (``source.py``) and its metrics (``metrics.py``)."""
