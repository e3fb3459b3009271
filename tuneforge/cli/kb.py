"""`tuneforge kb create|list|get|delete|add-source|sync|retrieve|ask`: knowledge bases from the command line.

    tuneforge kb create laws                                   # embeds with all-MiniLM-L6-v2
    tuneforge kb add-source laws ./statutes --max-tokens 200   # or s3://bucket/prefix/
    tuneforge kb sync laws                                     # incremental; progress until it ends
    tuneforge kb retrieve laws "who must register?" --hybrid
    tuneforge kb ask laws                                      # a conversation: follow-ups keep the session

Knowledge bases are named by name or id. Sync runs in its own process (it outlives Ctrl-C of this command);
retrieve and ask start the embedding (and generation) model in worker processes for the command's duration.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.table import Table

from tuneforge.catalog.builtin import DEFAULT_EMBEDDING_MODEL_ID, DEFAULT_MODEL_ID
from tuneforge.cli.runtime import catalog, console, model_resolver, print_json, settings
from tuneforge.cli.tables import Column, WideFlag, detail_table, failure, print_table, when
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.knowledge.service import KnowledgeBaseService
from tuneforge.knowledge.states import FINISHED, IngestionJobStatus
from tuneforge.models.resolve import LOADABLE
from tuneforge.models.specs import embedding_spec
from tuneforge.serving.client import WorkerProcess
from tuneforge.wire import knowledge as views

app = typer.Typer(help="Knowledge bases: ingest documents, retrieve passages, ask questions with citations.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print Bedrock's JSON shape instead of a table.")]
KbArg = Annotated[str, typer.Argument(help="Knowledge base name or id.")]
POLL_SECONDS = 0.5
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/tuneforge"  # Bedrock requires a role; tuneforge records it only


@lru_cache(maxsize=1)
def kbs() -> KnowledgeBaseService:
    return KnowledgeBaseService(settings(), catalog().sessions, catalog())


def _kb(identifier: str):
    for kb in kbs().list_knowledge_bases().items:
        if identifier in (kb.name, kb.knowledge_base_id):
            return kb
    raise NotFound(f"no knowledge base {identifier!r}: see `tuneforge kb list`", field="KB")


def _source_configuration(location: str) -> dict:
    """A folder, file:// folder or s3://bucket/prefix as Bedrock's S3 dataSourceConfiguration."""
    if location.startswith("s3://"):
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        s3 = {"bucketArn": f"arn:aws:s3:::{bucket}"} | ({"inclusionPrefixes": [prefix]} if prefix else {})
    else:
        folder = Path(location.removeprefix("file://")).expanduser().resolve()
        if not folder.is_dir():
            raise InvalidInput(f"{location!r} is not a folder", field="LOCATION")
        s3 = {"bucketArn": f"file://{folder}"}
    return {"type": "S3", "s3Configuration": s3}


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Knowledge base name (letters, digits, '-' and '_').")],
    embedding_model: Annotated[str, typer.Option("--embedding-model", "-e", help="Catalog embedding model id or ARN.")] = DEFAULT_EMBEDDING_MODEL_ID,
    description: Annotated[Optional[str], typer.Option(help="Free text.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a knowledge base (its vectors go to the embedded SQLite store in the data directory)."""
    kb = kbs().create_knowledge_base(views.knowledge_base_request({
        "name": name, "roleArn": DEFAULT_ROLE, "description": description,
        "knowledgeBaseConfiguration": {"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {"embeddingModelArn": embedding_model}}}))
    if as_json:
        print_json({"knowledgeBase": views.knowledge_base(kb)})
    else:
        console.print(f"created knowledge base [bold]{kb.name}[/] ({kb.knowledge_base_id}), embeddings: "
                      f"{kb.embedding_model_id} ({kb.dimension} dimensions, {kb.embedding_max_tokens} tokens per chunk at most)")


@app.command("list")
def list_(wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """List knowledge bases."""
    rows = kbs().list_knowledge_bases().items
    if as_json:
        print_json({"knowledgeBaseSummaries": [views.knowledge_base_summary(kb) for kb in rows]})
        return
    # the embedding model's id (up to 38 characters) does not fit beside the name: --wide
    columns = [Column("Id", key=True), Column("Name", key=True), Column("Status"), Column("Embedding model", wide=True, key=True),
               Column("Sources", right=True), Column("Updated")]
    print_table(None, columns, [(kb.knowledge_base_id, kb.name, kb.status, kb.embedding_model_id,
                                 str(len(kbs().list_data_sources(kb.knowledge_base_id).items)), when(kb.updated_at))
                                for kb in rows], wide=wide)


@app.command("get")
def get(kb: KbArg, wide: WideFlag = False, as_json: JsonFlag = False) -> None:
    """Show a knowledge base, its data sources and their last ingestion jobs."""
    row = _kb(kb)
    sources = kbs().list_data_sources(row.knowledge_base_id).items
    if as_json:
        print_json({"knowledgeBase": views.knowledge_base(row), "dataSources": [views.data_source(ds) for ds in sources]})
        return
    console.print(f"[bold]{row.name}[/] ({row.knowledge_base_id}) {row.status}  embeddings: {row.embedding_model_id}")
    # a location is a path or URI of any length: --wide (and `kb add-source` prints it)
    columns = [Column("Data source", key=True), Column("Name", key=True), Column("Location", wide=True, key=True),
               Column("Chunking", wide=True), Column("Last sync"), Column("Documents")]
    table_rows = []
    for ds in sources:
        jobs = kbs().list_ingestion_jobs(row.knowledge_base_id, ds.data_source_id, max_results=1).items
        chunking = ((ds.vector_ingestion_configuration or {}).get("chunkingConfiguration") or {}).get("chunkingStrategy", "DEFAULT")
        last = f"{jobs[0].status} {when(jobs[0].updated_at)}" if jobs else "never"
        indexed = sum(jobs[0].statistics.get(k, 0) for k in ("numberOfNewDocumentsIndexed", "numberOfModifiedDocumentsIndexed")) if jobs else 0
        table_rows.append((ds.data_source_id, ds.name, ds.location_uri, chunking, last, f"{indexed} indexed" if jobs else ""))
    print_table(None, columns, table_rows, wide=wide)


@app.command("delete")
def delete(kb: KbArg) -> None:
    """Delete a knowledge base, its data sources and its vectors."""
    row = kbs().delete_knowledge_base(_kb(kb).knowledge_base_id)
    console.print(f"deleted knowledge base {row.name} ({row.knowledge_base_id})")


@app.command("add-source")
def add_source(
    kb: KbArg,
    location: Annotated[str, typer.Argument(help="A folder (path or file://) or s3://bucket/prefix/.")],
    name: Annotated[Optional[str], typer.Option(help="Data source name (default: derived from the location).")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="FIXED_SIZE, NONE, HIERARCHICAL or SEMANTIC (default: Bedrock's default chunking).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="FIXED_SIZE/SEMANTIC chunk size, in embedding-model tokens.")] = None,
    overlap: Annotated[int, typer.Option(help="FIXED_SIZE overlap percentage.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Add a data source; `kb sync` indexes it."""
    row = _kb(kb)
    chunking = None
    if strategy or max_tokens:
        strategy = (strategy or "FIXED_SIZE").upper()
        chunking = {"chunkingStrategy": strategy}
        if strategy == "FIXED_SIZE":
            chunking["fixedSizeChunkingConfiguration"] = {"maxTokens": max_tokens or 200, "overlapPercentage": overlap}
        elif strategy == "SEMANTIC":
            chunking["semanticChunkingConfiguration"] = {"maxTokens": max_tokens or 200, "bufferSize": 0, "breakpointPercentileThreshold": 95}
        elif strategy == "HIERARCHICAL":
            chunking["hierarchicalChunkingConfiguration"] = {"levelConfigurations": [{"maxTokens": 1500}, {"maxTokens": max_tokens or 200}], "overlapTokens": 60}
    default_name = "".join(c if c.isalnum() else "-" for c in location.rstrip("/").rsplit("/", 1)[-1]).strip("-")[:100] or "source"
    ds = kbs().create_data_source(row.knowledge_base_id, views.data_source_request({
        "name": name or default_name, "dataSourceConfiguration": _source_configuration(location),
        "vectorIngestionConfiguration": {"chunkingConfiguration": chunking} if chunking else None}))
    if as_json:
        print_json({"dataSource": views.data_source(ds)})
    else:
        console.print(f"added data source [bold]{ds.name}[/] ({ds.data_source_id}) reading {ds.location_uri}")


def _job_table(job) -> Table:
    p, s = job.progress or {}, job.statistics or {}
    fields: list[tuple[str, object]] = []
    if p.get("documentsTotal"):
        done, total = p.get("documentsDone", 0), p["documentsTotal"]
        bar = "█" * int(30 * done / total) + "░" * (30 - int(30 * done / total))
        fields.append(("progress", f"{bar} {done}/{total} documents"))
    if p.get("document") and job.status == IngestionJobStatus.IN_PROGRESS:
        fields.append(("document", p["document"]))
    for key in ("numberOfDocumentsScanned", "numberOfNewDocumentsIndexed", "numberOfModifiedDocumentsIndexed",
                "numberOfMetadataDocumentsModified", "numberOfDocumentsDeleted", "numberOfDocumentsFailed"):
        fields.append((key.removeprefix("numberOf"), str(s.get(key, 0))))
    fields += [("failure", failure(reason)) for reason in job.failure_reasons or []]
    return detail_table(f"ingestion {job.ingestion_job_id}: {job.status}", fields)


@app.command("sync")
def sync(
    kb: KbArg,
    source: Annotated[Optional[str], typer.Option(help="Data source name or id (default: all).")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow progress until the sync ends.")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Index what changed in the data sources (new, modified and deleted documents)."""
    row = _kb(kb)
    sources = [ds for ds in kbs().list_data_sources(row.knowledge_base_id).items if source in (None, ds.name, ds.data_source_id)]
    if not sources:
        raise NotFound(f"knowledge base {row.name} has no data source {source or ''}: add one with `tuneforge kb add-source`", field="--source")
    failed = False
    for ds in sources:
        job = kbs().start_ingestion_job(row.knowledge_base_id, ds.data_source_id)
        if wait:
            with Live(console=console, refresh_per_second=4, transient=as_json) as live:
                while job.status not in FINISHED:
                    time.sleep(POLL_SECONDS)
                    job = kbs().get_ingestion_job(row.knowledge_base_id, ds.data_source_id, job.ingestion_job_id)
                    live.update(_job_table(job))
            if not console.is_terminal and not as_json:
                console.line()  # off a terminal Live prints only its last frame, without the newline that ends it
        failed |= job.status == IngestionJobStatus.FAILED or bool(job.statistics.get("numberOfDocumentsFailed"))
        if as_json:
            print_json({"ingestionJob": views.ingestion_job(job)})
    if failed:
        raise typer.Exit(1)


def _embedder(stack: ExitStack, model_id: str) -> WorkerProcess:
    return stack.enter_context(WorkerProcess(embedding_spec(catalog(), model_id)))


def _retrieval(results: int, hybrid: bool, filter_json: Optional[str], reranker: Optional[str] = None):
    """The flags as Bedrock's retrievalConfiguration, checked as the API checks it."""
    import json

    vector: dict = {"numberOfResults": results, "overrideSearchType": "HYBRID" if hybrid else "SEMANTIC"}
    if filter_json:
        try:
            vector["filter"] = json.loads(filter_json)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--filter is not valid JSON: {exc}", field="--filter") from None
    if reranker:
        vector["rerankingConfiguration"] = {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
            "modelConfiguration": {"modelArn": reranker}}}
    return views.retrieval_configuration({"vectorSearchConfiguration": vector})


@app.command("retrieve")
def retrieve(
    kb: KbArg,
    query: Annotated[str, typer.Argument(help="What to search for.")],
    results: Annotated[int, typer.Option("--results", "-k", min=1, max=100, help="numberOfResults.")] = 5,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="BM25 + vector search fused (default: vector only).")] = False,
    filter_json: Annotated[Optional[str], typer.Option("--filter", help='A Bedrock RetrievalFilter as JSON, e.g. {"equals": {"key": "k", "value": "v"}}.')] = None,
    reranker: Annotated[Optional[str], typer.Option(help="Rerank the --results candidates with this reranker (a catalog model added with --reranker).")] = None,
    wide: WideFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Show the passages a query retrieves, best first."""
    from tuneforge.knowledge.rerank import Reranker
    from tuneforge.knowledge.retrieve import Retriever
    from tuneforge.models.specs import reranker_spec

    row = _kb(kb)
    configuration = _retrieval(results, hybrid, filter_json, reranker)
    with ExitStack() as stack:
        worker = _embedder(stack, row.embedding_model_id)
        scorer = (stack.enter_context(WorkerProcess(reranker_spec(catalog(), reranker, field="--reranker"))).rerank
                  if reranker else None)
        retriever = Retriever(kbs(), embedder_for=lambda _m: worker.embed, reranker=Reranker(lambda _m, _f: scorer))
        stack.callback(retriever.close)
        found = retriever.retrieve(row.knowledge_base_id, query, configuration).results
    if as_json:
        print_json({"retrievalResults": found})
        return
    # the source's file name by default, its whole URI with --wide; the passage wraps
    columns = [Column("#", right=True), Column("Score", right=True), Column("Source", key=True), Column("Page", right=True),
               Column("Text", prose=True)]
    rows = []
    for i, r in enumerate(found, start=1):
        meta = r["metadata"]
        uri = str(meta.get("x-amz-bedrock-kb-source-uri", ""))
        rows.append((str(i), f"{r['score']:.3f}", uri if wide else uri.rstrip("/").rsplit("/", 1)[-1],
                     str(meta.get("x-amz-bedrock-kb-document-page-number", "")), r["content"]["text"][:300]))
    print_table(None, columns, rows, wide=wide)


@app.command("ask")
def ask(
    kb: KbArg,
    question: Annotated[Optional[str], typer.Argument(help="The question; omit it for a conversation (one question per line, empty line ends).")] = None,
    model: Annotated[str, typer.Option("--model", "-m", help="Generation model: catalog id, alias or custom model.")] = DEFAULT_MODEL_ID,
    session: Annotated[Optional[str], typer.Option(help="Continue this session (printed after each answer).")] = None,
    results: Annotated[int, typer.Option("--results", "-k", min=1, max=100, help="Passages given to the model.")] = 5,
    hybrid: Annotated[bool, typer.Option("--hybrid", help="BM25 + vector search fused.")] = False,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most tokens in an answer.")] = 256,
    template: Annotated[Optional[str], typer.Option(help="Prompt template with $search_results$ (and $query$).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer questions from the knowledge base, with citations; follow-up questions keep the conversation."""
    from tuneforge.cli.invoke import start_worker
    from tuneforge.knowledge.generate import RagService, reference
    from tuneforge.knowledge.retrieve import Retriever

    row = _kb(kb)
    generation = {"inferenceConfig": {"textInferenceConfig": {"maxTokens": max_tokens, "temperature": 0}}}
    if template:
        generation["promptTemplate"] = {"textPromptTemplate": template}
    with ExitStack() as stack:
        embedder = _embedder(stack, row.embedding_model_id)
        generation_model = model_resolver().resolve(model, kinds=LOADABLE, field="--model")
        generator = stack.enter_context(start_worker(generation_model, "auto", "auto"))
        retriever = Retriever(kbs(), embedder_for=lambda _m: embedder.embed)
        stack.callback(retriever.close)
        rag = RagService(kbs().sessions, retriever, generator_for=lambda _m: generator.generate)
        questions = [question] if question else _questions()
        for text in questions:
            answer = rag.retrieve_and_generate(text, kb_id=row.knowledge_base_id, model_id=model, session_id=session,
                                               retrieval_configuration=_retrieval(results, hybrid, None), generation_configuration=generation)
            session = answer.session_id
            if as_json:
                print_json({"sessionId": answer.session_id, "output": {"text": answer.text}, "query": answer.query, "citations": [
                    {"generatedResponsePart": {"textResponsePart": {"text": c.text, "span": {"start": c.start, "end": c.end}}},
                     "retrievedReferences": [reference(h) for h in c.references]} for c in answer.citations]})
                continue
            if answer.query != text:
                console.print(f"[dim]searched for: {answer.query}[/]")
            console.print(answer.text, highlight=False)
            for i, c in enumerate(answer.citations, start=1):
                sources = ", ".join(sorted({str(h.chunk.metadata.get("x-amz-bedrock-kb-source-uri")) +
                                            (f" p.{h.chunk.metadata['x-amz-bedrock-kb-document-page-number']}"
                                             if "x-amz-bedrock-kb-document-page-number" in h.chunk.metadata else "")
                                            for h in c.references}))
                console.print(f"[dim][{i}] chars {c.start}-{c.end}: {sources}[/]", highlight=False)
            console.print(f"[dim]session {answer.session_id}[/]")


def _questions():
    while True:
        try:
            line = input("> " if console.is_terminal else "")
        except EOFError:
            return
        if not line.strip():
            return
        yield line.strip()
