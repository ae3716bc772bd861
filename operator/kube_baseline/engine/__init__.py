"""The pure engine: API objects and models in, findings, patches and generated objects out.

No I/O, no clock, no Kubernetes client, no Kopf: the controller and the CLI both call it."""
