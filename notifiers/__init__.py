"""Channels that deliver messages: SMS (Twilio), email (SMTP), console."""
