"""The ops surface: metrics, status, traces, probes and the HTTP endpoint that serves them."""
