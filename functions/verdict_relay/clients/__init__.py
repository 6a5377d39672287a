"""HTTP clients for the providers' APIs (requests): one module per provider, behind clients.base.ProviderClient."""
