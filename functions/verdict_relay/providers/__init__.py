"""Provider adapters: one module per moderation provider, all behind ``providers.base.ProviderAdapter``."""
