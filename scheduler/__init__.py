"""The running service: the ledger, the planner, the dispatcher, the APScheduler loop."""
