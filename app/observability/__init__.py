"""What operators see: request context, metrics, JSON logs, tracing and upstream health."""
