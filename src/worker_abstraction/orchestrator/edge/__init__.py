"""The edge towards workers: the live view of them (discovery), the links that dispatch, follow and cancel
attempts, and the task channel (the fast path)."""
