"""The running operator: Kopf wiring, the workload store, reconcilers, status writer, HTTP client."""
