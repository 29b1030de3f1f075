"""The ETL example: its worker (`workers.py`) and workflow files (see README.md here)."""
