"""From scored events to alerts: sentiment windows in Redis (rules, lifecycle and delivery build on them)."""
