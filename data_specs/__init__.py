"""Shipped data-spec files (one YAML per dataset format)."""
