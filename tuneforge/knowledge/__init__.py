"""Knowledge bases: Bedrock's bedrock-agent resources (`service`), ingestion into vector stores (`ingest`,
`ingest_process`, `stores`), Retrieve (`retrieve`) and RetrieveAndGenerate (`generate`). Parsing and chunking
are tuneforge.documents'."""
