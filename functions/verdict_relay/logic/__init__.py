"""Domain logic: the verdict policy and the ingest pipeline. Imports neither boto3 nor requests."""
