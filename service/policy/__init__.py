"""The versioned routing policy: thresholds, tiers, escalation, budgets and output contracts."""
