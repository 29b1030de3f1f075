"""The streaming example: a worker that streams generated tokens (`workers.py`) and a caller that prints them
as they arrive (`caller.py`); see README.md here."""
