"""The foundation every other package stands on: settings, SQL, time, logs, metrics, Kafka admin,
outages. It imports no domain package and no command."""
