"""Logging and metrics set up by the processes that run the library (tracing comes later), and the health
checks and reflection every server offers (`health.py`).

The library only calls `logging.getLogger(__name__)`; `log.configure()` is the one place handlers are added,
and only the CLI and the daemons in `services/` call it. `metrics` defines the Prometheus metrics a server
records when it is given a metrics object; `exposition` serves them over HTTP.
"""
