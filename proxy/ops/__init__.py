"""The operator's surface: admin endpoints, dashboard, access log."""
