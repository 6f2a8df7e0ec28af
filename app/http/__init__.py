"""The HTTP entry pipeline in front of both faces: request telemetry, CORS, admission (body
limits, credentials, rates), stored answers and the error bodies of its own refusals."""
