"""Shared vocabulary of every layer: settings, errors, permissions and the gateway models."""
