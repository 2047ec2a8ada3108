"""Batches scored by Spark (`iris-platform batch --engine spark`): the session, the job, and the
counts its executors make."""
