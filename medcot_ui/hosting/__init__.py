"""How the app is served: settings, access rules, secret redaction, launch options, the app context."""
