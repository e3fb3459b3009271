"""The HTTP edge: wire protocols (Bedrock REST, event streams, SigV4) in front of the services."""
