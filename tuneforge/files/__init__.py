"""Uploaded files (OpenAI's /v1/files): a row and a stored object each, checked line by line for their purpose on upload."""
