"""nexus_connector_async: safe outbound calls to payment and messaging vendors."""
