"""Secrets and who may do what: the keyring (`keyring`, local keys addressed as KMS key ids), encryption of
artifact directories at rest (`crypto`), the API's access keys with their secrets encrypted under a keyring key
(`keys`), and the audit log of mutating calls (`audit`)."""
