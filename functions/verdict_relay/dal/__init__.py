"""Data-access adapters: the only modules that touch boto3 (DynamoDB, SNS, S3)."""
