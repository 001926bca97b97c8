"""Outbound I/O to suppliers, webhooks, e-mail and SMS."""
