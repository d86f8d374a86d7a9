"""The kit every ReliefHub service builds on: settings, database, events, auth, errors, HTTP."""
