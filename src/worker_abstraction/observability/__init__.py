"""Logging, metrics and tracing set up by the processes that run the library, and the health checks and
reflection every server offers (`health.py`).

The library only calls `logging.getLogger(__name__)`; `log.configure()` is the one place handlers are added,
and only the CLI and the daemons in `services/` call it. `metrics` defines the Prometheus metrics a server
records when it is given a metrics object; `exposition` serves them over HTTP. `tracing` makes OpenTelemetry
spans of every task once a TracerProvider is installed; `tracing_setup` installs one from the `OTEL_*`
variables for the `wa` processes.
"""
