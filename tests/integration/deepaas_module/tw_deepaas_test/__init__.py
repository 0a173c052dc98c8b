"""A tiny DEEPaaS v2 model module, for the integration test only."""
