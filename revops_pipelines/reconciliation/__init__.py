"""Reconciliation: findings runner, exception history and aging, metrics, report, trace."""
