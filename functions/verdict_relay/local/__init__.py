"""Running Verdict Relay without AWS: the resources of template.yaml created on any AWS endpoint (moto)."""
