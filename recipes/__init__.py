"""Shipped recipe files (one YAML per recipe; see `medcolor recipes ls`)."""
