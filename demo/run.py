"""The main job (`make demo`): the two reference Bedrock notebooks, replayed offline on a CPU with boto3.

It starts a real `tuneforge serve` on a free port (data in .demo-home/, the materialized default model kept
between runs) and talks to it only through boto3's bedrock, bedrock-runtime, bedrock-agent and
bedrock-agent-runtime clients, as the notebooks do:

  a. the base model (SmolLM2-135M-Instruct behind the Bedrock id meta.llama2-13b-v1:0:4k) summarizes a
     hotel check-in dialogue: chatty and off target;
  b. a FINE_TUNING job on dialogue/summary pairs with string hyperparameters -> a custom model -> a provisioned
     throughput -> the same dialogue, now one concise line; ROUGE of base vs custom on held-out rows;
  c. CONTINUED_PRE_TRAINING on a document the base model has never seen -> perplexity before/after on a
     held-out chapter, and a question asked with Titan bodies (amazon.titan-text-express-v1:0:8k) before and
     after (the provisioned throughput is re-pointed to the new custom model);
  d. a knowledge base over sample trading-rules documents answers a question and a follow-up, with citations;
  e. clean-up: the provisioned throughput is deleted.

The default data is written by this project (demo/dialogues.py, demo/data/): DialogSum and the book in
../shared/data cannot ship with it. `--data dialogsum/train.jsonl` (DialogSum's JSONL) or
`--hf-dataset knkarthick/dialogsum` (online, or a local dataset path) fine-tune on real dialogues instead, and
`--book FILE` pre-trains on your own document. `--quick` shrinks everything for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
from botocore.config import Config
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

DEMO = Path(__file__).resolve().parent
sys.path.insert(0, str(DEMO))
import dialogues  # noqa: E402  (demo/dialogues.py: the generated dialogue/summary pairs)

from tuneforge.catalog.builtin import DEFAULT_MODEL_ID  # noqa: E402

console = Console()
PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
LLAMA_BASE = "meta.llama2-13b-v1:0:4k"  # the notebook's customizable Llama 2 id, an alias of the default model here
TITAN_BASE = "amazon.titan-text-express-v1:0:8k"
ROLE = "arn:aws:iam::123456789012:role/tuneforge-demo"
HELD_OUT_HEADING = "## Held-out chapter"


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.home = Path(args.home).resolve()
        self.work = self.home / "demo-data"
        self.summary: list[tuple[str, str, str]] = []  # (step, result, seconds)
        self.server: subprocess.Popen | None = None
        self.pt_arn: str | None = None

    # ---- plumbing -------------------------------------------------------------------------------
    def cli(self, *args: str, capture: bool = False) -> str:
        done = subprocess.run([sys.executable, "-m", "tuneforge", *args], env=self.env, check=True, text=True,
                              capture_output=capture)
        return done.stdout if capture else ""

    def prepare_home(self) -> None:
        """A clean data directory, except the materialized models (minutes to rebuild)."""
        self.home.mkdir(parents=True, exist_ok=True)
        for entry in self.home.iterdir():
            if entry.name != "models":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        self.work.mkdir()
        os.environ["TUNEFORGE_HOME"] = str(self.home)  # read (once) by the tuneforge library calls made here too
        self.env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}

    def start_server(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(self.home / "server.log", "w")
        self.server = subprocess.Popen([sys.executable, "-m", "tuneforge", "serve", "--port", str(self.port)],
                                       env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        import urllib.request

        while True:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
                break
            except OSError:
                if self.server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"tuneforge serve did not start; see {self.home / 'server.log'}")
                time.sleep(0.2)
        config = Config(retries={"max_attempts": 10, "mode": "standard"}, read_timeout=600)
        session = boto3.Session(region_name="us-east-1", **self.credentials())
        self.bedrock = session.client("bedrock", endpoint_url=self.url, config=config)
        self.runtime = session.client("bedrock-runtime", endpoint_url=self.url, config=config)
        self.agent = session.client("bedrock-agent", endpoint_url=self.url, config=config)
        self.agent_runtime = session.client("bedrock-agent-runtime", endpoint_url=self.url, config=config)

    def credentials(self) -> dict[str, str]:
        """An access key issued by tuneforge, as a user would get one (`tuneforge keys create`)."""
        try:
            key = json.loads(self.cli("keys", "create", "--name", "demo", "--json", capture=True))
        except subprocess.CalledProcessError:  # a server without key management: any credentials do
            return {"aws_access_key_id": "demo", "aws_secret_access_key": "demo"}
        return {"aws_access_key_id": key["accessKeyId"], "aws_secret_access_key": key["secretAccessKey"]}

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()

    def step(self, title: str) -> float:
        console.print(Rule(f"[bold]{title}"))
        return time.perf_counter()

    def done(self, name: str, result: str, started: float) -> None:
        self.summary.append((name, result, f"{time.perf_counter() - started:.0f}"))

    def show(self, label: str, text: str) -> None:
        console.print(f"[bold]{label}[/]: {text.strip()}", highlight=False)

    # ---- generation through the server ----------------------------------------------------------------
    def summarize(self, model_id: str, dialogue: str, max_tokens: int) -> str:
        body = json.dumps({"prompt": PROMPT.format(dialogue=dialogue), "max_gen_len": max_tokens, "temperature": 0})
        return json.loads(self.runtime.invoke_model(modelId=model_id, body=body)["body"].read())["generation"].strip()

    def titan(self, model_id: str, text: str, max_tokens: int) -> str:
        body = json.dumps({"inputText": text, "textGenerationConfig": {"maxTokenCount": max_tokens, "temperature": 0}})
        return json.loads(self.runtime.invoke_model(modelId=model_id, body=body)["body"].read())["results"][0]["outputText"].strip()

    def wait_job(self, arn: str, label: str) -> dict:
        """Poll GetModelCustomizationJob; the bar shows the job's steps (read from the metadata store)."""
        from tuneforge.cli.runtime import catalog, settings
        from tuneforge.jobs.service import JobService

        jobs = JobService(settings(), catalog().sessions, catalog(), reconcile=False)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task(label, total=None, info="")
            while True:
                job = self.bedrock.get_model_customization_job(jobIdentifier=arn)
                p = jobs.get(arn).progress or {}
                if p.get("totalSteps"):
                    progress.update(task, total=p["totalSteps"], completed=p.get("step", 0),
                                    info=f"loss {p.get('trainingLoss', float('nan')):.3f}, {p.get('tokensPerSecond', 0):.0f} tok/s")
                else:
                    progress.update(task, info=p.get("phase") or job["status"])
                if job["status"] in ("Completed", "Failed", "Stopped"):
                    break
                time.sleep(1)
        if job["status"] != "Completed":
            raise SystemExit(f"{label} ended {job['status']}: {job.get('failureMessage')}")
        return job

    def wait_in_service(self, arn: str) -> dict:
        with console.status("provisioned throughput: loading the model on its worker and running a health check"):
            while True:
                pt = self.bedrock.get_provisioned_model_throughput(provisionedModelId=arn)
                if pt["status"] in ("InService", "Failed"):
                    break
                time.sleep(0.5)
        if pt["status"] != "InService":
            raise SystemExit(f"provisioned throughput failed: {pt.get('failureMessage')}")
        return pt

    # ---- data -------------------------------------------------------------------------------------------
    def dialogue_rows(self) -> list[dict]:
        a = self.args
        if a.data or a.hf_dataset:
            from tuneforge.data.from_table import load_table

            table = load_table(a.data or a.hf_dataset)
            rows = [{"dialogue": r["dialogue"], "summary": r["summary"]} for r in table.select(range(min(len(table), a.records + a.heldout)))]
        else:
            rows = dialogues.generate(a.records + a.heldout, seed=a.seed)
        random.Random(a.seed).shuffle(rows)
        return rows

    def book(self) -> tuple[list[Path], str]:
        """The training document(s) and the held-out text."""
        if self.args.book:
            path = Path(self.args.book)
            text = path.read_text(encoding="utf-8", errors="replace") if path.suffix.lower() in (".md", ".txt") else ""
            return [path], text[-4000:] if text else ""
        source = (DEMO / "data" / "harbor-almanac.md").read_text(encoding="utf-8")
        trained, _, held_out = source.partition(HELD_OUT_HEADING)
        target = self.work / "harbor-almanac.md"
        target.write_text(trained, encoding="utf-8")
        return [target], held_out

    # ---- the story ------------------------------------------------------------------------------------
    def run(self) -> None:
        total = time.perf_counter()
        started = self.step("0. A data directory and a real server")
        self.prepare_home()
        self.cli("models", "alias", LLAMA_BASE, DEFAULT_MODEL_ID)
        self.cli("models", "alias", TITAN_BASE, DEFAULT_MODEL_ID)
        self.start_server()
        console.print(f"tuneforge serve at {self.url}, data in {self.home}; {LLAMA_BASE} and {TITAN_BASE} are aliases of {DEFAULT_MODEL_ID}")
        models = self.bedrock.list_foundation_models(byCustomizationType="FINE_TUNING")["modelSummaries"]
        console.print("fine-tunable models: " + ", ".join(m["modelId"] for m in models))
        self.done("server up", f"{len(models)} fine-tunable models", started)
        try:
            self.fine_tuning()
            self.continued_pre_training()
            self.knowledge_base()
        finally:
            self.cleanup()
            self.stop_server()
        table = Table(title=f"tuneforge demo: {time.perf_counter() - total:.0f} s in all")
        for column in ("step", "result", "seconds"):
            table.add_column(column)
        for row in self.summary:
            table.add_row(*row)
        console.print(table)

    def fine_tuning(self) -> None:
        a = self.args
        started = self.step("a. The base model summarizes a hotel check-in")
        self.show("dialogue", dialogues.SHOWCASE["dialogue"])
        with console.status("on-demand worker: loading the base model"):
            base_answer = self.summarize(LLAMA_BASE, dialogues.SHOWCASE["dialogue"], a.max_tokens)
        self.show("base model", base_answer)
        self.done("a. base model summary", f"{len(base_answer.split())} words", started)

        started = self.step("b. Fine-tuning: dialogue -> summary pairs, Bedrock's string hyperparameters")
        rows = self.dialogue_rows()
        train, held_out = rows[: a.records], rows[a.records :]
        train_file = self.work / "train.jsonl"
        train_file.write_text("".join(json.dumps({"prompt": PROMPT.format(dialogue=r["dialogue"]), "completion": " " + r["summary"].strip()}) + "\n" for r in train), encoding="utf-8")
        hyperparameters = {"epochCount": "1", "batchSize": "8", "learningRate": "0.0002"}
        # Bedrock's Llama 2 ranges allow batchSize "1" only; the default model's own id takes batches of 8, which a
        # CPU trains several times faster (padded, length-grouped batches)
        console.print(f"{len(train)} training rows -> {train_file}; base {DEFAULT_MODEL_ID}; hyperparameters {hyperparameters}")
        job_arn = self.bedrock.create_model_customization_job(
            jobName="demo-summaries", customModelName="demo-summarizer", roleArn=ROLE, baseModelIdentifier=DEFAULT_MODEL_ID,
            customizationType="FINE_TUNING", trainingDataConfig={"s3Uri": str(train_file)},
            outputDataConfig={"s3Uri": str(self.work / "outputs")}, hyperParameters=hyperparameters,
        )["jobArn"]
        job = self.wait_job(job_arn, "fine-tuning")
        model = self.bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
        console.print(f"custom model {model['modelName']}: training loss {model['trainingMetrics']['trainingLoss']:.3f}")
        self.done("b. fine-tuning job", f"{len(train)} rows, loss {model['trainingMetrics']['trainingLoss']:.2f}", started)

        started = self.step("b. Provisioned throughput for the custom model, then the same dialogue")
        self.pt_arn = self.bedrock.create_provisioned_model_throughput(
            provisionedModelName="demo-summarizer", modelId=model["modelArn"], modelUnits=1)["provisionedModelArn"]
        self.wait_in_service(self.pt_arn)
        custom_answer = self.summarize(self.pt_arn, dialogues.SHOWCASE["dialogue"], a.max_tokens)
        self.show("base model  ", base_answer)
        self.show("custom model", custom_answer)
        self.done("b. custom model summary", f"{len(custom_answer.split())} words (base: {len(base_answer.split())})", started)

        started = self.step(f"b. ROUGE on {len(held_out)} held-out dialogues (8 concurrent requests per model, batched by the server)")
        from tuneforge.evaluation.rouge import score_rouge

        references = [r["summary"] for r in held_out]
        scores = {}
        with ThreadPoolExecutor(8) as pool:
            for label, model_id in (("base", LLAMA_BASE), ("custom", self.pt_arn)):
                predictions = list(pool.map(lambda r: self.summarize(model_id, r["dialogue"], a.max_tokens), held_out))
                scores[label] = score_rouge(predictions, references)
        table = Table(title="ROUGE F1 on held-out dialogues")
        for column in ("model", "ROUGE-1", "ROUGE-2", "ROUGE-L"):
            table.add_column(column)
        for label, s in scores.items():
            table.add_row(label, f"{s.rouge1:.3f}", f"{s.rouge2:.3f}", f"{s.rougeL:.3f}")
        console.print(table)
        self.done("b. ROUGE-L base -> custom", f"{scores['base'].rougeL:.3f} -> {scores['custom'].rougeL:.3f}", started)

    def continued_pre_training(self) -> None:
        a = self.args
        started = self.step("c. Continued pre-training on a document the base model has never seen")
        from tuneforge.data.from_docs import documents_to_records
        from tuneforge.data.model_tokens import model_token_counter
        from tuneforge.cli.runtime import model_resolver

        paths, held_out = self.book()
        models = model_resolver()
        count, _ = model_token_counter(models.base_spec(models.resolve(DEFAULT_MODEL_ID)))
        records = documents_to_records(paths, count_tokens=count, max_tokens=a.chunk_tokens).records
        data = self.work / "book.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        console.print(f"{', '.join(p.name for p in paths)} -> {len(records)} {{\"input\"}} chunks of <= {a.chunk_tokens} tokens with overlap")
        question = self.question()
        before = self.titan(TITAN_BASE, f"User: {question}\nBot:", a.max_tokens)  # Titan's chat form
        job_arn = self.bedrock.create_model_customization_job(
            jobName="demo-book", customModelName="demo-book-reader", roleArn=ROLE, baseModelIdentifier=DEFAULT_MODEL_ID,
            customizationType="CONTINUED_PRE_TRAINING", trainingDataConfig={"s3Uri": str(data)},
            outputDataConfig={"s3Uri": str(self.work / "outputs")},
            hyperParameters={"epochCount": str(a.cpt_epochs), "batchSize": "4", "learningRate": "0.0005", "learningRateWarmupSteps": "0"},
        )["jobArn"]
        job = self.wait_job(job_arn, "continued pre-training")
        self.done("c. continued pre-training job", f"{len(records)} chunks x {a.cpt_epochs} epochs", started)

        started = self.step("c. Perplexity on the held-out chapter, and a question before and after")
        perplexity = self.perplexity(job["outputModelArn"], held_out)
        self.bedrock.update_provisioned_model_throughput(provisionedModelId=self.pt_arn, desiredModelId=job["outputModelArn"])
        self.wait_in_service(self.pt_arn)
        after = self.titan(self.pt_arn, f"User: {question}\nBot:", a.max_tokens)
        self.show("question", question)
        self.show("before", before)
        self.show("after ", after)
        self.done("c. held-out perplexity before -> after", f"{perplexity[0]:.1f} -> {perplexity[1]:.1f}", started)

    def question(self) -> str:
        if self.args.book:
            return "Describe the book."
        questions = json.loads((DEMO / "data" / "almanac-questions.json").read_text(encoding="utf-8"))
        first = questions[0] if isinstance(questions, list) else questions["questions"][0]
        return first["question"] if isinstance(first, dict) else str(first)

    def perplexity(self, custom_arn: str, held_out: str) -> tuple[float, float]:
        from tuneforge.cli.runtime import model_resolver
        from tuneforge.evaluation.compare import EvalModel, compare_perplexity
        from tuneforge.evaluation.heldout import HeldOutText

        resolver = model_resolver()
        models = [EvalModel("base", resolver.worker_spec(resolver.resolve(DEFAULT_MODEL_ID))),
                  EvalModel("continued pre-training", resolver.worker_spec(resolver.resolve(custom_arn)))]
        with console.status("perplexity of both models on the held-out chapter"):
            result = compare_perplexity(models, [HeldOutText("held-out chapter", held_out)])
        table = Table(title="perplexity on the held-out chapter")
        table.add_column("model")
        table.add_column("perplexity")
        for r in result.results:
            table.add_row(r.label, f"{r.perplexity:.2f}")
        console.print(table)
        return result.results[0].perplexity, result.results[1].perplexity

    def knowledge_base(self) -> None:
        started = self.step("d. A knowledge base over trading rules: a question and a follow-up, with citations")
        rules = DEMO / "data" / "rules"
        questions = json.loads((DEMO / "data" / "rules-questions.json").read_text(encoding="utf-8"))
        kb = self.agent.create_knowledge_base(
            name="demo-rules", roleArn=ROLE,
            knowledgeBaseConfiguration={"type": "VECTOR", "vectorKnowledgeBaseConfiguration": {
                "embeddingModelArn": "arn:aws:bedrock:us-east-1::foundation-model/sentence-transformers.all-minilm-l6-v2"}},
        )["knowledgeBase"]  # no storageConfiguration: the embedded SQLite vector store
        source = self.agent.create_data_source(knowledgeBaseId=kb["knowledgeBaseId"], name="rules",
                                               dataSourceConfiguration={"type": "S3", "s3Configuration": {
                                                   "bucketArn": f"file://{rules}"}})["dataSource"]  # a local folder (ours)
        job = self.agent.start_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=source["dataSourceId"])["ingestionJob"]
        with console.status("ingestion: parse, chunk, embed, index"):
            while job["status"] not in ("COMPLETE", "FAILED", "STOPPED"):
                time.sleep(0.5)
                job = self.agent.get_ingestion_job(knowledgeBaseId=kb["knowledgeBaseId"], dataSourceId=source["dataSourceId"],
                                                   ingestionJobId=job["ingestionJobId"])["ingestionJob"]
        stats = job.get("statistics", {})
        console.print(f"ingestion {job['status']}: {stats}")
        # a prompt template short enough for a 135M model (Bedrock's promptTemplate), hybrid search (BM25 + vectors)
        config = {"type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
            "knowledgeBaseId": kb["knowledgeBaseId"], "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{DEFAULT_MODEL_ID}",
            "retrievalConfiguration": {"vectorSearchConfiguration": {"numberOfResults": 3, "overrideSearchType": "HYBRID"}},
            "generationConfiguration": {
                "promptTemplate": {"textPromptTemplate": "Rules:\n$search_results$\n\nUsing only the rules above, answer in "
                                                         "two or three sentences.\nQuestion: $query$"},
                "inferenceConfig": {"textInferenceConfig": {"maxTokens": 90, "temperature": 0}}}}}
        session_id = None
        for question in (questions["question"], questions["follow_up"]):
            kwargs = {"sessionId": session_id} if session_id else {}
            reply = self.agent_runtime.retrieve_and_generate(input={"text": question}, retrieveAndGenerateConfiguration=config, **kwargs)
            session_id = reply["sessionId"]
            self.show("question", question)
            self.show("answer", reply["output"]["text"])
            cited = {}
            for citation in reply.get("citations", []):
                span = citation["generatedResponsePart"]["textResponsePart"]["span"]
                for ref in citation.get("retrievedReferences", []):
                    source = ref["metadata"]["x-amz-bedrock-kb-source-uri"].rsplit("/", 1)[-1]
                    cited.setdefault(source, []).append(f"{span['start']}-{span['end']}")
            for source, spans in cited.items():
                console.print(f"   cited {source} for answer characters {', '.join(sorted(set(spans)))}", highlight=False)
        self.done("d. knowledge base answers", f"{stats.get('numberOfNewDocumentsIndexed', '?')} documents indexed, session kept", started)

    def cleanup(self) -> None:
        if self.pt_arn:
            started = self.step("e. Clean-up")
            self.bedrock.delete_provisioned_model_throughput(provisionedModelId=self.pt_arn)
            console.print(f"deleted {self.pt_arn}")
            self.done("e. provisioned throughput deleted", "", started)
            self.pt_arn = None


def main() -> None:
    parser = argparse.ArgumentParser(description="tuneforge's main demo (see the module docstring).")
    parser.add_argument("--home", default=str(DEMO.parent / ".demo-home"), help="data directory (cleared at start, models kept)")
    parser.add_argument("--data", help="DialogSum-style JSONL/CSV/Parquet with dialogue and summary columns")
    parser.add_argument("--hf-dataset", help="a Hugging Face dataset id (online) or a saved dataset directory")
    parser.add_argument("--book", help="a PDF, Markdown or text document for continued pre-training")
    parser.add_argument("--records", type=int, default=160, help="fine-tuning rows")
    parser.add_argument("--heldout", type=int, default=8, help="held-out rows for ROUGE")
    parser.add_argument("--cpt-epochs", type=int, default=2)
    parser.add_argument("--chunk-tokens", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=60, help="tokens per generated answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rows, one epoch, short answers")
    args = parser.parse_args()
    if args.quick:
        args.records, args.heldout, args.cpt_epochs, args.max_tokens = 16, 2, 1, 16
    Demo(args).run()


if __name__ == "__main__":
    main()
