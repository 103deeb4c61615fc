"""Credential providers: static tokens and shared, single-flight OAuth2 tokens."""
