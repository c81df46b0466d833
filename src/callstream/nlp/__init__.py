"""Live call insights: entities, case category, risk flags, summary (see docs/insights.md)."""
