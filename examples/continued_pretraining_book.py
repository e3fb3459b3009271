"""Continued pre-training on a book, with boto3, against `tuneforge serve`.

The flow of the public Bedrock notebook (generative-ai-on-aws 12_bedrock/32_*): a new book (PDF, Markdown or
text) chunked with overlap into {"input"} lines (`tuneforge data from-docs`), a CONTINUED_PRE_TRAINING job with
string hyperparameters, a provisioned throughput on the custom model, and "Describe the book" asked with a
Titan body before and after.

    tuneforge serve &                     # another terminal
    python examples/continued_pretraining_book.py --book book.pdf
    python examples/continued_pretraining_book.py --book ../shared/data/rlhf-book/chapters/ --output s3://bucket/cpt/
    python examples/continued_pretraining_book.py --book ../shared/data/pdf/rlhf-book-ch01-14.pdf --chunk-chars 4000

`--chunk-chars` prepares the data as the notebook does (the PDF's text, as pypdf extracts it, cut into chunks
of about that many characters with 5% overlap, one {"input"} per chunk, whatever their length in tokens);
without it, `tuneforge data from-docs` chunks by the model's tokens and drops running headers and page numbers.

Credentials come from boto3's usual chain (a key from `tuneforge keys create`, or anything against a server
started with --no-auth). Titan ids (amazon.titan-text-express-v1) answer in Titan's body when they are aliases
of a catalog model (`tuneforge models alias amazon.titan-text-express-v1 <model>`); any catalog id works.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from finetune_summaries import ROLE, upload, wait  # noqa: E402  (the two examples share their small helpers)


def character_chunks(text: str, size: int, overlap: int) -> list[str]:
    """Chunks of at most `size` characters that end at a space, each repeating the last `overlap` of the previous."""
    chunks, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text) and (cut := text.rfind(" ", start + size // 2, end)) > 0:
            end = cut
        chunks.append(text[start:end].strip())
        if end == len(text):
            break
        start = end - overlap
    return [c for c in chunks if c]


def notebook_records(paths: list[str], size: int) -> list[dict[str, str]]:
    """The notebook's preparation: every document's text, cut into character chunks."""
    from pypdf import PdfReader  # a tuneforge dependency

    records = []
    for path in paths:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            if file.suffix.lower() == ".pdf":
                text = "\n".join(page.extract_text() or "" for page in PdfReader(file).pages)
            else:
                text = file.read_text(encoding="utf-8")
            records += [{"input": chunk} for chunk in character_chunks(text, size, size // 20)]
    return records


def describe(runtime, model_id: str, question: str, max_tokens: int) -> str:
    body = json.dumps({"inputText": question, "textGenerationConfig": {"maxTokenCount": max_tokens, "temperature": 0}})
    return json.loads(runtime.invoke_model(modelId=model_id, body=body)["body"].read())["results"][0]["outputText"].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", default=os.environ.get("TUNEFORGE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--base-model", default="huggingfacetb.smollm2-135m-instruct-v1")
    parser.add_argument("--book", nargs="+", required=True, help="PDF, Markdown or text files, or folders of them")
    parser.add_argument("--question", default="Describe the book.")
    parser.add_argument("--chunk-tokens", type=int, default=512)
    parser.add_argument("--chunk-chars", type=int, default=None, help="chunk as the notebook does: ~N characters a record")
    parser.add_argument("--max-records", type=int, default=None, help="keep only the first N chunks (short runs)")
    parser.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "tuneforge-examples"), help="local dir or s3://bucket/prefix")
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--batch-size", default="8")
    parser.add_argument("--learning-rate", default="0.0002")
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    args = parser.parse_args()

    bedrock = boto3.client("bedrock", endpoint_url=args.endpoint_url, region_name=args.region)
    runtime = boto3.client("bedrock-runtime", endpoint_url=args.endpoint_url, region_name=args.region)
    run = uuid.uuid4().hex[:8]

    print(f"1. the base model: {args.question!r}", flush=True)
    before = describe(runtime, args.base_model, args.question, args.max_tokens)
    print(f"  {before}\n")

    print("2. the book, chunked with overlap into {\"input\"} lines", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tuneforge-cpt-"))
    data = work / "book.jsonl"
    if args.chunk_chars:
        data.write_text("".join(json.dumps(r) + "\n" for r in notebook_records(args.book, args.chunk_chars)), encoding="utf-8")
    else:
        subprocess.run([sys.executable, "-m", "tuneforge", "data", "from-docs", *args.book, "--out", str(data),
                        "--model", args.base_model, "--max-tokens", str(args.chunk_tokens)], check=True)
    if args.max_records:
        lines = data.read_text(encoding="utf-8").splitlines(keepends=True)[: args.max_records]
        data.write_text("".join(lines), encoding="utf-8")
    training_uri = upload(data, args.output)
    print(f"  {sum(1 for _ in open(data, encoding='utf-8'))} records -> {training_uri}")

    print("3. the continued pre-training job", flush=True)
    job_arn = bedrock.create_model_customization_job(
        jobName=f"book-{run}", customModelName=f"book-reader-{run}", roleArn=ROLE,
        baseModelIdentifier=args.base_model, customizationType="CONTINUED_PRE_TRAINING",
        trainingDataConfig={"s3Uri": training_uri}, outputDataConfig={"s3Uri": args.output},
        hyperParameters={"epochCount": args.epochs, "batchSize": args.batch_size, "learningRate": args.learning_rate},
    )["jobArn"]
    job = wait(lambda: bedrock.get_model_customization_job(jobIdentifier=job_arn), {"Completed", "Failed", "Stopped"}, "job", args.timeout)
    if job["status"] != "Completed":
        sys.exit(f"the job ended {job['status']}: {job.get('failureMessage')}")

    print("4. provisioned throughput for the custom model", flush=True)
    pt_arn = bedrock.create_provisioned_model_throughput(
        provisionedModelName=f"book-reader-{run}", modelId=job["outputModelArn"], modelUnits=1)["provisionedModelArn"]
    try:
        pt = wait(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=pt_arn), {"InService", "Failed"}, "provisioned model", 600)
        if pt["status"] != "InService":
            sys.exit(f"the provisioned model failed: {pt.get('failureMessage')}")
        print(f"5. the custom model: {args.question!r}", flush=True)
        after = describe(runtime, pt_arn, args.question, args.max_tokens)
        print(f"  {after}\n")
        print(json.dumps({"before": before, "after": after, "job": job_arn, "customModel": job["outputModelArn"]}, indent=2))
    finally:
        bedrock.delete_provisioned_model_throughput(provisionedModelId=pt_arn)


if __name__ == "__main__":
    main()
