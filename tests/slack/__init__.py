"""The Slack adapter against a fake Slack that speaks its wire protocols."""
