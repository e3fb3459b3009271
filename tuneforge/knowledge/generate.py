"""RetrieveAndGenerate: answer a question from a knowledge base, with citations and a conversation session.

    rag = RagService(sessions, retriever, generator_for=lambda model_id: pool_worker(model_id).generate)
    answer = rag.retrieve_and_generate("Who must register?", kb_id=KB, model_id="huggingfacetb.smollm2-135m-instruct-v1")
    follow_up = rag.retrieve_and_generate("And when?", kb_id=KB, model_id=..., session_id=answer.session_id)
    plan = rag.prepare("Who must register?", kb_id=KB, model_id=..., reserve_session=True)   # RetrieveAndGenerateStream
    async for piece in rag.astream(plan, worker.astream): ...    # answer text as it decodes, then the citations

Steps, in order:
1. Session: without a sessionId a new one is issued (a UUID); with one, its turns are loaded (NotFound if
   unknown). Each turn stores the question, the standalone query, the answer and the chunk ids cited.
2. Query rewriting: on a follow-up (the session has turns), the generation model rewrites the question into a
   standalone search query from the last `HISTORY_TURNS` turns (answers cut to `HISTORY_ANSWER_CHARS`), with
   `REWRITE_PROMPT` (greedy, at most
   `REWRITE_MAX_TOKENS` tokens, first line kept; an empty rewrite falls back to the question as asked).
3. Retrieval with the rewritten query followed by the previous turn's query in parentheses (a small model's
   rewrite may lose the subject; the extra words keep hybrid search on topic) (tuneforge.knowledge.retrieve;
   retrievalConfiguration as in Retrieve).
4. Generation with the prompt template: `generationConfiguration.promptTemplate.textPromptTemplate` or
   `DEFAULT_PROMPT`. `$search_results$` (required in a custom template) becomes the numbered results
   "[1] text" ...; `$query$` the user's question as asked; `$output_format_instructions$` the instruction to cite
   sources as [n]. The prompt is sent as one user message (the model's chat template applies).
   inferenceConfig.textInferenceConfig (maxTokens, temperature, topP, stopSequences) sets sampling. A prompt
   longer than the model's context loses its lowest-ranked results until it fits (one result at least).
5. Citations: "[n]" markers are removed from the answer; each sentence of the cleaned answer that carried
   markers becomes a citation (span start/end over output.text, end exclusive) whose retrievedReferences are
   the results it cited. Sentences without markers are attributed to the result sharing the most words with
   them (at least `MIN_OVERLAP` of the sentence's words). If no sentence could be attributed, one citation
   spans the whole answer with every result the prompt contained: all of them informed it.

Streaming (RetrieveAndGenerateStream) takes the same steps: `prepare` does 1-3 (and records a new session at once,
since the stream's header names it before any answer), `astream` generates from the worker's token stream and
yields the answer as it decodes with the [n] markers already removed (`clean_prefix` holds back a tail that may
still become a marker, or whitespace that may precede one), so the streamed text is exactly output.text of step
5; the citations follow once the answer is complete, and the turn is saved.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from tuneforge.db import session_scope, utcnow
from tuneforge.db.tables import RagSessionRow
from tuneforge.documents.sentences import split_sentences
from tuneforge.errors import InvalidInput, NotFound, PromptTooLong
from tuneforge.inference.params import Delta, GenerationRequest, GenerationResult, Message, SamplingParams
from tuneforge.knowledge.ingest import SOURCE_URI
from tuneforge.knowledge.requests import RetrievalConfiguration
from tuneforge.knowledge.retrieve import Retriever, location
from tuneforge.knowledge.stores.base import Hit

MAX_INPUT_CHARS = 1000
HISTORY_TURNS = 5
REWRITE_MAX_TOKENS = 64
DEFAULT_MAX_TOKENS = 512
MIN_OVERLAP = 0.5
SESSION_ID = re.compile(r"^[0-9a-zA-Z._:-]{2,100}$")
_MARKER = re.compile(r"\s*\[(\d{1,3})\]")
_UNSETTLED = re.compile(r"\s*(\[\d{0,3})?$")  # a tail that may yet become a marker, or precede one
_WORD = re.compile(r"\w+")

OUTPUT_FORMAT_INSTRUCTIONS = (
    "Cite the search results you use by their number in square brackets, like [1], at the end of each sentence."
)
DEFAULT_PROMPT = (
    "You are a question answering assistant. Answer the question using only the search results below. "
    "If they do not contain the answer, say that you could not find it.\n\n"
    "Search results:\n$search_results$\n\n$output_format_instructions$\n\nQuestion: $query$"
)
REWRITE_PROMPT = (  # short: small generation models have small contexts
    "Conversation:\n$conversation_history$\n\nFollow-up question: $query$\n\n"
    "Rewrite the follow-up question as a standalone question. Reply with the question only."
)
HISTORY_ANSWER_CHARS = 300  # each past answer is cut to this in the rewrite prompt

Generate = Callable[[GenerationRequest], GenerationResult]
Stream = Callable[[GenerationRequest], AsyncIterator[Delta]]


@dataclass(frozen=True)
class Citation:
    text: str
    start: int
    end: int  # exclusive
    references: list[Hit]


@dataclass
class RagAnswer:
    session_id: str
    text: str
    query: str  # the standalone query retrieval used
    citations: list[Citation] = field(default_factory=list)
    prompt: str = ""


@dataclass
class RagPlan:
    """What `prepare` settled for one turn: the session, the standalone query, the results, the prompt's template."""

    text: str
    kb_id: str
    session_id: str
    turns: list[dict]
    query: str
    hits: list[Hit]
    template: str
    params: SamplingParams

    def request(self) -> GenerationRequest:
        prompt = render(self.template, search_results=format_results(self.hits), query=self.text)
        return GenerationRequest(messages=(Message("user", prompt),), params=self.params)


@dataclass(frozen=True)
class RagPiece:
    """One step of a streamed answer: more of its text, or (last) its citations."""

    text: str = ""
    citations: list[Citation] | None = None


def clean_prefix(raw: str) -> str:
    """The part of the answer `raw` begins that `cite` will keep as it is, whatever follows: markers removed,
    leading whitespace dropped, and a tail that may still become a marker (or precede one) held back."""
    settled = raw[: _UNSETTLED.search(raw).start()]
    return _MARKER.sub("", settled).lstrip()


def render(template: str, *, search_results: str, query: str, history: str = "") -> str:
    return (template.replace("$search_results$", search_results).replace("$query$", query)
            .replace("$output_format_instructions$", OUTPUT_FORMAT_INSTRUCTIONS).replace("$conversation_history$", history))


def format_results(hits: list[Hit]) -> str:
    return "\n".join(f"[{i}] {' '.join(hit.chunk.content.split())}" for i, hit in enumerate(hits, start=1))


def format_history(turns: list[dict]) -> str:
    return "\n".join(f"User: {t['question']}\nAssistant: {t['answer'][:HISTORY_ANSWER_CHARS]}" for t in turns[-HISTORY_TURNS:])


def cite(raw: str, hits: list[Hit]) -> tuple[str, list[Citation]]:
    """The answer without [n] markers, and its citations (see the module docstring, step 5)."""
    text, cited_at = "", []  # cited_at: (offset in text, result number) for each marker
    last = 0
    for match in _MARKER.finditer(raw):
        text += raw[last:match.start()]
        cited_at.append((len(text), int(match.group(1))))
        last = match.end()
    text += raw[last:]
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    cited_at = [(offset - lead, n) for offset, n in cited_at]
    citations = []
    for start, end in split_sentences(text):
        numbers = sorted({n for offset, n in cited_at if start <= offset <= end + 1 and 1 <= n <= len(hits)})
        if numbers:
            refs = [hits[n - 1] for n in numbers]
        else:
            words = set(_WORD.findall(text[start:end].lower()))
            overlaps = [len(words & set(_WORD.findall(h.chunk.content.lower()))) / max(len(words), 1) for h in hits]
            best = max(range(len(hits)), key=overlaps.__getitem__) if hits else None
            refs = [hits[best]] if best is not None and overlaps[best] >= MIN_OVERLAP else []
        if refs:
            citations.append(Citation(text[start:end], start, end, refs))
    if not citations and text and hits:
        citations.append(Citation(text, 0, len(text), list(hits)))
    return text, citations


def reference(hit: Hit) -> dict:
    """Bedrock's RetrievedReference."""
    uri = str(hit.chunk.metadata.get(SOURCE_URI, hit.chunk.document_id))
    return {"content": {"text": hit.chunk.content, "type": "TEXT"}, "location": location(uri), "metadata": dict(hit.chunk.metadata)}


def sampling(generation_configuration: dict | None) -> SamplingParams:
    config = ((generation_configuration or {}).get("inferenceConfig") or {}).get("textInferenceConfig") or {}
    base = "retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.generationConfiguration.inferenceConfig.textInferenceConfig"
    try:
        return SamplingParams(temperature=config.get("temperature", 0.0), top_p=config.get("topP", 1.0),
                              max_tokens=config.get("maxTokens", DEFAULT_MAX_TOKENS), stop=tuple(config.get("stopSequences") or ()))
    except InvalidInput as exc:
        wire = {"max_tokens": "maxTokens", "top_p": "topP", "stop": "stopSequences"}.get(exc.field or "", exc.field)
        raise InvalidInput(exc.message, field=f"{base}.{wire}") from None


class RagService:
    def __init__(self, sessions: sessionmaker[Session], retriever: Retriever, *, generator_for: Callable[[str], Generate]) -> None:
        self.sessions = sessions
        self.retriever = retriever
        self.generator_for = generator_for

    def retrieve_and_generate(
        self, text: str, *, kb_id: str, model_id: str, session_id: str | None = None,
        retrieval_configuration: RetrievalConfiguration = RetrievalConfiguration(), generation_configuration: dict | None = None,
    ) -> RagAnswer:
        plan = self.prepare(text, kb_id=kb_id, model_id=model_id, session_id=session_id,
                            retrieval_configuration=retrieval_configuration, generation_configuration=generation_configuration)
        generate = self.generator_for(model_id)
        while True:  # results that do not fit the model's context are dropped, lowest-ranked first
            try:
                result = generate(plan.request())
                break
            except PromptTooLong:
                if len(plan.hits) <= 1:
                    raise
                plan.hits = plan.hits[:-1]
        return self.finish(plan, result.text)

    def prepare(
        self, text: str, *, kb_id: str, model_id: str, session_id: str | None = None,
        retrieval_configuration: RetrievalConfiguration = RetrievalConfiguration(), generation_configuration: dict | None = None,
        reserve_session: bool = False,
    ) -> RagPlan:
        """Steps 1-3: the session, the standalone query (a follow-up is rewritten by `model_id`), the results.
        `reserve_session` records a new session at once (a stream names it before its answer exists)."""
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_INPUT_CHARS:
            raise InvalidInput(f"input.text must be 1-{MAX_INPUT_CHARS} characters", field="input.text")
        template = ((generation_configuration or {}).get("promptTemplate") or {}).get("textPromptTemplate") or DEFAULT_PROMPT
        if "$search_results$" not in template:
            raise InvalidInput("the prompt template must contain $search_results$, where the retrieved passages go",
                               field="retrieveAndGenerateConfiguration.knowledgeBaseConfiguration.generationConfiguration.promptTemplate.textPromptTemplate")
        params = sampling(generation_configuration)
        turns = self._turns(session_id) if session_id is not None else []

        query = text
        if turns:  # a follow-up: make it a standalone query before searching
            rewrite = render(REWRITE_PROMPT, search_results="", query=text, history=format_history(turns))
            rewritten = self.generator_for(model_id)(GenerationRequest(messages=(Message("user", rewrite),),
                                                     params=SamplingParams(temperature=0.0, max_tokens=REWRITE_MAX_TOKENS)))
            standalone = next((line.strip() for line in rewritten.text.splitlines() if line.strip()), "") or text
            # a small model's rewrite often drops the subject ("an equivalent?" of what?): the previous turn's
            # query rides along, so hybrid search still finds the topic
            query = f"{standalone} ({turns[-1]['query']})"
        hits = self.retriever.hits(kb_id, query[:MAX_INPUT_CHARS * 20], retrieval_configuration)
        if session_id is None:
            session_id = str(uuid.uuid4())
            if reserve_session:
                with session_scope(self.sessions) as session:
                    session.add(RagSessionRow(session_id=session_id, knowledge_base_id=kb_id, turns=[]))
        return RagPlan(text, kb_id, session_id, turns, query, hits, template, params)

    def finish(self, plan: RagPlan, raw: str) -> RagAnswer:
        """Steps 4-5 once the answer is generated: its citations, and the turn saved in the session."""
        request = plan.request()
        answer, citations = cite(raw, plan.hits)
        turn = {"question": plan.text, "query": plan.query, "answer": answer, "at": utcnow().isoformat(),
                "references": sorted({h.chunk.chunk_id for c in citations for h in c.references})}
        self._save_turn(plan, turn)
        return RagAnswer(plan.session_id, answer, plan.query, citations, request.messages[0].content)

    async def astream(self, plan: RagPlan, stream: Stream) -> AsyncIterator[RagPiece]:
        """The answer as the worker decodes it (markers removed), then its citations; the turn is saved at the end."""
        while True:  # as in retrieve_and_generate: a prompt too long loses its lowest-ranked results
            deltas = stream(plan.request())
            try:
                first = await anext(deltas)
                break
            except PromptTooLong:
                await deltas.aclose()
                if len(plan.hits) <= 1:
                    raise
                plan.hits = plan.hits[:-1]
            except BaseException:
                await deltas.aclose()
                raise
        raw, sent, result = "", "", None
        try:
            delta = first
            while True:
                raw += delta.text
                result = delta.result or result
                clean = clean_prefix(raw)
                if len(clean) > len(sent):
                    yield RagPiece(text=clean[len(sent):])
                    sent = clean
                if result is not None:
                    break
                delta = await anext(deltas)
        finally:
            await deltas.aclose()  # at once: frees the worker's batch slot if the client went away
        answer = await asyncio.to_thread(self.finish, plan, result.text if result is not None else raw)
        if len(answer.text) > len(sent) and answer.text.startswith(sent):
            yield RagPiece(text=answer.text[len(sent):])
        yield RagPiece(citations=answer.citations)

    def _turns(self, session_id: str) -> list[dict]:
        if not isinstance(session_id, str) or not SESSION_ID.match(session_id):
            raise InvalidInput("sessionId must be 2-100 characters of letters, digits, '.', '_', ':' or '-'", field="sessionId")
        with self.sessions() as session:
            row = session.get(RagSessionRow, session_id)
        if row is None:
            raise NotFound(f"no session {session_id!r}: omit sessionId to start a new conversation", field="sessionId")
        return list(row.turns)

    def _save_turn(self, plan: RagPlan, turn: dict) -> None:
        with session_scope(self.sessions) as session:
            row = session.get(RagSessionRow, plan.session_id)
            if row is None:
                session.add(RagSessionRow(session_id=plan.session_id, knowledge_base_id=plan.kb_id, turns=[turn]))
            else:
                row.turns = [*plan.turns, turn]  # a new list: JSON columns track assignment, not mutation

    def session_turns(self, session_id: str) -> list[dict]:
        return self._turns(session_id)
