"""Keeps a CRM, a subscription billing system and an ERP in agreement."""

__version__ = "0.1.0"
